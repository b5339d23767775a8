"""Time the layer sweep of two versions of the code on the same data, alternating, each run in its own process.

    OMP_NUM_THREADS=1 python bench/bench_sweep_versions.py --baseline 7d70124 --settings 8b --repeats 2
    OMP_NUM_THREADS=2 python bench/bench_sweep_versions.py --baseline 7d70124 --settings 8b --blas-threads 2

The baseline's ``probes/`` comes from git (``git archive REV probes``), the other from this checkout. Every run is a
fresh process that calls ``layer_sweep(..., n_jobs=1)`` (all estimators' defaults, lexical baseline included) on
layers streamed from the .npy files of ``bench_probe_sweep``'s generator, and prints its wall time, its own CPU time
and the load average. ``--blas-threads`` is passed to ``layer_sweep`` (its default is 1 whatever OMP_NUM_THREADS
says). The summary gives the median [min-max] per version, the ratios paired by repeat, and whether the results
agree: every estimator's AUROC and control accuracy at every layer, the chosen C, the lexical baseline and the
selected layer identical, and the largest held-out score difference relative to the layer's largest score.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def load_layer(directory: str, layer: int) -> np.ndarray:
    return np.load(os.path.join(directory, f"layer{layer:03d}.npy"))  # the layout bench_probe_sweep writes


def worker(src: str, data: str, out: str, n_layers: int, blas_threads: int) -> None:
    """Run one sweep with the ``probes`` package under ``src``; save its results to ``out`` (.npz)."""
    sys.path.insert(0, src)  # before anything imports probes (bench_probe_sweep imports this checkout's)
    from functools import partial

    from probes.sweep import layer_sweep, select_layer

    y, groups = np.load(f"{data}/y.npy"), np.load(f"{data}/groups.npy")
    texts = json.loads(Path(f"{data}/texts.json").read_text())
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = layer_sweep(partial(load_layer, data), y, groups, texts, layers=list(range(n_layers)), n_jobs=1,
                      blas_threads=blas_threads)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    saved = {"lexical/scores": res.lexical.oof_scores, "lexical/auroc": res.lexical.auroc.value,
             "lexical/C": np.array(res.lexical.chosen_C)}
    for e in res.estimators:
        for r in res.results[e]:
            saved.update({f"{e}/{r.layer}/scores": r.oof_scores, f"{e}/{r.layer}/auroc": r.auroc.value,
                          f"{e}/{r.layer}/control": r.control_accuracy.value,
                          f"{e}/{r.layer}/C": np.array(r.chosen_C or [])})
        try:
            saved[f"{e}/selected"] = select_layer(res, e)
        except ValueError:
            saved[f"{e}/selected"] = -1
    np.savez(out, **saved)
    print(json.dumps({"wall": wall, "cpu": cpu, "load_before": load_before, "load_after": os.getloadavg()[0],
                      "src": res.timings}))


def compare(a: Path, b: Path) -> str:
    """Say which results differ between two saved sweeps, and by how much the held-out scores do."""
    x, z = np.load(a), np.load(b)
    differ = [k for k in x.files if not k.endswith("scores") and not np.array_equal(x[k], z[k])]
    worst = {}
    for k in (k for k in x.files if k.endswith("scores")):
        name = k.split("/")[0]
        worst[name] = max(worst.get(name, 0.0), float(np.abs(x[k] - z[k]).max() / np.abs(x[k]).max()))
    agree = "identical" if not differ else f"DIFFERENT in {len(differ)} entries, e.g. {differ[:4]}"
    return (f"AUROC, control accuracy, chosen C, lexical baseline and selected layer: {agree}; largest held-out"
            " score difference (relative to the layer's largest |score|): "
            + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="git revision whose probes/ is the baseline")
    ap.add_argument("--settings", choices=["smollm", "8b"], default="8b")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--blas-threads", type=int, default=1)
    ap.add_argument("--n-layers", type=int, help="sweep only the first N layers (default: all of the setting's)")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        src, data, out, n_layers, blas = args.worker
        worker(src, data, out, int(n_layers), int(blas))
        return
    sys.path.insert(0, str(HERE))
    from bench_probe_sweep import SETTINGS, make_layers

    repo = HERE.parent
    print(f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, blas_threads="
          f"{args.blas_threads}; uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    cfg = dict(SETTINGS[args.settings])
    n_sweep = args.n_layers or cfg["n_layers"]
    with tempfile.TemporaryDirectory(prefix="bench_versions_") as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", args.baseline, "probes"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        data = tmp / "data"
        data.mkdir()
        t0 = time.perf_counter()
        y, groups, texts = make_layers(data, **cfg)
        np.save(data / "y.npy", y)
        np.save(data / "groups.npy", groups)
        (data / "texts.json").write_text(json.dumps(list(texts)))
        print(f"{args.settings}: {n_sweep} of {cfg['n_layers']} layers, n={cfg['n']}, d={cfg['d']}; data generation"
              f" (excluded) {time.perf_counter() - t0:.1f} s", flush=True)
        versions = {f"baseline {args.baseline}": base, "this checkout": repo}
        runs: dict[str, list[dict]] = {v: [] for v in versions}
        for rep in range(args.repeats):
            order = list(versions) if rep % 2 == 0 else list(versions)[::-1]  # alternate who goes first
            for v in order:
                out = tmp / f"{'base' if v.startswith('baseline') else 'new'}.npz"
                proc = subprocess.run([sys.executable, __file__, "--baseline", args.baseline, "--worker",
                                       str(versions[v]), str(data), str(out), str(n_sweep),
                                       str(args.blas_threads)], capture_output=True, text=True, check=True)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                runs[v].append(r)
                print(f"  repeat {rep + 1} {v}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s; load average before"
                      f" {r['load_before']:.1f}, after {r['load_after']:.1f}", flush=True)
        print("summary (median [min-max] over repeats):")
        for v, rs in runs.items():
            walls, cpus = [r["wall"] for r in rs], [r["cpu"] for r in rs]
            stages = ", ".join(f"{k.replace(' (summed over workers)', '')} {s:.1f}" for k, s in rs[-1]["src"].items())
            print(f"  {v}: wall {statistics.median(walls):.1f} s [{min(walls):.1f}-{max(walls):.1f}], CPU"
                  f" {statistics.median(cpus):.1f} s [{min(cpus):.1f}-{max(cpus):.1f}] (n={len(rs)}); last run's"
                  f" stages (wall s): {stages}")
        old, new = runs.values()
        for key in ("cpu", "wall"):
            ratios = [o[key] / n[key] for o, n in zip(old, new)]
            print(f"  speed-up ({key}, paired by repeat): {statistics.median(ratios):.2f}x"
                  f" [{min(ratios):.2f}-{max(ratios):.2f}]")
        print("  " + compare(tmp / "base.npz", tmp / "new.npz"))
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
