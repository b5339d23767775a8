"""Benchmark the full probe layer sweep on synthetic activations shaped like real models.

Settings (every layer x 5 grouped folds x {logistic, mean_diff} x {task, control task}, plus the lexical baseline):
  smollm: SmolLM2-135M-shaped, 30 layers, d=576, n=800
  8b:     Llama-3.1-8B-shaped, 32 layers, d=4096, n=2000

Activations are Gaussian with a decaying spectrum, a few large shared "outlier" directions and a mean offset (as
in residual streams), plus a label signal along a planted direction whose strength peaks mid-depth. Each layer
is written to its own .npy file first and the sweep streams them back one at a time, as it would from an
activation cache (generation time is reported separately and excluded from the sweep time).

    python bench/bench_probe_sweep.py                      # both settings, n_jobs=2
    python bench/bench_probe_sweep.py --settings smollm --n-jobs 1 2
    python bench/bench_probe_sweep.py --compare-sklearn    # also time a plain scikit-learn nested-CV fold
"""

from __future__ import annotations

import argparse
import os
import platform
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


def run(name: str, n_jobs_list: list[int], compare_sklearn: bool) -> None:
    cfg = SETTINGS[name]
    print(f"\n=== {name}: {cfg['n_layers']} layers, n={cfg['n']}, d={cfg['d']} ===", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as tmp:
        t0 = time.perf_counter()
        y, groups, texts = make_layers(Path(tmp), **cfg)
        print(f"data generation (excluded): {time.perf_counter() - t0:.1f} s", flush=True)
        loader = partial(load_layer, tmp)  # picklable: workers read their own layers from disk
        for n_jobs in n_jobs_list:
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            res = layer_sweep(loader, y, groups, texts, layers=list(range(cfg["n_layers"])), n_jobs=n_jobs)
            wall = time.perf_counter() - t0
            fits = cfg["n_layers"] * res.n_splits
            print(f"n_jobs={n_jobs}: full sweep wall {wall:.1f} s  ({wall / cfg['n_layers']:.2f} s/layer;"
                  f" load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f})")
            print("  stages (summed over workers, s):")
            for key, v in res.timings.items():
                print(f"    {key:45s} {v:8.2f}")
            print(f"  per layer-fold: logistic basis {res.timings['logistic_basis (summed over workers)'] / fits:.3f} s,"
                  f" logistic C-search+refit(task+control) {res.timings['logistic_fit (summed over workers)'] / fits:.3f} s")
        best = {}
        for e in res.estimators:
            try:
                best[e] = select_layer(res, e)
            except ValueError as err:
                print(f"  {e}: {err}")
                continue
            r = res.get(e, best[e])
            print(f"  {e} selected layer {best[e]}: AUROC {r.auroc}, control acc {r.control_accuracy.value:.3f},"
                  f" selectivity {r.selectivity.value:+.3f}")
        print(f"  lexical baseline AUROC {res.lexical.auroc}")
        layer = best.get("logistic", cfg["n_layers"] // 2)
        print("  " + compare_to_baselines(res, "logistic")[layer].statement)
        if compare_sklearn:
            t = time_sklearn_fold(Path(tmp), y, groups, layer)
            print(f"  scikit-learn StandardScaler+LogisticRegressionCV, ONE layer-fold, task only: {t:.2f} s"
                  f" (x {fits * 2} layer-fold-tasks for a full sweep with control)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--n-jobs", nargs="+", type=int, default=[2])
    ap.add_argument("--compare-sklearn", action="store_true")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    for name in args.settings:
        run(name, args.n_jobs, args.compare_sklearn)


if __name__ == "__main__":
    main()
