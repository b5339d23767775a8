"""Small-sample statistics and the convergence table, checked against the seed's published numbers (methods.md)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from common.errors import ConfigError
from common.stats import (cohen_kappa, confusion_matrix, fisher_exact, min_detectable_difference,
                             wilson_interval)
from behaviour.table import SEED_COUNTS, convergence_table, effective_label, plot_convergence, seed_table


@pytest.mark.parametrize("k, n, expected", [(10, 20, (0.30, 0.70)), (16, 20, (0.58, 0.92)), (41, 50, (0.69, 0.90))])
def test_wilson_matches_methods_notes(k: int, n: int, expected: tuple[float, float]) -> None:
    lo, hi = wilson_interval(k, n)
    assert (round(lo, 2), round(hi, 2)) == expected


def test_wilson_edges_and_agrees_with_scipy() -> None:
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    ref = sps.binomtest(7, 23).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(7, 23) == pytest.approx((ref.low, ref.high))
    with pytest.raises(ConfigError):
        wilson_interval(21, 20)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 10, 12, 13, 14, 20, 24, 25, 27, 28, 35, 50, 100, 1000])
def test_wilson_bounds_are_exact_at_0_of_n_and_n_of_n(n: int) -> None:
    # Regression: (0, 6) gave a lower bound of ~3e-17 and (10, 10) an upper bound of 1 - 1e-16, so the rate fell
    # outside its own interval and the convergence plot's error bar came out negative.
    low, high = wilson_interval(0, n)
    assert low == 0.0 and 0.0 < high < 1.0
    low, high = wilson_interval(n, n)
    assert high == 1.0 and 0.0 < low < 1.0
    ref = sps.binomtest(0, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(0, n)[1] == pytest.approx(ref.high)
    for k in range(n + 1):  # the observed rate always lies inside its interval
        low, high = wilson_interval(k, n)
        assert low <= k / n <= high


def test_plot_survives_cells_of_0_and_n_of_n() -> None:
    rows = ([{"model": "m", "condition": "a", "label": "did_not_converge"}] * 6
            + [{"model": "m", "condition": "b", "label": "converged"}] * 10)
    table = convergence_table(rows)
    fig = plot_convergence(table)  # raised "'yerr' must not contain negative values" before the fix
    bars = [c for c in fig.axes[0].containers if type(c).__name__ == "ErrorbarContainer"]
    spans = [tuple(point[1] for point in c.lines[2][0].get_segments()[0]) for c in bars]
    assert spans == [(0.0, pytest.approx(wilson_interval(0, 6)[1])), (pytest.approx(wilson_interval(10, 10)[0]), 1.0)]


def test_fisher_matches_methods_notes() -> None:
    assert round(fisher_exact(10, 20, 16, 20), 3) == 0.096
    assert round(fisher_exact(14, 20, 16, 20), 2) == 0.72
    assert fisher_exact(10, 20, 16, 20) == pytest.approx(fisher_exact(16, 20, 10, 20))


def test_min_detectable_difference_against_10_of_20() -> None:
    d = min_detectable_difference(10, 20)
    assert d.higher == 17 and d.lower == 3
    assert fisher_exact(17, 20, 10, 20) < 0.05 <= fisher_exact(16, 20, 10, 20)
    assert d.higher_diff == pytest.approx(0.35)
    assert "17/20" in d.describe()
    # A one-sided test needs a smaller departure; no count can beat 20/20 from 20/20.
    assert min_detectable_difference(10, 20, two_sided=False).higher <= 17
    assert min_detectable_difference(20, 20).higher is None


def test_cohen_kappa_agrees_with_sklearn_and_handles_degenerate_cases() -> None:
    from sklearn.metrics import cohen_kappa_score

    a = ["converged", "ambiguous", "converged", "refused", "did_not_converge", "ambiguous", "converged"]
    b = ["converged", "converged", "converged", "refused", "did_not_converge", "ambiguous", "ambiguous"]
    labels = ("converged", "ambiguous", "did_not_converge", "refused")
    k = cohen_kappa(a, b, labels)
    assert k.kappa == pytest.approx(cohen_kappa_score(a, b))
    assert k.n == 7 and k.observed == pytest.approx(5 / 7)
    assert k.ci[0] < k.kappa < k.ci[1]
    assert cohen_kappa(a, a, labels).kappa == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["refused"] * 3, ["refused"] * 3, labels).kappa)
    with pytest.raises(ConfigError):
        cohen_kappa(a, b[:-1], labels)
    with pytest.raises(ConfigError, match="yes"):
        confusion_matrix(["yes"], ["converged"], labels)


def test_confusion_matrix_rows_are_first_labelling() -> None:
    m = confusion_matrix(["a", "a", "b"], ["a", "b", "b"], ("a", "b"))
    assert m.counts == ((1, 1), (0, 1)) and m.n == 3
    assert "| a | 1 | 1 |" in m.to_markdown()


def test_seed_table_reproduces_published_rates_and_tests() -> None:
    table = seed_table()
    assert len(table.cells) == len(SEED_COUNTS) == 10
    small = table.cell("Llama 3.1 8B", "plain")
    assert (small.trials, small.converged, small.rate) == (20, 10, 0.5)
    assert tuple(round(x, 2) for x in small.ci) == (0.30, 0.70)
    gpt = table.cell("GPT-OSS 120B", "plain")
    assert gpt.rate is None and gpt.ci is None  # the seed shows "—" for a model that refused every trial
    comps = {(c.a, c.b): c.p for c in table.comparisons()}
    assert round(comps[(("Llama 3.1 8B", "plain"), ("Qwen 3 32B", "plain"))], 3) == 0.096
    assert round(comps[(("Llama 4 Scout 17B", "plain"), ("Llama 4 Scout 17B", "threat"))], 2) == 0.72
    # Models are compared within a condition and conditions within a model, never across both.
    assert (("Llama 3.1 8B", "plain"), ("Qwen 3 32B", "threat")) not in comps
    md = table.to_markdown()
    assert "| Llama 3.1 8B | plain | 20 | 10 | 8 | 2 | 0 | 50% (10/20) | [0.30, 0.70] |" in md
    assert "needs >= 17/20" in md
    assert not any(c.p < 0.05 for c in table.comparisons())  # methods.md: nothing significant at n = 20


def test_table_from_rows_prefers_reviews_and_excludes_unscored() -> None:
    rows = (
        [{"model": "m", "condition": "baseline", "label": "converged"}] * 3
        + [{"model": "m", "condition": "baseline", "label": "ambiguous", "reviewed_label": "converged"}]
        + [{"model": "m", "condition": "baseline", "label": None, "parse_error": "x"}]
        + [{"model": "m", "condition": "baseline", "label": "refused"}]
        + [{"model": "m", "condition": "threat", "label": "did_not_converge"}] * 2
    )
    table = convergence_table(rows)
    base = table.cell("m", "baseline")
    assert (base.converged, base.trials, base.engaged, base.unscored, base.reviewed) == (4, 5, 4, 1, 1)
    assert base.rate == 1.0
    assert table.cell("m", "threat").rate == 0.0
    assert any("excluded" in n for n in table.notes) and any("reviewed" in n for n in table.notes)
    assert table.to_dict()["cells"][0]["unscored"] == 1
    assert effective_label({"label": "ambiguous", "reviewed_label": " "}) == "ambiguous"
    with pytest.raises(ConfigError, match="condition"):
        convergence_table([{"model": "m", "label": "converged"}])


def test_plot_has_one_bar_per_engaged_cell(tmp_path) -> None:
    from common.rundir import RunDir

    fig = plot_convergence(seed_table())
    bars = [p for p in fig.axes[0].patches]
    assert len(bars) == 8  # GPT-OSS refused everything: no bar, an annotation instead
    assert sorted(round(b.get_height(), 2) for b in bars)[0] == 0.5
    run = RunDir.create("test", "seed", {}, root=tmp_path)
    path = run.save_figure(fig, "convergence")
    assert path.exists() and path.stat().st_size > 1000
