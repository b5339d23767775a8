"""Loading models through TransformerLens' TransformerBridge, rendering prompts, and caching activations to disk."""

import common  # noqa: F401  (sets OMP's passive wait policy before torch loads)
