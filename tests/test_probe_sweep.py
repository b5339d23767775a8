"""Metrics intervals, control task, lexical baseline, grouped layer sweep and the layer-selection rule."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from probes.controls import LexicalBaseline, control_labels, selectivity
from probes.metrics import Metric, accuracy, auroc, auroc_difference, wilson_interval
from probes.sweep import (
    LayerResult,
    SweepResult,
    compare_to_baselines,
    grouped_folds,
    layer_sweep,
    select_layer,
)

# ---------------------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    "k,n,lo,hi",
    [(10, 20, 0.2993, 0.7007), (16, 20, 0.5840, 0.9193), (41, 50, 0.6920, 0.9023), (0, 10, 0.0, 0.2775)],
)
def test_wilson_known_values(k, n, lo, hi):
    assert wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-4)


def test_accuracy_metric():
    m = accuracy(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert (m.value, m.n) == (0.75, 4) and m.low < 0.75 < m.high


def _delong_slow(y, s):
    """Textbook DeLong: explicit m x n comparison matrix."""
    sp, sn = s[y == 1], s[y == 0]
    psi = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    return psi.mean(), v10.var(ddof=1) / len(sp) + v01.var(ddof=1) / len(sn)


def test_auroc_delong_against_definition_and_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(y * 0.8 + rng.standard_normal(300), 1)  # rounding creates ties
    m = auroc(y, s)
    a, var = _delong_slow(y, s)
    assert m.value == pytest.approx(roc_auc_score(y, s), abs=1e-12) == pytest.approx(a, abs=1e-12)
    assert (m.high - m.low) / 2 == pytest.approx(1.959964 * np.sqrt(var), rel=1e-6)
    boot = auroc(y, s, method="bootstrap", n_boot=3000)
    hm = auroc(y, s, method="hanley_mcneil")
    assert boot.high - boot.low == pytest.approx(m.high - m.low, rel=0.15)
    assert hm.high - hm.low == pytest.approx(m.high - m.low, rel=0.3)


def test_auroc_difference_paired():
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 200)
    s = y + rng.standard_normal(400)
    d, p = auroc_difference(y, s, s)
    assert d.value == 0 and p == 1.0
    d, p = auroc_difference(y, s, rng.standard_normal(400))
    assert d.low > 0 and p < 1e-6


def test_selectivity_interval():
    sel = selectivity(Metric(0.9, 0, 1, 200), Metric(0.5, 0, 1, 200))
    assert sel.value == pytest.approx(0.4) and 0.3 < sel.low < 0.4 < sel.high < 0.5


# ---------------------------------------------------------------------------------------------- controls


def test_control_labels_keep_marginal_and_are_uncorrelated():
    y = np.r_[np.zeros(300, int), np.ones(500, int)]
    c = control_labels(y, seed=3)
    assert abs(c.sum() - y.sum()) <= 2
    assert abs(np.corrcoef(c, y)[0, 1]) < 0.01
    assert (control_labels(y, seed=3) == c).all() and (control_labels(y, seed=4) != c).any()


def test_control_labels_by_type_and_within_group():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    types = rng.integers(0, 40, 400)
    c = control_labels(y, types=types, seed=0)
    for t in np.unique(types):
        assert np.unique(c[types == t]).size == 1  # one label per type
    groups = np.repeat(np.arange(20), 20)
    c = control_labels(y, groups=groups, scheme="within_group", seed=0)
    for g in range(20):
        assert c[groups == g].sum() == y[groups == g].sum()


def test_lexical_baseline_reads_words():
    rng = np.random.default_rng(0)
    filler = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    y = np.tile([0, 1], 100)
    texts = [" ".join(rng.choice(filler, 6)) + (" cares about them" if t else " maximises output") for t in y]
    m = LexicalBaseline().fit(texts[:150], y[:150])
    assert m.score(texts[150:], y[150:]) == 1.0
    assert {w for w, _ in m.top_ngrams(3)["positive"]} & {"cares", "cares about", "about them", "them", "about"}


# ---------------------------------------------------------------------------------------------- sweep

N, D, GROUPS = 480, 24, 24


def make_data(seed=0, strengths=(0.0, 1.2, 0.0)):
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], N // 2)
    groups = np.repeat([f"entity{i}" for i in range(GROUPS)], N // GROUPS)
    w = rng.standard_normal(D)
    w /= np.linalg.norm(w)
    acts = np.stack([rng.standard_normal((N, D)) + np.outer((2 * y - 1) * s, w) for s in strengths]).astype(np.float32)
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    texts = [f"{g} " + " ".join(rng.choice(words, 4)) for g in groups]  # no lexical cue to the label
    return acts, y, groups, texts


@pytest.fixture(scope="module")
def sweep():
    acts, y, groups, texts = make_data()
    return layer_sweep(acts, y, groups, texts, estimators=("logistic", "mean_diff", "mean_diff_iid"), n_jobs=1)


def test_grouped_folds_hold_out_whole_groups():
    groups = np.repeat(np.arange(7), 5)
    splits, notes = grouped_folds(groups, 5, seed=0)
    assert len(splits) == 5 and notes == []
    seen = np.concatenate([te for _, te in splits])
    assert sorted(seen) == list(range(35))
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
    splits, notes = grouped_folds(np.repeat(np.arange(3), 5), 5)
    assert len(splits) == 3 and "only 3 groups" in notes[0]


def test_sweep_planted_layer_vs_noise(sweep):
    for est in ("logistic", "mean_diff", "mean_diff_iid"):
        noise0, planted, noise2 = sweep.results[est]
        assert planted.auroc.value > 0.9 and planted.accuracy.value > 0.8
        assert planted.selectivity.low > 0
        for r in (noise0, noise2):
            assert abs(r.auroc.value - 0.5) < 0.12 and abs(r.accuracy.value - 0.5) < 0.12
        for r in (noise0, planted, noise2):
            assert abs(r.control_accuracy.value - 0.5) < 0.12  # control task is at chance on held-out groups
    assert abs(sweep.lexical.auroc.value - 0.5) < 0.15
    assert sweep.n_splits == 5 and len(sweep.results["logistic"][1].fold_auroc) == 5
    json.dumps(sweep.to_dict())  # JSON-serialisable
    assert "oof_scores" in json.dumps(sweep.to_dict(include_scores=True))


def test_sweep_verdicts(sweep):
    verdicts = compare_to_baselines(sweep, "logistic")
    assert [v.beats_control for v in verdicts] == [False, True, False]
    assert [v.beats_lexical for v in verdicts] == [False, True, False]
    assert "does NOT beat the control task" in verdicts[0].statement


def test_sweep_callable_source_and_parallel_match_array(sweep):
    acts, y, groups, texts = make_data()
    res = layer_sweep(lambda layer: acts[layer], y, groups, None, layers=[1, 2], estimators=("mean_diff",), n_jobs=1)
    assert res.lexical is None and res.layers == [1, 2]
    for a, b in zip(res.results["mean_diff"], sweep.results["mean_diff"][1:]):
        assert a.auroc.value == pytest.approx(b.auroc.value)
    par = layer_sweep(acts, y, groups, None, layers=[1], estimators=("logistic",), n_jobs=2)
    assert par.results["logistic"][0].auroc.value == pytest.approx(sweep.get("logistic", 1).auroc.value, abs=1e-6)


def test_sweep_pure_noise_is_chance():
    acts, y, groups, _ = make_data(seed=5, strengths=(0.0, 0.0))
    res = layer_sweep(acts, y, groups, estimators=("logistic", "mean_diff"), n_jobs=1)
    for rs in res.results.values():
        for r in rs:
            assert abs(r.auroc.value - 0.5) < 0.12
            assert r.selectivity.low < 0 < r.selectivity.high
    with pytest.raises(ValueError, match="no layer qualifies"):
        select_layer(res, "logistic")


def test_sweep_few_groups_warns():
    acts, y, _, _ = make_data()
    groups = np.repeat(["a", "b", "c"], N // 3)
    with pytest.warns(UserWarning, match="only 3 groups"):
        res = layer_sweep(acts[:1], y, groups, estimators=("mean_diff",), n_jobs=1)
    assert res.n_splits == 3 and any("only 3 groups" in n for n in res.notes)


# ---------------------------------------------------------------------------------------------- selection rule


def _crafted(aurocs, n_model_layers=10, selective=None):
    def m(v, half=0.03):
        return Metric(v, v - half, v + half, 400)

    rows = []
    for i, a in enumerate(aurocs):
        sel = m(0.2) if selective is None or selective[i] else m(0.0)
        rows.append(LayerResult(i, "logistic", m(0.8), m(a), m(0.5), sel, [a]))
    return SweepResult(
        layers=list(range(len(aurocs))),
        estimators=["logistic"],
        results={"logistic": rows},
        lexical=None,
        n_splits=5,
        test_groups=[],
        n_model_layers=n_model_layers,
        control={},
        notes=[],
        timings={},
        n_jobs=1,
        y=np.zeros(0),
    )


def test_select_layer_earliest_within_best_interval():
    #          0     1     2     3     4     5     6     7     8     9
    aurocs = [0.50, 0.70, 0.86, 0.88, 0.90, 0.89, 0.85, 0.80, 0.99, 0.99]
    res = _crafted(aurocs)
    # Layers 8, 9 are in the last 20% and excluded; best is layer 4 (0.90, low 0.87); the earliest layer with
    # AUROC >= 0.87 is layer 3.
    assert select_layer(res) == 3
    assert select_layer(res, exclude_last_frac=0.0) == 8
    # Non-selective layers are not candidates.
    sel = [True, True, True, False, True, True, True, True, True, True]
    assert select_layer(_crafted(aurocs, selective=sel)) == 4
    assert select_layer(_crafted(aurocs, selective=[False] * 10), require_selective=False) == 3
    # A layer whose AUROC interval includes 0.5 never qualifies, even if it is the only selective one.
    only0 = [True] + [False] * 9
    with pytest.raises(ValueError, match="no layer qualifies"):
        select_layer(_crafted(aurocs, selective=only0))
    # Layer 4 is in the last 20%; best of the rest is layer 3 (0.58, low 0.55); layer 0's interval includes 0.5.
    assert select_layer(_crafted([0.5, 0.55, 0.54, 0.58, 0.9], n_model_layers=5)) == 1


# ---------------------------------------------------------------------------------------------- logistic scaling


@pytest.mark.parametrize("scaling", ["layer", "fold"])
@pytest.mark.parametrize("d", [12, 200])  # d < n (covariance basis) and d > n (row space)
def test_sweep_logistic_matches_sklearn_with_its_scaling(scaling, d):
    """Each outer fold equals scikit-learn's StandardScaler + LogisticRegressionCV on the same inner grouped folds,
    the scaler fitted on the whole layer (``scaling="layer"``) or on the fold's training rows (``"fold"``)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    n, Cs = 160, (0.01, 0.1, 1.0)
    y = np.tile([0, 1], n // 2)
    groups = np.repeat([f"g{i}" for i in range(16)], n // 16)
    w = rng.standard_normal(d)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 3.0, d) + np.outer((2 * y - 1) * 0.3, w) + 2.0
    res = layer_sweep(X[None], y, groups, estimators=("logistic",), n_splits=4, Cs=Cs, tol=1e-9,
                      precision="float64", scaling=scaling, n_jobs=1)
    r = res.results["logistic"][0]
    assert res.scaling == scaling and res.to_dict()["scaling"] == scaling
    for f, (tr, te) in enumerate(grouped_folds(groups, 4, seed=0)[0]):
        sc = StandardScaler().fit(X if scaling == "layer" else X[tr])
        inner = list(GroupKFold(3, shuffle=True, random_state=0).split(np.zeros(len(tr)), y[tr], groups[tr]))
        sk = LogisticRegressionCV(Cs=list(Cs), cv=inner, scoring="neg_log_loss", l1_ratios=(0.0,), tol=1e-12,
                                  max_iter=20000, use_legacy_attributes=False).fit(sc.transform(X[tr]), y[tr])
        assert r.chosen_C[f] == pytest.approx(sk.C_)
        expected = sk.decision_function(sc.transform(X[te]))
        # 1e-4 relative: the sweep stops at 500 iterations, short of the tightest tolerance on the d > n problems
        np.testing.assert_allclose(r.oof_scores[te], expected, atol=1e-4 * np.abs(expected).max())


def test_sweep_rejects_unknown_scaling():
    acts, y, groups, _ = make_data()
    with pytest.raises(ValueError, match="scaling must be one of"):
        layer_sweep(acts[:1], y, groups, estimators=("logistic",), scaling="global", n_jobs=1)
