"""CPU threads for torch: the one place that applies ``--threads`` and reports what is in effect (for manifests).

Measured with ``bench/bench_threads.py`` on a shared 2-core machine (figures in the README): with the toolkit's
passive OpenMP waiting, one thread and torch's default of two stayed within about 20% of each other, either way
round depending on the load (load average ~7: one thread 1.1-1.2x faster; ~5.5: two threads 1.1-1.3x faster),
while with spinning threads (``OMP_WAIT_POLICY=ACTIVE``, what torch does when it is loaded before the toolkit) the
default was 2-4x slower. A default of one thread would cost far more on a machine of one's own, where prefill and
extraction scale with cores, so the default stays torch's own (and is the same whatever the machine's load, so
results do not depend on it); ``--threads 1`` is the advice for oversubscribed CPUs and parallel jobs.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from common.errors import ConfigError

#: What ``--threads`` means when not given: leave torch's own default (one thread per core, or OMP_NUM_THREADS).
DEFAULT_THREADS: int | None = None

_requested: int | None = None


def set_threads(n: int | None) -> dict[str, Any]:
    """Use ``n`` intra-op threads (``torch.set_num_threads``) and, where torch still allows it, ``n`` inter-op
    threads; ``None`` keeps torch's default. Call before any model work. Returns :func:`thread_settings`."""
    global _requested
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"--threads must be a whole number >= 1, got {n!r}")
        import torch

        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:
            pass  # torch allows it only once, before any inter-op parallel work; intra-op threads do the heavy work
        _requested = n
    return thread_settings()


def thread_settings() -> dict[str, Any]:
    """The thread settings in effect, as recorded in every run's ``manifest.json``."""
    torch = sys.modules.get("torch")  # report torch's figures only if loaded: never import it just for this
    return {
        "requested": _requested,
        "torch_threads": torch.get_num_threads() if torch else None,
        "torch_interop_threads": torch.get_num_interop_threads() if torch else None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
