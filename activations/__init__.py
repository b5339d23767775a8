"""Loading models through TransformerLens' TransformerBridge, rendering prompts, and caching activations to disk."""

import os

# OpenMP worker threads spin-wait between ops by default. On a busy CPU (a shared workstation, parallel jobs) we
# measured forward passes 10-25x slower from that spinning; passive waiting costs little on an idle machine. This only
# takes effect if torch is not imported yet, which holds for every entry point of the toolkit.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
