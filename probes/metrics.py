"""Classification metrics with confidence intervals for probe evaluation.

- Accuracy: Wilson score interval (better coverage than the normal interval at small n or p near 0/1).
- AUROC: DeLong et al. (1988) variance via the fast midrank algorithm of Sun & Xu (2014), normal interval
  clipped to [0, 1] (the same interval pROC reports as "DeLong"). Hanley & McNeil (1982) and a stratified
  percentile bootstrap are available through ``method=``.
- Paired AUROC difference (two scorers, same examples and labels): DeLong's covariance, normal interval and
  two-sided p-value.
- Difference of two proportions: Newcombe's (1998, method 10) hybrid Wilson interval, treating them as independent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from common.stats import wilson_interval  # one implementation for probes and trial tables

__all__ = [
    "Metric",
    "wilson_interval",
    "accuracy",
    "auroc",
    "auroc_difference",
    "delong_components",
    "proportion_difference",
]


@dataclass(frozen=True)
class Metric:
    """A point estimate with a confidence interval computed from ``n`` examples."""

    value: float
    low: float
    high: float
    n: int
    method: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, confidence: float = 0.95) -> Metric:
    """Accuracy with a Wilson interval."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: {y_true.shape} vs {y_pred.shape}")
    n = int(y_true.size)
    k = int((y_true == y_pred).sum())
    low, high = wilson_interval(k, n, alpha=1 - confidence)
    return Metric(k / n if n else float("nan"), low, high, n, "wilson")


def _midrank(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = len(x)
    # Boundaries of runs of equal values; each run gets the mean of its positions.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]
    run_rank = (starts + ends + 1) / 2.0  # mean of 1-based positions starts+1 .. ends
    ranks_sorted = np.repeat(run_rank, ends - starts)
    out = np.empty(n, dtype=float)
    out[order] = ranks_sorted
    return out


def _split_binary(y_true: np.ndarray) -> tuple[np.ndarray, int, int]:
    y = np.asarray(y_true)
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError(f"AUROC needs exactly two classes, got {classes.tolist()}")
    pos = y == classes[1]
    return pos, int(pos.sum()), int((~pos).sum())


def delong_components(pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROCs and DeLong structural components for scorers in the rows of ``scores`` (k, n)."""
    m, n = int(pos.sum()), int((~pos).sum())
    aucs, v10s, v01s = [], [], []
    for s in np.atleast_2d(scores):
        sp, sn = s[pos], s[~pos]
        tz = _midrank(np.concatenate([sp, sn]))
        tx, ty = _midrank(sp), _midrank(sn)
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10s.append((tz[:m] - tx) / n)  # per positive: fraction of negatives it outranks
        v01s.append(1.0 - (tz[m:] - ty) / m)  # per negative: fraction of positives that outrank it
    return np.array(aucs), np.array(v10s), np.array(v01s)


def _bootstrap_auroc(sp: np.ndarray, sn: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Stratified bootstrap AUROCs, vectorised with resampling multiplicities instead of index copies."""
    rng = np.random.default_rng(seed)
    m, n = len(sp), len(sn)
    sn_sorted = np.sort(sn)
    order = np.argsort(sn, kind="mergesort")
    lt = np.searchsorted(sn_sorted, sp, side="left")  # negatives strictly below each positive
    le = np.searchsorted(sn_sorted, sp, side="right")
    cn = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)[:, order]  # multiplicities in sorted order
    cum = np.concatenate([np.zeros((n_boot, 1)), np.cumsum(cn, axis=1)], axis=1)
    below = cum[:, lt] + 0.5 * (cum[:, le] - cum[:, lt])  # (B, m) weighted wins per positive
    cp = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot)
    return (cp * below).sum(axis=1) / (m * n)


def auroc(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    method: str = "delong",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Metric:
    """AUROC with a confidence interval.

    ``method``: ``"delong"`` (default; nonparametric variance, Sun & Xu 2014 algorithm), ``"hanley_mcneil"``
    (parametric exponential approximation, Hanley & McNeil 1982) or ``"bootstrap"`` (stratified percentile
    bootstrap, ``n_boot`` resamples). Ties in scores count one half. Returns NaN when one class is absent.
    """
    pos, m, n = _split_binary(y_true)
    s = np.asarray(scores, dtype=float)
    if s.shape != pos.shape:
        raise ValueError(f"shape mismatch: {pos.shape} vs {s.shape}")
    z = _z(confidence)
    aucs, v10, v01 = delong_components(pos, s)
    a = float(aucs[0])
    if method == "delong":
        var = (np.var(v10[0], ddof=1) / m if m > 1 else 0.0) + (np.var(v01[0], ddof=1) / n if n > 1 else 0.0)
        half = z * np.sqrt(var)
        lo, hi = a - half, a + half
    elif method == "hanley_mcneil":
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        var = (a * (1 - a) + (m - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (m * n)
        half = z * np.sqrt(max(var, 0.0))
        lo, hi = a - half, a + half
    elif method == "bootstrap":
        boots = _bootstrap_auroc(s[pos], s[~pos], n_boot, seed)
        alpha = (1 - confidence) / 2
        lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    else:
        raise ValueError(f"unknown AUROC interval method {method!r}")
    return Metric(a, float(max(0.0, lo)), float(min(1.0, hi)), m + n, method)


def auroc_difference(
    y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, confidence: float = 0.95
) -> tuple[Metric, float]:
    """AUROC(a) - AUROC(b) on the same examples (paired DeLong test). Returns (difference, two-sided p)."""
    pos, m, n = _split_binary(y_true)
    s = np.vstack([np.asarray(scores_a, float), np.asarray(scores_b, float)])
    aucs, v10, v01 = delong_components(pos, s)
    cov = np.cov(v10) / m + np.cov(v01) / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = float(aucs[0] - aucs[1])
    se = np.sqrt(max(var, 0.0))
    half = _z(confidence) * se
    p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else (0.0 if diff != 0 else 1.0)
    return Metric(diff, diff - half, diff + half, m + n, "delong_paired"), p


def proportion_difference(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Metric:
    """p1 - p2 with Newcombe's hybrid Wilson interval (method 10; assumes independent samples)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, alpha=1 - confidence)
    l2, u2 = wilson_interval(k2, n2, alpha=1 - confidence)
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Metric(d, float(low), float(high), min(n1, n2), "newcombe")
