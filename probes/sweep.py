"""Layer sweep: grouped cross-validated probes at every layer, with control task and lexical baseline.

Every layer, estimator, the control task and the lexical baseline use the same grouped folds (whole groups held
out), so all numbers are paired on the same examples. Out-of-fold (OOF) predictions are pooled over folds; accuracy
has a Wilson interval, AUROC a DeLong interval, selectivity a Newcombe interval.

Speed: one layer is loaded at a time (``activations`` may be a callable reading from disk), layers run in
parallel with joblib, the logistic probe works in the exact row-space basis with batched L-BFGS over all
(C, inner fold) problems, and the control task reuses the task probe's basis and C (one more column). By default
(``scaling="layer"``) the logistic probe standardises each layer once, on all its rows, so one basis per layer
serves every fold and all folds' problems are solved in one batch; ``scaling="fold"`` refits the standardisation
and the basis on every training fold (docs/probe-sweep-speed.md says what the choice means and costs).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from probes.controls import LexicalBaseline, control_labels, selectivity
from probes.estimators import DEFAULT_CS, MeanDiffProbe, mean_diff_scores
from probes.metrics import Metric, accuracy, auroc, auroc_difference
from probes.solver import RowBasis, fit_l2_logistic_cv, fit_l2_logistic_cv_folds, row_coordinates

__all__ = [
    "LayerResult",
    "BaselineResult",
    "SweepResult",
    "LayerVerdict",
    "grouped_folds",
    "layer_sweep",
    "select_layer",
    "compare_to_baselines",
]

BUILTIN_ESTIMATORS = ("logistic", "mean_diff", "mean_diff_iid")
SCALINGS = ("layer", "fold")

Activations = np.ndarray | Callable[[int], np.ndarray]
EstimatorSpec = str | tuple[str, BaseEstimator]


@dataclass
class LayerResult:
    """One estimator at one layer: pooled out-of-fold metrics on the task and on the control task."""

    layer: int
    estimator: str
    accuracy: Metric
    auroc: Metric
    control_accuracy: Metric
    selectivity: Metric
    fold_auroc: list[float]
    chosen_C: list[float] | None = None
    oof_scores: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self, include_scores: bool = False) -> dict:
        d = {
            "layer": self.layer,
            "estimator": self.estimator,
            "accuracy": self.accuracy.to_dict(),
            "auroc": self.auroc.to_dict(),
            "control_accuracy": self.control_accuracy.to_dict(),
            "selectivity": self.selectivity.to_dict(),
            "fold_auroc": [_nan_to_none(a) for a in self.fold_auroc],
            "chosen_C": self.chosen_C,
        }
        if include_scores and self.oof_scores is not None:
            d["oof_scores"] = self.oof_scores.tolist()
        return d


@dataclass
class BaselineResult:
    """The lexical baseline on the same folds (layer-independent)."""

    name: str
    accuracy: Metric
    auroc: Metric
    fold_auroc: list[float]
    chosen_C: list[float]
    oof_scores: np.ndarray = field(repr=False)

    def to_dict(self, include_scores: bool = False) -> dict:
        d = {
            "name": self.name,
            "accuracy": self.accuracy.to_dict(),
            "auroc": self.auroc.to_dict(),
            "fold_auroc": [_nan_to_none(a) for a in self.fold_auroc],
            "chosen_C": self.chosen_C,
        }
        if include_scores:
            d["oof_scores"] = self.oof_scores.tolist()
        return d


@dataclass
class SweepResult:
    layers: list[int]
    estimators: list[str]
    results: dict[str, list[LayerResult]]  # estimator -> one result per layer, in ``layers`` order
    lexical: BaselineResult | None
    n_splits: int  # folds actually used
    test_groups: list[list[str]]  # held-out groups per fold
    n_model_layers: int
    control: dict
    notes: list[str]
    timings: dict[str, float]
    n_jobs: int
    y: np.ndarray = field(repr=False)
    scaling: str = "layer"  # where the logistic probe's standardisation was fitted (see layer_sweep)

    def get(self, estimator: str, layer: int) -> LayerResult:
        return self.results[estimator][self.layers.index(layer)]

    def to_dict(self, include_scores: bool = False) -> dict:
        return {
            "layers": self.layers,
            "estimators": self.estimators,
            "results": {e: [r.to_dict(include_scores) for r in rs] for e, rs in self.results.items()},
            "lexical": None if self.lexical is None else self.lexical.to_dict(include_scores),
            "n_splits": self.n_splits,
            "test_groups": self.test_groups,
            "n_model_layers": self.n_model_layers,
            "control": self.control,
            "notes": self.notes,
            "timings": self.timings,
            "n_jobs": self.n_jobs,
            "scaling": self.scaling,
        }


def grouped_folds(
    groups: np.ndarray, n_splits: int = 5, seed: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """Grouped K-fold: each group lies entirely in one test fold. Uses min(n_splits, n_groups) folds and returns
    a note when that is fewer than asked."""
    groups = np.asarray(groups)
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise ValueError(f"grouped evaluation needs at least 2 groups, got {n_groups}")
    notes = []
    k = min(n_splits, n_groups)
    if k < n_splits:
        notes.append(f"only {n_groups} groups: using {k} folds instead of {n_splits}")
    cv = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(groups)), groups=groups)), notes


# --------------------------------------------------------------------------------------------------------------
# per-layer work (runs in joblib workers)
# --------------------------------------------------------------------------------------------------------------


def _fold_auroc(y: np.ndarray, s: np.ndarray) -> float:
    if np.unique(y).size < 2:
        return float("nan")
    return auroc(y, s).value


def _evaluate(name, layer, y, yc, splits, scores, preds, cpreds, Cs_chosen) -> LayerResult:
    acc = accuracy(y, preds)
    cacc = accuracy(yc, cpreds)
    return LayerResult(
        layer=layer,
        estimator=name,
        accuracy=acc,
        auroc=auroc(y, scores),
        control_accuracy=cacc,
        selectivity=selectivity(acc, cacc),
        fold_auroc=[_fold_auroc(y[te], scores[te]) for _, te in splits],
        chosen_C=Cs_chosen,
        oof_scores=scores,
    )


def _run_layer(layer, activations, y, yc, groups, splits, estimators, opts) -> tuple[int, list[LayerResult], dict]:
    if opts["blas_threads"] is None:
        return _run_layer_inner(layer, activations, y, yc, groups, splits, estimators, opts)
    with threadpool_limits(limits=opts["blas_threads"]):
        return _run_layer_inner(layer, activations, y, yc, groups, splits, estimators, opts)


def _logistic_folds(X, y, yc, groups, splits, opts, tick):
    """Held-out (task, control) logits and chosen C of the logistic probe, per outer fold.

    ``scaling="layer"``: one standardisation and one row-space basis for the whole layer, shared by every fold (a
    fold's training rows span a subspace of the layer's rows, so each fold's problem is unchanged; the held-out rows'
    coordinates are rows of the same basis). ``scaling="fold"``: every training fold fits its own standardisation
    and basis (5x the basis cost; the sweep's behaviour before the per-layer basis).
    """
    kw = {"seed": opts["seed"], **opts["logistic"]}
    t0 = time.perf_counter()
    if opts["scaling"] == "layer":
        Z = row_coordinates(X, dtype=opts["precision"])  # only the coordinates: the rest of the basis is not needed
        tick("logistic_basis", t0)
        t0 = time.perf_counter()
        fits = fit_l2_logistic_cv_folds(Z, y, groups, [tr for tr, _ in splits], extra_targets=yc, **kw)
        out = [((tr, te), Z[te] @ fit["theta"][:-1] + fit["theta"][-1], fit["C"]) for (tr, te), fit in zip(splits, fits)]
        tick("logistic_fit", t0)
        return out
    out = []
    for tr, te in splits:
        t0 = time.perf_counter()
        basis = RowBasis.fit(X[tr], dtype=opts["precision"])
        Zte = basis.transform(X[te])
        tick("logistic_basis", t0)
        t0 = time.perf_counter()
        fit = fit_l2_logistic_cv(basis, y[tr], groups[tr], extra_targets=yc[tr], **kw)
        out.append(((tr, te), Zte @ fit["theta"][:-1] + fit["theta"][-1], fit["C"]))
        tick("logistic_fit", t0)
    return out


def _run_layer_inner(layer, activations, y, yc, groups, splits, estimators, opts):
    t: dict[str, float] = {}

    def tick(key, t0):
        t[key] = t.get(key, 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    X = activations(layer) if callable(activations) else activations
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != len(y):
        raise ValueError(f"layer {layer}: activations have shape {X.shape}, expected ({len(y)}, d)")
    tick("load", t0)
    n = len(y)
    out = []
    for spec in estimators:
        name, est = spec if isinstance(spec, tuple) else (spec, None)
        scores, preds, cpreds = np.empty(n), np.empty(n, dtype=int), np.empty(n, dtype=int)
        chosen = [] if name == "logistic" else None
        if name == "logistic":
            for (_, te), logits, C in _logistic_folds(X, y, yc, groups, splits, opts, tick):
                scores[te], preds[te], cpreds[te] = logits[:, 0], logits[:, 0] > 0, logits[:, 1] > 0
                chosen.append(C)
        else:
            for tr, te in splits:
                t0 = time.perf_counter()
                if name == "mean_diff" and est is None:
                    s_te = mean_diff_scores(X[tr], np.column_stack([y[tr], yc[tr]]), X[te])
                    scores[te], preds[te], cpreds[te] = s_te[:, 0], s_te[:, 0] > 0, s_te[:, 1] > 0
                else:
                    base = MeanDiffProbe(iid=name == "mean_diff_iid") if est is None else est
                    task = clone(base).fit(X[tr], y[tr])
                    ctrl = clone(base).fit(X[tr], yc[tr])
                    scores[te] = task.decision_function(X[te])
                    preds[te], cpreds[te] = task.predict(X[te]), ctrl.predict(X[te])
                tick(name, t0)
        t0 = time.perf_counter()
        out.append(_evaluate(name, layer, y, yc, splits, scores, preds, cpreds, chosen))
        tick("metrics", t0)
    return layer, out, t


def _lexical(texts, y, groups, splits, seed) -> tuple[BaselineResult, float]:
    t0 = time.perf_counter()
    texts = np.asarray([str(s) for s in texts], dtype=object)
    scores, preds, chosen = np.empty(len(y)), np.empty(len(y), dtype=int), []
    for tr, te in splits:
        m = LexicalBaseline(random_state=seed).fit(texts[tr], y[tr], groups=groups[tr])
        scores[te] = m.decision_function(texts[te])
        preds[te] = m.predict(texts[te])
        chosen.append(m.C_)
    res = BaselineResult(
        name="lexical_tfidf_1-2gram_logreg",
        accuracy=accuracy(y, preds),
        auroc=auroc(y, scores),
        fold_auroc=[_fold_auroc(y[te], scores[te]) for _, te in splits],
        chosen_C=chosen,
        oof_scores=scores,
    )
    return res, time.perf_counter() - t0


def layer_sweep(
    activations: Activations,
    y: np.ndarray,
    groups: np.ndarray,
    texts: Sequence[str] | None = None,
    *,
    layers: Sequence[int] | None = None,
    estimators: Sequence[EstimatorSpec] = ("logistic", "mean_diff"),
    n_splits: int = 5,
    seed: int = 0,
    n_jobs: int = -1,
    blas_threads: int | None = 1,
    control_types: np.ndarray | None = None,
    control_scheme: str = "type",
    Cs: Sequence[float] = DEFAULT_CS,
    inner_cv: int = 3,
    tol: float = 1e-4,
    precision: str = "float32",
    scaling: str = "layer",
    n_model_layers: int | None = None,
) -> SweepResult:
    """Probe every layer with grouped K-fold CV; see the module docstring.

    ``activations``: array (n_layers, n, d) (``layers`` defaults to all), or a callable ``layer -> (n, d)`` array
    with an explicit ``layers`` list (streams one layer at a time; with ``n_jobs > 1`` it must be picklable).
    ``y``: binary labels; ``groups``: held-out unit (entity/domain); ``texts``: for the lexical baseline (skipped
    if None). ``estimators``: names from ``BUILTIN_ESTIMATORS`` or ``(name, sklearn_estimator)`` pairs (a
    ``decision_function`` is required). ``control_types``/``control_scheme``: see ``probes.controls``.
    ``n_jobs``: joblib workers over layers (-1: one per CPU). ``blas_threads``: BLAS threads per worker (None:
    leave as is). Parallelism across layers with single-threaded BLAS is the default because multi-threaded
    OpenBLAS ``eigh`` on these sizes was 10-25x slower on a shared 2-core machine (threads spin while waiting
    for a core); parallelism across layers does not have that failure mode.
    ``precision``: dtype of the logistic probe's Gram/eigendecomposition (float32: ~2x faster, C choices and
    scores match float64 closely; see ``LogisticProbe``). ``scaling``: where the logistic probe's standardisation is
    fitted: ``"layer"`` (default) once per layer on all its rows, labels unused, shared by every fold, so the layer
    needs one Gram matrix and one eigendecomposition; ``"fold"`` on each outer fold's training rows only (the held-out
    rows never touch it; 5x the basis cost). See docs/probe-sweep-speed.md. ``n_model_layers``: model depth for
    ``select_layer`` (default: array depth or max(layers) + 1).
    """
    t_start = time.perf_counter()
    y_raw = np.asarray(y)
    classes, yb = np.unique(y_raw, return_inverse=True)
    if classes.size != 2:
        raise ValueError(f"binary labels required, got {classes.tolist()}")
    yb = yb.astype(int)
    n = len(yb)
    notes: list[str] = []
    if groups is None:
        groups = np.arange(n)
        notes.append("no groups given: every example is its own group (plain K-fold)")
    groups = np.asarray(groups).astype(str)
    if callable(activations):
        if layers is None:
            raise ValueError("a callable activations source needs an explicit layers list")
        depth = n_model_layers or max(layers) + 1
    else:
        activations = np.asarray(activations) if not isinstance(activations, np.memmap) else activations
        if activations.ndim != 3 or activations.shape[1] != n:
            raise ValueError(f"activations must be (n_layers, {n}, d), got {activations.shape}")
        layers = list(range(activations.shape[0])) if layers is None else list(layers)
        depth = n_model_layers or activations.shape[0]
    layers = [int(layer) for layer in layers]
    for spec in estimators:
        name = spec[0] if isinstance(spec, tuple) else spec
        if not isinstance(spec, tuple) and name not in BUILTIN_ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r}; built-ins are {BUILTIN_ESTIMATORS}")

    splits, fold_notes = grouped_folds(groups, n_splits, seed)
    notes += fold_notes
    for i, (_, te) in enumerate(splits):
        if np.unique(yb[te]).size < 2:
            notes.append(f"fold {i}: held-out groups contain one class only; its fold AUROC is NaN")
    for note in fold_notes:
        warnings.warn(note, stacklevel=2)
    yc = control_labels(yb, types=control_types, groups=groups, scheme=control_scheme, seed=seed).astype(int)

    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    opts = {"seed": seed, "precision": precision, "scaling": scaling, "blas_threads": blas_threads,
            "logistic": {"Cs": Cs, "cv": inner_cv, "scoring": "log_loss", "tol": tol, "max_iter": 500}}

    def source(layer):
        return activations if callable(activations) else activations[layer]

    t0 = time.perf_counter()
    runs = Parallel(n_jobs=n_jobs)(
        delayed(_run_layer)(layer, source(layer), yb, yc, groups, splits, list(estimators), opts) for layer in layers
    )
    t_layers = time.perf_counter() - t0
    timings: dict[str, float] = {}
    names = [s[0] if isinstance(s, tuple) else s for s in estimators]
    results: dict[str, list[LayerResult]] = {nm: [] for nm in names}
    for _, layer_results, t in sorted(runs, key=lambda r: layers.index(r[0])):
        for r in layer_results:
            results[r.estimator].append(r)
        for key, v in t.items():
            timings[f"{key} (summed over workers)"] = timings.get(f"{key} (summed over workers)", 0.0) + v
    timings["layers wall"] = t_layers

    lexical = None
    if texts is not None:
        if len(texts) != n:
            raise ValueError(f"{len(texts)} texts for {n} labels")
        lexical, timings["lexical wall"] = _lexical(texts, yb, groups, splits, seed)
    timings["total wall"] = time.perf_counter() - t_start
    return SweepResult(
        layers=layers,
        estimators=names,
        results=results,
        lexical=lexical,
        n_splits=len(splits),
        test_groups=[sorted(np.unique(groups[te]).tolist()) for _, te in splits],
        n_model_layers=int(depth),
        control={
            "scheme": control_scheme,
            "types": "per example" if control_types is None else "given",
            "seed": seed,
            "positive_rate": float(yc.mean()),
            "task_positive_rate": float(yb.mean()),
        },
        notes=notes,
        timings=timings,
        n_jobs=n_jobs,
        y=yb,
        scaling=scaling,
    )


# --------------------------------------------------------------------------------------------------------------
# reading a sweep
# --------------------------------------------------------------------------------------------------------------


def select_layer(
    result: SweepResult,
    estimator: str = "logistic",
    *,
    exclude_last_frac: float = 0.2,
    require_selective: bool = True,
) -> int:
    """The layer selection rule.

    1. Candidates: swept layers with index < (1 - exclude_last_frac) * n_model_layers (Arditi et al. 2024 drop
       the last 20% of layers: directions there sit close to the unembedding and are poor intervention sites),
       whose AUROC 95% interval lies above 0.5, and, if ``require_selective``, whose selectivity interval lies
       above 0 (probe beats its control task). These per-layer tests are not corrected for the number of layers
       swept: an isolated qualifying layer amid chance-level neighbours deserves suspicion.
    2. Best: the candidate with the highest pooled out-of-fold AUROC.
    3. Chosen: the EARLIEST candidate whose AUROC point estimate is >= the best layer's lower 95% DeLong bound,
       i.e. the first layer not distinguishable from the best. Earlier layers leave more downstream computation
       for steering and patching, and among statistically tied layers a fixed tie-break beats picking by eye.

    Raises ``ValueError`` when no candidate remains (e.g. nothing beats the control task): the report must say so
    rather than pick a layer.
    """
    rows = result.results[estimator]
    cutoff = (1 - exclude_last_frac) * result.n_model_layers
    cands = [
        r
        for r in rows
        if r.layer < cutoff and r.auroc.low > 0.5 and (not require_selective or r.selectivity.low > 0)
    ]
    if not cands:
        raise ValueError(
            f"no layer qualifies for {estimator!r}: need layer < {cutoff:g}, AUROC interval above 0.5"
            + (" and selectivity interval above 0" if require_selective else "")
            + "; report that no layer was selected (or relax require_selective/exclude_last_frac explicitly)"
        )
    best = max(cands, key=lambda r: r.auroc.value)
    tied = [r for r in cands if r.auroc.value >= best.auroc.low]
    return min(r.layer for r in tied)


@dataclass
class LayerVerdict:
    layer: int
    estimator: str
    beats_control: bool
    beats_lexical: bool | None  # None: no lexical baseline in the sweep
    selectivity: Metric
    auroc_minus_lexical: Metric | None
    p_vs_lexical: float | None
    statement: str

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "estimator": self.estimator,
            "beats_control": self.beats_control,
            "beats_lexical": self.beats_lexical,
            "selectivity": self.selectivity.to_dict(),
            "auroc_minus_lexical": None if self.auroc_minus_lexical is None else self.auroc_minus_lexical.to_dict(),
            "p_vs_lexical": self.p_vs_lexical,
            "statement": self.statement,
        }


def compare_to_baselines(result: SweepResult, estimator: str = "logistic") -> list[LayerVerdict]:
    """Per layer, say plainly whether the probe beats the control task and the lexical baseline.

    Beats control: the Newcombe 95% interval of selectivity (task accuracy - control accuracy) lies above 0.
    Beats lexical: the paired DeLong 95% interval of AUROC(probe) - AUROC(lexical) on the same OOF examples lies
    above 0 (a paired test, stricter and better-founded than comparing one interval against a point estimate).
    """
    out = []
    for r in result.results[estimator]:
        sel = r.selectivity
        beats_control = sel.low > 0
        parts = [
            f"layer {r.layer} ({estimator}): AUROC {r.auroc.value:.3f} [{r.auroc.low:.3f}, {r.auroc.high:.3f}]",
            ("beats" if beats_control else "does NOT beat")
            + f" the control task (selectivity {sel.value:+.3f} [{sel.low:+.3f}, {sel.high:+.3f}])",
        ]
        diff = p = beats_lex = None
        if result.lexical is not None and r.oof_scores is not None:
            diff, p = auroc_difference(result.y, r.oof_scores, result.lexical.oof_scores)
            beats_lex = diff.low > 0
            parts.append(
                ("beats" if beats_lex else "does NOT beat")
                + f" the lexical baseline (dAUROC {diff.value:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}],"
                f" p={p:.3g}; lexical AUROC {result.lexical.auroc.value:.3f})"
            )
        out.append(LayerVerdict(r.layer, estimator, beats_control, beats_lex, sel, diff, p, "; ".join(parts)))
    return out


def _nan_to_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x
