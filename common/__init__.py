"""Shared ground that every package may import (and that imports none of them).

- :mod:`common.errors`  the toolkit's user-facing errors (each message says what to do);
- :mod:`common.fileio`  atomic file writes (temp file + fsync + rename);
- :mod:`common.jsonl`   JSON Lines reading that reports every bad line, durable appending, the one JSON encoder;
- :mod:`common.stats`   Wilson intervals, Fisher exact tests, detectable differences, Cohen's kappa;
- :mod:`common.ppi`     prediction-powered (PPI++) rates and differences from a judge plus a reviewed sample;
- :mod:`common.rundir`  the run-directory convention (config, manifest, status, results, figures, report);
- :mod:`common.threads` CPU threads for torch (``--threads``), recorded in every manifest;
- :mod:`common.prompts` model-independent prompt texts and response splitting (think/final);
- ``REPO_ROOT``          the checkout's root (``configs/`` lives there).

Modules are imported by name (``from common.jsonl import read_jsonl``); importing the package stays cheap.
"""

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "errors", "fileio", "jsonl", "ppi", "prompts", "rundir", "stats"]

REPO_ROOT = Path(__file__).resolve().parents[1]  # configs/ lives here

# OpenMP worker threads spin-wait between ops by default. On a busy CPU (a shared workstation, parallel jobs) we
# measured forward passes 10-25x slower from that spinning; passive waiting costs little on an idle machine. This only
# takes effect if torch is not imported yet, which holds for every entry point of the toolkit (all import this first).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
