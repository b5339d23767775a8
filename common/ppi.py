"""Prediction-powered inference (PPI++) for rates: a judge labels all N trials, a reviewer a random n of them.

The judge's labels are cheap but biased; the reviewer's are what a rate should mean but few. PPI (Angelopoulos et al.,
Science 2023) corrects the judge-based estimate by the judge's error measured on the reviewed trials; PPI++
(Angelopoulos, Duchi & Zrnic 2023) weights the judge by a power-tuning ``lam`` in [0, 1] chosen from the data, so that
the interval is never wider (asymptotically) than the reviewed-only one: ``lam = 0`` *is* the reviewed-only estimate.

The reviewed trials are among the judged ones, so the judge-mean term runs over the ``m = N - n`` *unreviewed*
trials: reviewed and unreviewed trials are then two independent samples of the model's outputs, as PPI assumes, and
the estimand is the model's rate (the superpopulation), not the rate among these N trials.

One estimating equation serves means and ratios. The rate of convergence converged / (trials - refused) is the
``theta`` solving ``E[c - theta * e] = 0`` with ``c = 1{converged}`` and ``e = 1 - 1{refused}``; PPI++ on that
equation (with its own ``lam``) gives ``theta = (mean_n(c - lam c^) + lam mean_m(c^)) / (mean_n(e - lam e^) +
lam mean_m(e^))`` and a sandwich variance. A proportion is the case ``e = e^ = 1``, where this is exactly
``ppi_py.ppi_mean_ci`` (``tests/test_ppi.py`` holds it to that package's answers).

**Small n.** At 10-40 reviewed trials and rates near 0 or 1 the normal interval ``theta +- z se`` leaves [0, 1],
and collapses to zero width when the judge agrees with every reviewed trial and labels every trial alike. The
interval reported is therefore the survey statisticians' fix for proportions from a complex design (Korn & Graubard
1998, with Wilson's interval in place of Clopper-Pearson's): a Wilson interval at the *effective sample size*
``n_eff = q(1 - q) / se^2``, capped at the number of trials N (no design can know more than reviewing all of them),
where ``q`` is the estimate kept at least ``1 / (2N)`` from 0 and 1. It stays inside [0, 1], keeps a width of at
least Wilson's at N, and equals the reviewed-only Wilson interval when ``lam = 0``. Two small-sample corrections
(chosen by simulation, ``bench/sim_ppi.py``; ``docs/rates.md``): the cap is ``n + lam^2 (N - n)`` engaged trials
rather than N (a judge whose weight was tuned on 10 rows must not count as N reviews), and the quantile is Student's
t with n - 1 degrees of freedom where the variance is a plug-in estimate (``lam > 0``).

Differences between two independent conditions use Newcombe's hybrid score interval (1998, method 10) built on each
arm's interval, and the p-value is the level at which that interval just reaches 0 (so p < alpha exactly when the
interval excludes 0). It replaces the count-based Fisher test, which has no counts to work on once the rate is
corrected.

Arrays may carry leading batch axes (one study per row), so the simulation runs thousands of studies at once
through the same code as a single table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from common.errors import ConfigError

__all__ = ["DifferenceEstimate", "PPIEstimate", "ppi_arrays", "ppi_difference", "ppi_mean", "ppi_ratio",
           "wilson_effective", "difference_interval"]

_POWER = 0.8  # the power at which :attr:`DifferenceEstimate.detectable` is stated


@dataclass(frozen=True)
class PPIEstimate:
    """A prediction-powered rate with its interval.

    ``estimate`` is clipped to [0, 1] (``raw_estimate`` is the unclipped solution); ``ci`` the small-n interval
    (Wilson at ``n_effective``, see :func:`ppi_arrays`); ``wald_ci`` the plain PPI++ normal interval ``raw_estimate +- z se`` that
    ``ppi_py`` reports. ``lam`` is the power-tuning weight of the judge (0: reviewed-only, 1: plain PPI).
    ``n_reviewed`` counts the reviewed trials used, ``n_total`` every trial (reviewed and not).
    """

    estimate: float
    ci: tuple[float, float]
    se: float
    lam: float
    n_reviewed: int
    n_total: int
    n_effective: float
    alpha: float
    method: str
    raw_estimate: float
    wald_ci: tuple[float, float]
    df: int | None = None  # degrees of freedom of the t quantile (None: the normal one)

    def quantile(self, alpha: float) -> float:
        """The quantile this interval uses at level ``alpha`` (t with ``df`` degrees of freedom, else normal)."""
        return float(_sps.t.ppf(1 - alpha / 2, self.df)) if self.df else _z(alpha)

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci": list(self.ci), "se": self.se, "lam": self.lam,
                "n_reviewed": self.n_reviewed, "n_total": self.n_total, "n_effective": self.n_effective,
                "alpha": self.alpha, "method": self.method, "raw_estimate": self.raw_estimate,
                "wald_ci": list(self.wald_ci), "t_df": self.df}


@dataclass(frozen=True)
class DifferenceEstimate:
    """``a - b`` for two independent rates: Newcombe's interval from each arm's interval, and the p-value at which
    that interval reaches 0. ``se`` is taken at each arm's effective n; ``detectable`` is the difference this design
    would detect with 80% power at ``alpha`` (``(z_{1-alpha/2} + z_{0.8}) * se``): what replaces the count-based
    detectable difference."""

    estimate: float
    ci: tuple[float, float]
    p_value: float
    se: float
    detectable: float
    alpha: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci": list(self.ci), "p_value": self.p_value, "se": self.se,
                "detectable": self.detectable, "alpha": self.alpha, "method": self.method}


def _z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    return float(_sps.norm.ppf(1 - alpha / 2))


def _mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1) if x.shape[-1] else np.zeros(x.shape[:-1])


def _var0(x: np.ndarray) -> np.ndarray:
    """Population variance (ddof 0) over the last axis, as ``ppi_py`` uses for its standard errors."""
    return x.var(axis=-1) if x.shape[-1] else np.zeros(x.shape[:-1])


def ppi_arrays(y_num: np.ndarray, y_den: np.ndarray, f_num: np.ndarray, f_den: np.ndarray, u_num: np.ndarray,
               u_den: np.ndarray, lam: float | None = None, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """PPI++ for ``theta`` solving ``E[num - theta * den] = 0``, over the last axis (leading axes are studies).

    ``y_*``: the reviewer's values on the n reviewed trials; ``f_*``: the judge's on the same trials; ``u_*``: the
    judge's on the m unreviewed trials. Predictions may be soft (probabilities). Returns ``theta`` (unclipped),
    ``se``, ``lam``, ``den`` (the estimated mean of ``den``: the engaged share for the rate of convergence) and the
    small-n interval ``low``, ``high`` with its ``n_eff`` (:func:`wilson_effective`). ``lam`` None tunes it (clipped
    to [0, 1]); with no unreviewed trials it is 0 (nothing to borrow).

    The interval's cap on the effective n is ``den * (n + lam^2 * m)``: the judge's trials enter the variance with
    weight ``lam^2``, so at ``lam = 0`` the interval is exactly Wilson's over the reviewed engaged trials and at
    ``lam = 1`` it may reach Wilson's over all N. Where ``lam > 0`` the variance is a plug-in estimate from the n
    reviewed trials, so the quantile is Student's t with n - 1 degrees of freedom instead of the normal one.
    """
    y_num, y_den, f_num, f_den, u_num, u_den = (np.asarray(a, dtype=float) for a in
                                                (y_num, y_den, f_num, f_den, u_num, u_den))
    n, m = y_num.shape[-1], u_num.shape[-1]
    if n == 0:
        raise ConfigError("PPI needs at least one reviewed trial")

    def solve(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        num = _mean(y_num) - weight * _mean(f_num) + weight * _mean(u_num)
        den = _mean(y_den) - weight * _mean(f_den) + weight * _mean(u_den)
        with np.errstate(divide="ignore", invalid="ignore"):
            return num / den, den

    if lam is not None:
        weight = np.broadcast_to(np.asarray(float(lam) if m else 0.0), y_num.shape[:-1]).astype(float)
    elif m == 0:
        weight = np.zeros(y_num.shape[:-1])
    else:
        # Tune lam at a first estimate (plain PPI, lam = 1; the reviewed-only one where that is undefined), as
        # ppi_py does: lam = Cov(g, g^) / ((1 + n/m) Var(g^)), with g the estimating function at that estimate.
        theta0, den0 = solve(np.ones(y_num.shape[:-1]))
        classical = _mean(y_num) / np.where(_mean(y_den) > 0, _mean(y_den), np.nan)
        theta0 = np.where(np.isfinite(theta0) & (den0 > 0), theta0, classical)
        theta0 = np.nan_to_num(theta0, nan=0.0)[..., None]
        g_y = y_num - theta0 * y_den
        g_f = f_num - theta0 * f_den
        g_u = u_num - theta0 * u_den
        cov = _mean((g_y - _mean(g_y)[..., None]) * (g_f - _mean(g_f)[..., None]))
        both = np.concatenate([g_f, g_u], axis=-1)
        var = both.var(axis=-1, ddof=1) if n + m > 1 else np.zeros(y_num.shape[:-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(var > 0, cov / ((1 + n / m) * var), 0.0)
        weight = np.clip(np.nan_to_num(weight, nan=0.0), 0.0, 1.0)
    theta, den = solve(weight)
    t = np.nan_to_num(theta, nan=0.0)[..., None]
    w = weight[..., None]
    rectifier = (y_num - t * y_den) - w * (f_num - t * f_den)
    imputed = w * (u_num - t * u_den)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_theta = (_var0(rectifier) / n + (_var0(imputed) / m if m else 0.0)) / den ** 2
    se = np.sqrt(var_theta)
    ok = np.isfinite(theta) & (den > 0)
    cap = np.where(ok, den, 0.0) * (n + weight ** 2 * m)
    quantile = np.where(weight > 0, float(_sps.t.ppf(1 - alpha / 2, max(n - 1, 1))), _z(alpha))
    low, high, n_eff = wilson_effective(np.where(ok, theta, 0.0), np.where(ok, se, 0.0), cap, alpha, z=quantile)
    # An undefined rate (no engaged trial) gets the whole range, never a spurious point.
    return {"theta": theta, "se": se, "lam": weight, "den": den, "low": np.where(ok, low, 0.0),
            "high": np.where(ok, high, 1.0), "n_eff": n_eff}


def wilson_effective(estimate: np.ndarray | float, se: np.ndarray | float, cap: np.ndarray | float,
                     alpha: float = 0.05, z: np.ndarray | float | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Wilson interval around ``estimate`` at the effective sample size ``q(1-q)/se^2`` (capped at ``cap``).

    Returns ``(low, high, n_eff)``. ``q`` is the estimate clipped to [0, 1] and kept ``1/(2 cap)`` from the ends, so
    an estimate of exactly 0 or 1 with ``se = 0`` still gets the width of a Wilson interval at ``cap`` trials.
    ``z`` replaces the normal quantile of ``alpha`` (e.g. Student's t).
    """
    z = np.asarray(_z(alpha) if z is None else z, dtype=float)
    p = np.clip(np.asarray(estimate, dtype=float), 0.0, 1.0)
    se = np.asarray(se, dtype=float)
    cap = np.maximum(np.asarray(cap, dtype=float), 1.0)
    q = np.clip(p, 0.5 / cap, 1 - 0.5 / cap)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(se > 0, q * (1 - q) / se ** 2, cap)
    n_eff = np.clip(np.nan_to_num(n_eff, nan=1.0, posinf=1e300), 1.0, cap)
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z * np.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / denom
    low = np.where(p <= 0, 0.0, np.maximum(0.0, centre - half))
    high = np.where(p >= 1, 1.0, np.minimum(1.0, centre + half))
    return low, high, n_eff


def ppi_ratio(y_num: Any, y_den: Any, f_num: Any, f_den: Any, u_num: Any, u_den: Any, *, alpha: float = 0.05,
              lam: float | None = None) -> PPIEstimate:
    """PPI++ estimate and interval of ``E[num] / E[den]`` for one study (see :func:`ppi_arrays` for the inputs).

    For the rate of convergence pass ``num = 1{converged}``, ``den = 1 - 1{refused}`` for reviewer (``y``), judge on
    the reviewed trials (``f``) and judge on the unreviewed ones (``u``).
    """
    arrays = [np.asarray(a, dtype=float).reshape(-1) for a in (y_num, y_den, f_num, f_den, u_num, u_den)]
    if not (len(arrays[0]) == len(arrays[1]) == len(arrays[2]) == len(arrays[3])) or len(arrays[4]) != len(arrays[5]):
        raise ConfigError("reviewer and judge values must pair trial by trial (same lengths)")
    out = ppi_arrays(*arrays, lam=lam, alpha=alpha)
    n, m = len(arrays[0]), len(arrays[4])
    theta, se, weight, den, low, high, n_eff = (float(out[k]) for k in ("theta", "se", "lam", "den", "low", "high",
                                                                          "n_eff"))
    if not math.isfinite(theta) or den <= 0:
        raise ConfigError("the rate is undefined: no engaged (non-refused) trial in the estimate's denominator")
    z = _z(alpha)
    method = "PPI++ (Wilson at effective n)" if m else "reviewed only (every trial reviewed)"
    return PPIEstimate(float(np.clip(theta, 0, 1)), (float(low), float(high)), se, weight, n, n + m, float(n_eff),
                       alpha, method, theta, (theta - z * se, theta + z * se), max(n - 1, 1) if weight > 0 else None)


def ppi_mean(y: Any, f: Any, u: Any, *, alpha: float = 0.05, lam: float | None = None) -> PPIEstimate:
    """PPI++ for a proportion (or mean in [0, 1]): reviewer values ``y``, judge values ``f`` on the same trials,
    judge values ``u`` on the unreviewed trials. Same point, lam and ``wald_ci`` as ``ppi_py.ppi_mean_ci``."""
    y, f, u = (np.asarray(a, dtype=float).reshape(-1) for a in (y, f, u))
    return ppi_ratio(y, np.ones_like(y), f, np.ones_like(f), u, np.ones_like(u), alpha=alpha, lam=lam)


def difference_interval(a: float, a_ci: tuple[float, float], b: float, b_ci: tuple[float, float]
                        ) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``a - b`` from each arm's own interval (same level as the arms')."""
    d = a - b
    low = d - math.sqrt((a - a_ci[0]) ** 2 + (b_ci[1] - b) ** 2)
    high = d + math.sqrt((a_ci[1] - a) ** 2 + (b - b_ci[0]) ** 2)
    return (max(-1.0, low), min(1.0, high))


def _effective_var(x: PPIEstimate) -> float:
    cap = max(x.n_effective, 1.0)
    q = min(max(x.estimate, 0.5 / cap), 1 - 0.5 / cap)
    return q * (1 - q) / cap


def ppi_difference(a: PPIEstimate, b: PPIEstimate) -> DifferenceEstimate:
    """``a - b`` for two PPI estimates from independent conditions, at ``a``'s alpha.

    The interval is Newcombe's built on each arm's small-n interval; the p-value inverts it (the largest level whose
    interval still excludes 0), found by bisection on the level.
    """
    def interval(alpha: float) -> tuple[float, float]:
        # n_effective does not depend on the level, so each arm's interval at another level is Wilson's at it.
        arms = [wilson_effective(x.estimate, 0.0, x.n_effective, alpha, z=x.quantile(alpha)) for x in (a, b)]
        return difference_interval(a.estimate, (float(arms[0][0]), float(arms[0][1])),
                                   b.estimate, (float(arms[1][0]), float(arms[1][1])))

    d = a.estimate - b.estimate
    ci = difference_interval(a.estimate, a.ci, b.estimate, b.ci)
    if d == 0:
        p = 1.0
    else:
        lo_a, hi_a = 1e-12, 1.0 - 1e-12  # interval(lo_a) contains 0 (wide); find where it stops containing it
        if 0 < interval(lo_a)[0] or interval(lo_a)[1] < 0:
            p = lo_a
        else:
            for _ in range(60):
                mid = math.sqrt(lo_a * hi_a) if hi_a / lo_a > 10 else (lo_a + hi_a) / 2
                lo, hi = interval(mid)
                if lo <= 0 <= hi:
                    lo_a = mid
                else:
                    hi_a = mid
            p = hi_a
    # The standard error at each arm's effective n (never 0, unlike a PPI se when the judge agreed everywhere).
    se = math.sqrt(sum(_effective_var(x) for x in (a, b)))
    detectable = (_z(a.alpha) + float(_sps.norm.ppf(_POWER))) * se
    return DifferenceEstimate(d, ci, float(p), se, detectable, a.alpha, "Newcombe hybrid score on PPI++ arms")
