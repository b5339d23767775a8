"""Model-graded judge (local model or OpenAI-compatible endpoint).  (STUB: being filled in.)"""
