"""Small-sample statistics for trial counts: Wilson intervals, Fisher exact tests, detectable differences, and
agreement between two labellings (Cohen's kappa, confusion matrix).

At n = 20 per cell intervals are wide; every rate the toolkit reports carries its n and a Wilson 95% interval, and
every comparison carries a Fisher exact p-value, so that differences of a few trials are not over-read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _sps

from common.errors import ConfigError


def _check_counts(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ConfigError(f"invalid count {k}/{n}: need 0 <= k <= n")


def wilson_interval(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n``; ``(nan, nan)`` when ``n == 0``.

    Preferred over the normal (Wald) interval because it stays inside [0, 1] and keeps its coverage at small n and
    at rates near 0 or 1, which is where these experiments live.
    """
    _check_counts(k, n)
    if n == 0:
        return (math.nan, math.nan)
    z = float(_sps.norm.ppf(1 - alpha / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 (k = n) the bound is exactly 0 (1) but centre - half rounds to about 1e-17 off it, which puts the
    # observed rate outside its own interval; return the exact bound.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (float(low), float(high))


def fisher_exact(k1: int, n1: int, k2: int, n2: int, alternative: str = "two-sided") -> float:
    """Fisher exact test p-value for ``k1/n1`` vs ``k2/n2`` (2x2 table of successes and failures)."""
    _check_counts(k1, n1)
    _check_counts(k2, n2)
    if n1 == 0 or n2 == 0:
        return math.nan
    result = _sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative=alternative)
    return float(result.pvalue)


@dataclass(frozen=True)
class DetectableDifference:
    """The smallest departures from ``k/n`` that a second sample of ``n2`` trials would show at ``p < alpha``.

    ``higher`` is the smallest count above ``k*n2/n`` reaching significance (None if none can), ``lower`` the
    largest count below it; the ``*_diff`` fields are the same thresholds as differences in rate.
    """

    k: int
    n: int
    n2: int
    alpha: float
    higher: int | None
    lower: int | None

    @property
    def higher_diff(self) -> float | None:
        return None if self.higher is None else self.higher / self.n2 - self.k / self.n

    @property
    def lower_diff(self) -> float | None:
        return None if self.lower is None else self.lower / self.n2 - self.k / self.n

    def describe(self) -> str:
        parts = []
        if self.higher is not None:
            parts.append(f">= {self.higher}/{self.n2} ({self.higher_diff:+.0%})")
        if self.lower is not None:
            parts.append(f"<= {self.lower}/{self.n2} ({self.lower_diff:+.0%})")
        if not parts:
            return f"against {self.k}/{self.n}, no count out of {self.n2} reaches p < {self.alpha:g}"
        return f"against {self.k}/{self.n}, p < {self.alpha:g} needs {' or '.join(parts)}"

    def to_dict(self) -> dict[str, object]:
        return {"k": self.k, "n": self.n, "n2": self.n2, "alpha": self.alpha, "higher": self.higher,
                "lower": self.lower, "higher_diff": self.higher_diff, "lower_diff": self.lower_diff}


def min_detectable_difference(k: int, n: int, alpha: float = 0.05, two_sided: bool = True,
                              n2: int | None = None) -> DetectableDifference:
    """Thresholds of a Fisher exact test against ``k/n`` for a second sample of ``n2`` (default ``n``) trials.

    E.g. against 10/20, another model needs >= 17/20 (or <= 3/20) for two-sided p < .05. One-sided tests use the
    alternative in the direction of the departure.
    """
    _check_counts(k, n)
    n2 = n if n2 is None else n2
    if n == 0 or n2 == 0:
        return DetectableDifference(k, n, n2, alpha, None, None)

    def p(k2: int, direction: str) -> float:
        return fisher_exact(k2, n2, k, n, "two-sided" if two_sided else direction)

    expected = k * n2 / n
    higher = next((k2 for k2 in range(math.floor(expected) + 1, n2 + 1) if p(k2, "greater") < alpha), None)
    lower = next((k2 for k2 in range(math.ceil(expected) - 1, -1, -1) if p(k2, "less") < alpha), None)
    return DetectableDifference(k, n, n2, alpha, higher, lower)


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (a, b) label pairs: ``counts[i][j]`` = items labelled ``labels[i]`` by a and ``labels[j]`` by b."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        return sum(map(sum, self.counts))

    def to_markdown(self, row_name: str = "a", col_name: str = "b") -> str:
        head = f"| {row_name} \\ {col_name} | " + " | ".join(self.labels) + " |"
        sep = "|---" * (len(self.labels) + 1) + "|"
        body = [f"| {lab} | " + " | ".join(str(c) for c in row) + " |" for lab, row in zip(self.labels, self.counts)]
        return "\n".join([head, sep, *body])

    def to_dict(self) -> dict[str, object]:
        return {"labels": list(self.labels), "counts": [list(r) for r in self.counts]}


def _pairs(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> None:
    if len(a) != len(b):
        raise ConfigError(f"the two labellings differ in length ({len(a)} vs {len(b)}); pair them item by item")
    unknown = sorted({x for x in (*a, *b) if x not in labels}, key=str)
    if unknown:
        raise ConfigError(f"labels {unknown} are not among {list(labels)}")


def confusion_matrix(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> ConfusionMatrix:
    """Confusion matrix of labelling ``a`` (rows) against ``b`` (columns) over ``labels``."""
    _pairs(a, b, labels)
    index = {lab: i for i, lab in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for x, y in zip(a, b):
        counts[index[x]][index[y]] += 1
    return ConfusionMatrix(tuple(labels), tuple(tuple(r) for r in counts))


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa with its observed and chance agreement, n, and an approximate 95% interval.

    The interval uses the large-sample standard error ``sqrt(po(1-po)/n)/(1-pe)``; at small n treat it as a guide.
    ``kappa`` is nan when chance agreement is 1 (both labellings use a single, identical label).
    """

    kappa: float
    observed: float
    expected: float
    n: int
    ci: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        return {"kappa": self.kappa, "observed_agreement": self.observed, "chance_agreement": self.expected,
                "n": self.n, "ci95": list(self.ci)}


def cohen_kappa(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> Kappa:
    """Cohen's kappa between labellings ``a`` and ``b``: agreement corrected for chance, (po - pe) / (1 - pe)."""
    matrix = confusion_matrix(a, b, labels)
    n = matrix.n
    if n == 0:
        return Kappa(math.nan, math.nan, math.nan, 0, (math.nan, math.nan))
    po = sum(matrix.counts[i][i] for i in range(len(labels))) / n
    rows = [sum(r) / n for r in matrix.counts]
    cols = [sum(matrix.counts[i][j] for i in range(len(labels))) / n for j in range(len(labels))]
    pe = sum(r * c for r, c in zip(rows, cols))
    if math.isclose(pe, 1.0):
        return Kappa(math.nan, po, pe, n, (math.nan, math.nan))
    kappa = (po - pe) / (1 - pe)
    se = math.sqrt(po * (1 - po) / n) / (1 - pe)
    z = float(_sps.norm.ppf(0.975))
    return Kappa(kappa, po, pe, n, (max(-1.0, kappa - z * se), min(1.0, kappa + z * se)))


@dataclass(frozen=True)
class GroupDifference:
    """Mean of ``a`` minus mean of ``b`` with a percentile-bootstrap 95% interval, Cohen's d and a two-sided
    permutation p-value (labels shuffled ``n_permutations`` times; p = (1 + #|shuffled| >= |observed|) / (1 + N))."""

    difference: float
    ci95: tuple[float, float]
    cohens_d: float
    p_permutation: float
    n_a: int
    n_b: int
    n_bootstrap: int
    n_permutations: int

    def to_dict(self) -> dict[str, object]:
        return {"difference": self.difference, "ci95": list(self.ci95), "cohens_d": self.cohens_d,
                "p_permutation": self.p_permutation, "n_a": self.n_a, "n_b": self.n_b,
                "n_bootstrap": self.n_bootstrap, "n_permutations": self.n_permutations}


def group_difference(a: Sequence[float], b: Sequence[float], *, n_bootstrap: int = 2000, n_permutations: int = 2000,
                     seed: int = 0) -> GroupDifference:
    """Effect size of ``a`` against ``b`` (e.g. a probe's projection of converged vs other trials), resampling each
    group within itself for the interval; needs at least one value in each group."""
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ConfigError(f"group_difference needs values in both groups, got {x.size} and {y.size}")
    rng = np.random.default_rng(seed)
    observed = float(x.mean() - y.mean())
    boots = rng.choice(x, (n_bootstrap, x.size)).mean(1) - rng.choice(y, (n_bootstrap, y.size)).mean(1)
    lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    pooled = np.concatenate([x, y])
    hits = 0
    for _ in range(n_permutations):
        perm = rng.permutation(pooled)
        hits += abs(perm[:x.size].mean() - perm[x.size:].mean()) >= abs(observed) - 1e-12
    dof = x.size + y.size - 2
    var = ((x.size - 1) * x.var(ddof=1 if x.size > 1 else 0) + (y.size - 1) * y.var(ddof=1 if y.size > 1 else 0))
    sd = math.sqrt(var / dof) if dof > 0 else math.nan
    d = observed / sd if sd and math.isfinite(sd) and sd > 0 else math.nan
    return GroupDifference(observed, (lo, hi), float(d), (1 + hits) / (1 + n_permutations), int(x.size), int(y.size),
                           n_bootstrap, n_permutations)


def mean_interval(values: Sequence[float], alpha: float = 0.05) -> tuple[float, tuple[float, float]]:
    """Mean and Student-t interval of ``values`` (``(nan, nan)`` for fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, (math.nan, math.nan)
    mean = sum(values) / n
    if n < 2:
        return mean, (math.nan, math.nan)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(_sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return mean, (mean - half, mean + half)
