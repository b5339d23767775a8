"""Loading models through TransformerLens' TransformerBridge, rendering prompts, and caching activations to disk."""
