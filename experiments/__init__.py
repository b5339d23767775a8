"""Thin command-line entry points that wire library code into experiments; each writes a run directory."""
