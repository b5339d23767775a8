"""How long does loading an embedded GGUF model take, converted from the GGUF vs read from the converted-weights cache?

Each load runs in a fresh Python process (imports included, as a command pays them) and reports the wall time of the
whole process and of ``load_model`` alone. Per model and round, three loads in this order, alternating so both modes
see the same machine load:

- **direct**: ``VETH_NO_WEIGHT_CACHE=1`` (transformers parses and dequantises the GGUF, as before the cache);
- **first (build)**: the cache entry is removed first, so this load converts and writes the cache;
- **cached**: the entry exists: safetensors load after the GGUF sha256 and the entry's manifest are verified.

The cache lives in a temporary ``VETH_CACHE`` (the Gemma GGUF, which is assembled into the cache, is linked there),
so the user's cache is not touched. The load average is printed with each figure.

    python bench/bench_load.py                      # both embedded models, 2 rounds
    python bench/bench_load.py --models smollm2-135m-instruct --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = """
import time, sys
t0 = time.perf_counter()
from activations.models import load_model
t1 = time.perf_counter()
m = load_model(sys.argv[1])
t2 = time.perf_counter()
print(f"RESULT {t2 - t1:.3f} {m.identity.key}")
"""


def run_child(model: str, env: dict[str, str]) -> tuple[float, float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, model], env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"load of {model} failed:\n{out.stderr[-2000:]}")
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    _, load_s, key = line.split()
    return wall, float(load_s), key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from activations import models as models_mod
    from activations.registry import load_registry
    from activations.weight_cache import entry_dir

    cache = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        registry = load_registry()
        for name in args.models:  # the Gemma GGUF is assembled into the cache dir: reuse the user's copy
            gguf = models_mod.packaged_file(registry[name])
            if gguf.parent == models_mod.CACHE_DIR:
                (cache / gguf.name).symlink_to(gguf)
        base = dict(os.environ, VETH_CACHE=str(cache), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
                    HF_HUB_OFFLINE="1")
        base.pop("VETH_NO_WEIGHT_CACHE", None)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for rnd in range(args.rounds):
            for name in args.models:
                entry = entry_dir(cache, registry[name].sha256 or "", "float32")
                shutil.rmtree(entry, ignore_errors=True)
                keys = set()
                for mode, env in (("direct", dict(base, VETH_NO_WEIGHT_CACHE="1")), ("first (build)", base),
                                  ("cached", base)):
                    wall, load_s, key = run_child(name, env)
                    keys.add(key)
                    results.setdefault((name, mode), []).append((wall, load_s))
                    print(f"round {rnd + 1} {name:24s} {mode:14s} process {wall:6.1f} s  load_model {load_s:6.1f} s"
                          f"  (load avg {os.getloadavg()[0]:.1f})", flush=True)
                if len(keys) != 1:
                    raise SystemExit(f"identity key changed between modes for {name}: {keys}")
        print("\nmedian over rounds (process wall / load_model), n =", args.rounds)
        for (name, mode), vals in results.items():
            print(f"  {name:24s} {mode:14s} {statistics.median(v[0] for v in vals):6.1f} s / "
                  f"{statistics.median(v[1] for v in vals):6.1f} s")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
