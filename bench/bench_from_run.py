"""Time ``python -m experiments.probe --from-run RUN_DIR --eval-file FILE`` end to end, as a user runs it.

Each call is a fresh process (interpreter start, imports, model load, extraction, baseline refit, writing the run
directory). Cold: the file's texts are new to the store (an empty store root, ``--store``), so every text goes
through the model once. Warm: the same call again, every activation read from the store (no forward pass).
Run directories go to a temporary root, so nothing is left in ``runs/``. CPU seconds (user + system of the child
process) are printed beside wall seconds: on a shared machine wall time is mostly waiting for a core, and with
``OMP_NUM_THREADS=1`` the CPU time is what the call takes on an idle core.

    OMP_NUM_THREADS=1 python bench/bench_from_run.py RUN_DIR [--eval-file bench/data/outside_eval_50.jsonl]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed_call(run: str, eval_file: str, store: Path, runs: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of the child) and the log of one call."""
    cmd = [sys.executable, "-m", "experiments.probe", "--from-run", run, "--eval-file", eval_file,
           "--store", str(store), "--runs", str(runs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, env=os.environ.copy())
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, cpu, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a probe run directory (python -m experiments.probe)")
    parser.add_argument("--eval-file", default=str(HERE / "data" / "outside_eval_50.jsonl"))
    parser.add_argument("--rounds", type=int, default=2, help="cold + warm pairs, each with a fresh store")
    args = parser.parse_args()
    n_texts = sum(1 for line in Path(args.eval_file).read_text().splitlines() if line.strip())
    print(f"--from-run on {n_texts} texts ({args.eval_file}); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"{os.cpu_count()} CPUs visible")
    cold: list[tuple[float, float]] = []
    warm: list[tuple[float, float]] = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-from-run-") as tmp:
            for kind, times in (("cold", cold), ("warm", warm)):
                elapsed, cpu, log = timed_call(args.run, args.eval_file, Path(tmp) / "store", Path(tmp) / "runs")
                times.append((elapsed, cpu))
                load = re.search(r"loaded .* in ([\d.]+) s", log)
                scored = re.search(r"scored \d+ texts in ([\d.]+) s", log)
                computed = [int(n) for n in re.findall(r"texts, (\d+) computed now", log)]
                print(f"round {i + 1} {kind}: {elapsed:.1f} s wall, {cpu:.1f} s CPU (model load "
                      f"{load.group(1) if load else '?'} s wall, then extraction + baseline + writing "
                      f"{scored.group(1) if scored else '?'} s wall; texts computed now: {sum(computed)})")
    for kind, times in (("cold", cold), ("warm", warm)):
        walls, cpus = [t[0] for t in times], [t[1] for t in times]
        print(f"{kind}: median {statistics.median(walls):.1f} s wall (range {min(walls):.1f}-{max(walls):.1f}), "
              f"{statistics.median(cpus):.1f} s CPU, over {len(times)} calls")


if __name__ == "__main__":
    main()
