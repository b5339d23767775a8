"""PPI++ estimators (common.ppi): held to ppi-python's answers, to Wilson and Newcombe, and by simulation."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from common.errors import ConfigError
from common.ppi import difference_interval, ppi_arrays, ppi_difference, ppi_mean, ppi_ratio, wilson_effective
from common.stats import wilson_interval


def _binary_study(rng: np.random.Generator, n: int, m: int, rate: float, accuracy: float):
    y = (rng.random(n) < rate).astype(float)
    f = np.where(rng.random(n) < accuracy, y, 1 - y)
    u = (rng.random(m) < rate).astype(float)
    return y, f, u


@pytest.mark.parametrize("seed", range(6))
def test_proportion_matches_ppi_python(seed: int) -> None:
    ppi_py = pytest.importorskip("ppi_py")  # the test extra installs it; the core never needs it
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(8, 40)), int(rng.integers(5, 120))
    y, f, u = _binary_study(rng, n, m, rate=float(rng.uniform(0.1, 0.9)), accuracy=0.8)
    ours = ppi_mean(y, f, u, alpha=0.1)  # ppi_py defaults to a 90% interval: compare like with like
    low, high = ppi_py.ppi_mean_ci(y, f, u, alpha=0.1)
    assert ours.wald_ci == pytest.approx((float(low[0]), float(high[0])), abs=1e-12)
    assert ours.raw_estimate == pytest.approx(float(ppi_py.ppi_mean_pointestimate(y, f, u)[0]), abs=1e-12)
    for lam in (0.0, 0.5, 1.0):  # fixed weights: classical, half, plain PPI
        fixed = ppi_mean(y, f, u, alpha=0.1, lam=lam)
        low, high = ppi_py.ppi_mean_ci(y, f, u, alpha=0.1, lam=lam)
        assert fixed.wald_ci == pytest.approx((float(low[0]), float(high[0])), abs=1e-12)


def test_ratio_is_one_estimating_equation() -> None:
    rng = np.random.default_rng(3)
    n, m = 15, 45
    y_den = (rng.random(n) > 0.2).astype(float)  # 1 - refused
    y_num = y_den * (rng.random(n) < 0.6)
    f_num, f_den = np.where(rng.random(n) < 0.8, y_num, 0.0), y_den.copy()
    u_den = (rng.random(m) > 0.2).astype(float)
    u_num = u_den * (rng.random(m) < 0.5)
    est = ppi_ratio(y_num, y_den, f_num, f_den, u_num, u_den)
    lam, theta = est.lam, est.raw_estimate
    # theta solves the PPI++ estimating equation for E[c - theta * e] = 0 with that lam ...
    g = lambda c, e: c - theta * e  # noqa: E731
    assert g(y_num, y_den).mean() - lam * g(f_num, f_den).mean() + lam * g(u_num, u_den).mean() == pytest.approx(0)
    # ... and its variance is the sandwich (the estimating function's variance over the squared mean denominator).
    den = y_den.mean() - lam * f_den.mean() + lam * u_den.mean()
    var = (np.var(g(y_num, y_den) - lam * g(f_num, f_den)) / n + np.var(lam * g(u_num, u_den)) / m) / den ** 2
    assert est.se == pytest.approx(math.sqrt(var))
    # Not two proportions: with refusals the ratio differs from the PPI estimate of converged / trials.
    assert est.raw_estimate != pytest.approx(ppi_mean(y_num, f_num, u_num).raw_estimate, abs=1e-3)


def test_lambda_zero_is_exactly_reviewed_only_wilson() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(20) < 0.3).astype(float)
    est = ppi_mean(y, rng.random(20) < 0.5, rng.random(50) < 0.5, lam=0.0)
    ref = sps.binomtest(int(y.sum()), 20).proportion_ci(confidence_level=0.95, method="wilson")
    assert est.ci == pytest.approx((ref.low, ref.high))
    assert est.df is None  # no plug-in variance: the normal quantile
    every = ppi_mean(y, y, [])  # every trial reviewed: nothing to borrow
    assert every.lam == 0 and every.ci == pytest.approx(wilson_interval(int(y.sum()), 20))


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_small_n_interval_never_collapses_or_leaves_the_unit_interval(value: float) -> None:
    # The judge agrees with every reviewed row and labels every trial alike: the plain PPI interval has zero width.
    est = ppi_mean([value] * 10, [value] * 10, [value] * 30)
    assert est.wald_ci[0] == est.wald_ci[1] == value
    assert 0.0 <= est.ci[0] < est.ci[1] <= 1.0 and est.ci[1] - est.ci[0] > 0.05
    assert est.ci[0] <= value <= est.ci[1]
    # A near-boundary estimate whose normal interval leaves [0, 1] is kept inside it.
    rng = np.random.default_rng(1)
    y, f, u = _binary_study(rng, 10, 30, rate=0.05 if value == 0 else 0.95, accuracy=0.9)
    est = ppi_mean(y, f, u)
    assert 0.0 <= est.ci[0] <= est.estimate <= est.ci[1] <= 1.0


def test_wilson_effective_at_the_cap_is_wilson() -> None:
    low, high, n_eff = wilson_effective(7 / 23, math.sqrt((7 / 23) * (16 / 23) / 23), 100)
    assert n_eff == pytest.approx(23) and (float(low), float(high)) == pytest.approx(wilson_interval(7, 23))


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Stat Med 17:873, method 10 on 56/70 vs 48/80: 0.0524 to 0.3339.
    a, b = 56 / 70, 48 / 80
    assert difference_interval(a, wilson_interval(56, 70), b, wilson_interval(48, 80)) == pytest.approx(
        (0.0524, 0.3339), abs=5e-4)


def test_difference_p_value_inverts_its_interval() -> None:
    rng = np.random.default_rng(7)
    seen = set()
    for shift in (0.0, 0.15, 0.3, 0.5):
        a = ppi_mean(*_binary_study(rng, 20, 60, 0.3 + shift, 0.85))
        b = ppi_mean(*_binary_study(rng, 20, 60, 0.3, 0.85))
        d = ppi_difference(a, b)
        excludes = d.ci[0] > 0 or d.ci[1] < 0
        assert (d.p_value < 0.05) == excludes
        assert -1 <= d.ci[0] <= d.estimate <= d.ci[1] <= 1 and d.detectable > 0
        seen.add(excludes)
    assert seen == {True, False}  # both sides of the test were exercised


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="at least one reviewed"):
        ppi_mean([], [], [1, 0])
    with pytest.raises(ConfigError, match="pair"):
        ppi_mean([1, 0], [1], [1])
    with pytest.raises(ConfigError, match="undefined"):
        ppi_ratio([0, 0], [0, 0], [0, 0], [0, 0], [0], [0])  # every trial refused


def _sim():
    path = Path(__file__).resolve().parents[1] / "bench" / "sim_ppi.py"
    spec = importlib.util.spec_from_file_location("sim_ppi", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_simulated_coverage_at_project_sizes() -> None:
    """The full grid of bench/sim_ppi.py at 500 studies per setting (about a second)."""
    sim = _sim()
    results = [(s, sim.simulate(s, 500)) for s in sim.settings()]
    partial = [(s, r) for s, r in results if s.n < s.N]
    ppi_cover = np.array([r["PPI"]["coverage"] for _, r in partial])
    # PPI covers near its level across the grid; the one documented shortfall (docs/rates.md) is the under-labelling
    # judge at N = 100, n = 10, rate 0.5, where lam is tuned on 10 rows (0.85-0.87); nowhere below 0.83.
    assert 0.94 <= ppi_cover.mean() <= 0.975 and ppi_cover.min() >= 0.83
    below = [(s.judge, s.N, s.n, s.rate) for s, r in partial if r["PPI"]["coverage"] < 0.92]
    assert below == [("under", 100, 10, 0.5)]
    # ... is narrower than reviewed-only on average, and never leaves [0, 1] nor collapses to zero width ...
    assert np.mean([r["PPI"]["width"] for _, r in partial]) < np.mean([r["reviewed-only"]["width"] for _, r in partial])
    assert all(r["PPI"]["outside_01"] == 0 and r["PPI"]["zero_width"] == 0 for _, r in results)
    # ... which the plain normal PPI interval does (the reason for the small-n interval) ...
    assert max(r["PPI normal"]["zero_width"] for _, r in partial) > 0.1
    # ... while the biased judge's own interval misses the rate (the reason for all of this).
    assert min(r["judge-only"]["coverage"] for _, r in results) < 0.05
    # Every reviewed: PPI is reviewed-only exactly.
    for s, r in results:
        if s.n == s.N:
            assert r["PPI"]["coverage"] == r["reviewed-only"]["coverage"]
