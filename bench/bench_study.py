"""Benchmark the study's ``--quick`` mode: wall time of the whole study on the embedded SmolLM2 on a CPU, per step,
beside the plan's counts, with the machine's load. Target: <= 20 minutes on a 2-core CPU.

    OMP_NUM_THREADS=1 python bench/bench_study.py                       # fresh runs root and store under /tmp
    OMP_NUM_THREADS=1 python bench/bench_study.py --runs DIR --store DIR  # reuse (a rerun measures the reuse path)

It runs ``python -m experiments.study --quick`` in a child process (as a user would) and reads the study's
``results/steps.json`` for per-step wall and CPU seconds (the process's CPU time: with one thread on a loaded
machine, the closer figure for what the study takes on an idle core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=None)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-study-"))
    runs, store = args.runs or tmp / "runs", args.store or tmp / "store"
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "experiments.study", "--quick", "--runs", str(runs), "--store",
                           str(store), "--threads", str(args.threads)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    study = sorted(runs.glob("*-study-*"))[-1]
    steps = json.loads((study / "results" / "steps.json").read_text())
    plan = json.loads((study / "results" / "plan.json").read_text())
    print(f"study --quick: {wall / 60:.1f} min wall (load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
          f"after; {args.threads} thread(s)); target <= 20 min")
    cpu = sum(rec.get("cpu_seconds", 0) for rec in steps.values())
    print(f"steps' CPU time {cpu / 60:.1f} min (with one thread, what the steps take on an idle core)")
    print(f"{'step':10} {'status':10} {'seconds':>8} {'CPU s':>8}  planned")
    for name, rec in steps.items():
        p = plan["steps"].get(name, {})
        print(f"{name:10} {rec['status']:10} {rec.get('seconds', 0):8.0f} {rec.get('cpu_seconds', 0):8.0f}  "
              f"{p.get('estimated', '-')}, "
              f"{p.get('forward_passes', '-')} forward passes, {p.get('generated_tokens', '-')} generated tokens")
    print(f"report: {study / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
