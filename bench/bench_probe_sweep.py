"""Benchmark the full probe layer sweep on synthetic activations shaped like real models.

Settings (every layer x 5 grouped folds x {logistic, mean_diff} x {task, control task}, plus the lexical baseline):
  smollm: SmolLM2-135M-shaped, 30 layers, d=576, n=800
  8b:     Llama-3.1-8B-shaped, 32 layers, d=4096, n=2000

Activations are Gaussian with a decaying spectrum, a few large shared "outlier" directions and a mean offset (as
in residual streams), plus a label signal along a planted direction whose strength peaks mid-depth. Each layer
is written to its own .npy file first and the sweep streams them back one at a time, as it would from an
activation cache (generation time is reported separately and excluded from the sweep time).

The logistic probe's standardisation is fitted per layer (``--scaling layer``, the sweep's default: one basis per
layer shared by every fold) or per outer fold (``--scaling fold``: the sweep before issue 19, exact old results).
Both run by default, alternating within each repeat so that both see the same machine load; each run prints its wall
time, this process's CPU time (with ``--n-jobs 1`` all the work runs in this process, so CPU time is what the sweep
would take on an idle core) and the load average, then a summary gives the median and range per scaling, their
ratio, and how far the two scalings' results differ (AUROC per layer, chosen C, selected layer).

    OMP_NUM_THREADS=1 python bench/bench_probe_sweep.py --settings 8b --n-jobs 1 --repeats 3 --memory
    python bench/bench_probe_sweep.py --settings smollm --n-jobs 1 2 --scaling layer
    python bench/bench_probe_sweep.py --compare-sklearn    # also time a plain scikit-learn nested-CV fold
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.sweep import compare_to_baselines, layer_sweep, select_layer  # noqa: E402

SETTINGS = {
    "smollm": {"n_layers": 30, "n": 800, "d": 576, "group_size": 20, "signal": 0.3},
    "8b": {"n_layers": 32, "n": 2000, "d": 4096, "group_size": 20, "signal": 0.12},
}


def make_layers(directory: Path, n_layers: int, n: int, d: int, group_size: int, signal: float, seed: int = 0):
    """Write one (n, d) float32 .npy per layer; return labels, groups, texts."""
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n // 2)
    groups = np.repeat([f"entity{i:03d}" for i in range(n // group_size)], group_size)
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    spectrum = (1.0 / np.sqrt(np.arange(1, d + 1)) * 4).astype(np.float32)
    outliers = np.linalg.qr(rng.standard_normal((d, 4)))[0].T.astype(np.float32)  # 4 orthonormal directions
    for layer in range(n_layers):
        r = np.random.default_rng(seed + 1 + layer)
        strength = signal * np.exp(-(((layer - 0.45 * n_layers) / (0.2 * n_layers)) ** 2))
        X = r.standard_normal((n, d), dtype=np.float32) * spectrum[r.permutation(d)]
        X += (r.standard_normal((n, 4), dtype=np.float32) * 3) @ outliers
        X += np.outer((2 * y - 1) * strength, w).astype(np.float32) + r.standard_normal(d).astype(np.float32)
        np.save(directory / f"layer{layer:03d}.npy", X)
    filler = np.array("the a of resource output extraction colony director report notes social bond".split())
    texts = [" ".join(rng.choice(filler, 12)) + (" wellbeing" if (t and rng.random() < 0.15) else "") for t in y]
    return y, groups, texts


def load_layer(directory: str, layer: int) -> np.ndarray:
    return np.load(os.path.join(directory, f"layer{layer:03d}.npy"))


def time_sklearn_fold(directory: Path, y, groups, layer: int) -> float:
    """One outer fold of the naive equivalent: StandardScaler + LogisticRegressionCV over the same 7 Cs and 3
    grouped inner folds, task labels only."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    from probes.estimators import DEFAULT_CS
    from probes.sweep import grouped_folds

    X = load_layer(str(directory), layer)
    tr, te = grouped_folds(groups, 5, 0)[0][0]
    t0 = time.perf_counter()
    Xs = StandardScaler().fit(X[tr])
    inner = list(GroupKFold(3).split(X[tr], y[tr], groups[tr]))
    m = LogisticRegressionCV(Cs=list(DEFAULT_CS), cv=inner, scoring="neg_log_loss", l1_ratios=(0.0,), max_iter=1000,
                             use_legacy_attributes=False)
    m.fit(Xs.transform(X[tr]), y[tr])
    m.decision_function(Xs.transform(X[te]))
    return time.perf_counter() - t0


def _sweep(tmp: str, cfg: dict, y, groups, texts, n_jobs: int, scaling: str):
    loader = partial(load_layer, tmp)  # picklable: workers read their own layers from disk
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = layer_sweep(loader, y, groups, texts, layers=list(range(cfg["n_layers"])), n_jobs=n_jobs, scaling=scaling)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cpu_note = f"CPU {cpu:.1f} s" if n_jobs == 1 else "CPU n/a (work in joblib workers)"
    print(f"  scaling={scaling:5s} n_jobs={n_jobs}: wall {wall:6.1f} s, {cpu_note}; load average before"
          f" {load_before:.1f}, after {os.getloadavg()[0]:.1f}", flush=True)
    return res, wall, cpu


def _print_stages(res, n_layers: int) -> None:
    print("    stages (summed over workers, s): " + ", ".join(
        f"{k.replace(' (summed over workers)', '')} {v:.1f}" for k, v in res.timings.items()))
    fits = n_layers * res.n_splits
    print(f"    per layer-fold: logistic basis {res.timings['logistic_basis (summed over workers)'] / fits:.3f} s,"
          f" logistic C-search+refit(task+control) {res.timings['logistic_fit (summed over workers)'] / fits:.3f} s")


def _selected(res, estimator: str) -> int | None:
    try:
        return select_layer(res, estimator)
    except ValueError:
        return None


def _compare_results(a, b) -> None:
    """How far two sweeps' logistic results differ (same data and folds, different scaling)."""
    ra, rb = a.results["logistic"], b.results["logistic"]
    dauc = [abs(x.auroc.value - z.auroc.value) for x, z in zip(ra, rb)]
    same_C = sum(ca == cb for x, z in zip(ra, rb) for ca, cb in zip(x.chosen_C, z.chosen_C))
    n_C = sum(len(x.chosen_C) for x in ra)
    corr = min(float(np.corrcoef(x.oof_scores, z.oof_scores)[0, 1]) for x, z in zip(ra, rb))
    print(f"  {a.scaling} vs {b.scaling}: |AUROC difference| per layer max {max(dauc):.4f}, median"
          f" {statistics.median(dauc):.4f} (AUROC interval half-widths"
          f" ~{(ra[0].auroc.high - ra[0].auroc.low) / 2:.3f});"
          f" chosen C equal in {same_C}/{n_C} layer-folds; lowest correlation of held-out scores {corr:.4f};"
          f" selected layer {_selected(a, 'logistic')} vs {_selected(b, 'logistic')}")


def _peak_memory(tmp: str, y, groups, scaling: str, n_layers: int = 2) -> float:
    """Peak memory traced (numpy arrays included) over a sweep of the first layers, n_jobs=1, in MiB. Separate from
    the timed runs: tracing costs time."""
    import tracemalloc

    tracemalloc.start()
    layer_sweep(partial(load_layer, tmp), y, groups, None, layers=list(range(n_layers)), n_jobs=1, scaling=scaling)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def run(name: str, n_jobs_list: list[int], scalings: list[str], repeats: int, compare_sklearn: bool,
        memory: bool = False) -> None:
    cfg = SETTINGS[name]
    print(f"\n=== {name}: {cfg['n_layers']} layers, n={cfg['n']}, d={cfg['d']} ===", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as tmp:
        t0 = time.perf_counter()
        y, groups, texts = make_layers(Path(tmp), **cfg)
        print(f"data generation (excluded): {time.perf_counter() - t0:.1f} s", flush=True)
        runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
        last = {}
        for rep in range(repeats):
            order = scalings if rep % 2 == 0 else scalings[::-1]  # alternate who goes first
            print(f"repeat {rep + 1}/{repeats}:")
            for n_jobs in n_jobs_list:
                for scaling in order:
                    res, wall, cpu = _sweep(tmp, cfg, y, groups, texts, n_jobs, scaling)
                    runs.setdefault((scaling, n_jobs), []).append((wall, cpu))
                    last[(scaling, n_jobs)] = res
        print("summary (median [min-max] over repeats):")
        for (scaling, n_jobs), rs in runs.items():
            walls, cpus = [w for w, _ in rs], [c for _, c in rs]
            cpu = f", CPU {statistics.median(cpus):.1f} s [{min(cpus):.1f}-{max(cpus):.1f}]" if n_jobs == 1 else ""
            print(f"  scaling={scaling:5s} n_jobs={n_jobs}: wall {statistics.median(walls):.1f} s"
                  f" [{min(walls):.1f}-{max(walls):.1f}]{cpu}  (n={len(rs)})")
            _print_stages(last[(scaling, n_jobs)], cfg["n_layers"])
        for n_jobs in n_jobs_list:
            if {"fold", "layer"} <= set(scalings):
                before, after = runs[("fold", n_jobs)], runs[("layer", n_jobs)]
                ratios = [b[0] / a[0] for b, a in zip(before, after)]
                line = f"  speed-up layer vs fold, n_jobs={n_jobs}: wall {statistics.median(ratios):.2f}x" \
                       f" [{min(ratios):.2f}-{max(ratios):.2f}] (paired by repeat)"
                if n_jobs == 1:
                    cr = [b[1] / a[1] for b, a in zip(before, after)]
                    line += f", CPU {statistics.median(cr):.2f}x [{min(cr):.2f}-{max(cr):.2f}]"
                print(line)
                _compare_results(last[("layer", n_jobs)], last[("fold", n_jobs)])
        if memory:
            layer_mb = cfg["n"] * cfg["d"] * 4 / 2**20
            for scaling in scalings:
                print(f"  peak traced memory, scaling={scaling}, 2 layers, n_jobs=1:"
                      f" {_peak_memory(tmp, y, groups, scaling):.0f} MiB"
                      f" (one layer's float32 activations: {layer_mb:.0f} MiB)")
        res = last[(scalings[0], n_jobs_list[-1])]
        best = {}
        for e in res.estimators:
            best[e] = _selected(res, e)
            if best[e] is None:
                print(f"  {e} ({res.scaling} scaling): no layer qualifies")
                continue
            r = res.get(e, best[e])
            print(f"  {e} ({res.scaling} scaling) selected layer {best[e]}: AUROC {r.auroc}, control acc"
                  f" {r.control_accuracy.value:.3f}, selectivity {r.selectivity.value:+.3f}")
        print(f"  lexical baseline AUROC {res.lexical.auroc}")
        layer = best.get("logistic")
        layer = cfg["n_layers"] // 2 if layer is None else layer
        print("  " + compare_to_baselines(res, "logistic")[layer].statement)
        if compare_sklearn:
            fits = cfg["n_layers"] * res.n_splits
            t = time_sklearn_fold(Path(tmp), y, groups, layer)
            print(f"  scikit-learn StandardScaler+LogisticRegressionCV, ONE layer-fold, task only: {t:.2f} s"
                  f" (x {fits * 2} layer-fold-tasks for a full sweep with control)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--n-jobs", nargs="+", type=int, default=[2])
    ap.add_argument("--scaling", nargs="+", choices=["layer", "fold"], default=["layer", "fold"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--compare-sklearn", action="store_true")
    ap.add_argument("--memory", action="store_true", help="also trace peak memory over two layers per scaling")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()},"
          f" OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for name in args.settings:
        run(name, args.n_jobs, args.scaling, args.repeats, args.compare_sklearn, args.memory)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
