"""LogisticProbe / MeanDiffProbe: planted-direction recovery, exactness of the fast paths, sklearn API."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage as sk_lw_shrinkage
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from probes.estimators import (
    LogisticProbe,
    MeanDiffProbe,
    _shrunk_solve,
    ledoit_wolf_shrinkage,
    mean_diff_scores,
)
from probes.solver import RowBasis, fit_l2_logistic_cv_folds, logistic_lbfgs, row_coordinates


def planted(n=600, d=50, delta=1.0, seed=0, offset=3.0):
    """Isotropic noise plus +-delta along a random unit direction w; shifted so centring matters."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    y = np.tile([0, 1], n // 2)
    X = rng.standard_normal((n, d)) + np.outer((2 * y - 1) * delta, w) + offset
    groups = np.repeat(np.arange(n // 10), 10).astype(str)
    return X.astype(np.float32), y, groups, w


def cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("Probe", [LogisticProbe, MeanDiffProbe])
def test_recovers_planted_direction(Probe):
    X, y, groups, w = planted(n=1000, d=40)
    p = Probe().fit(X[:800], y[:800], **({"groups": groups[:800]} if Probe is LogisticProbe else {}))
    assert cos(p.direction_, w) > 0.9
    assert abs(np.linalg.norm(p.direction_) - 1) < 1e-9
    assert p.score(X[800:], y[800:]) > 0.8


def test_logistic_direction_is_in_original_space():
    # Scale one informative feature by 100: the standardised-space weight must be divided back.
    X, y, _, w = planted(d=10, delta=1.5)
    X2 = X.copy()
    X2[:, 0] *= 100
    p1, p2 = LogisticProbe(Cs=[0.1]).fit(X, y), LogisticProbe(Cs=[0.1]).fit(X2, y)
    np.testing.assert_allclose(p1.decision_function(X), p2.decision_function(X2), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(p2.coef_[0, 0] * 100, p1.coef_[0, 0], rtol=1e-6)


@pytest.mark.parametrize("n,d", [(200, 40), (120, 300)])  # d < n (covariance basis) and d > n (row space)
def test_logistic_matches_sklearn_exactly(n, d):
    X, y, _, _ = planted(n=n, d=d, delta=0.4, seed=1)
    for C in (0.01, 1.0):
        p = LogisticProbe(Cs=[C], tol=1e-9, max_iter=5000).fit(X, y)
        X = X.astype(np.float64)  # sklearn would otherwise solve in float32
        sc = StandardScaler().fit(X)
        sk = LogisticRegression(C=C, tol=1e-10, max_iter=20000).fit(sc.transform(X), y)
        coef = sk.coef_[0] / sc.scale_
        np.testing.assert_allclose(p.coef_[0], coef, atol=1e-4 * np.abs(coef).max())
        np.testing.assert_allclose(p.intercept_[0], sk.intercept_[0] - sc.mean_ @ coef, atol=1e-4)


def test_float32_precision_agrees():
    X, y, _, _ = planted(n=150, d=400, delta=0.5, seed=2)
    a = LogisticProbe(Cs=[0.01, 0.1]).fit(X, y)
    b = LogisticProbe(Cs=[0.01, 0.1], precision="float32").fit(X, y)
    assert a.C_ == b.C_
    assert cos(a.direction_, b.direction_) > 0.9999


def test_batched_solver_matches_individual_problems():
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((80, 12))
    y = (Z[:, 0] + rng.standard_normal(80) > 0).astype(float)
    M = (rng.random((80, 3)) < 0.7).astype(float)
    Y = np.column_stack([y, y, 1 - y])
    C = np.array([0.1, 10.0, 1.0])
    theta, _ = logistic_lbfgs(Z, Y, M, C, tol=1e-10, max_iter=2000)
    for p in range(3):
        rows = M[:, p] > 0
        sk = LogisticRegression(C=C[p], tol=1e-12, max_iter=10000).fit(Z[rows], Y[rows, p])
        np.testing.assert_allclose(theta[:-1, p], sk.coef_[0], atol=1e-5)
        np.testing.assert_allclose(theta[-1, p], sk.intercept_[0], atol=1e-5)


def test_inner_cv_picks_stronger_penalty_for_weak_signal():
    X, y, groups, _ = planted(n=200, d=150, delta=0.05, seed=4)
    p = LogisticProbe().fit(X, y, groups=groups)
    assert p.C_ <= 1e-2
    assert len(p.cv_scores_) == len(p.Cs)


def test_sklearn_api_clone_fitted_cross_val():
    X, y, groups, _ = planted(n=300, d=20)
    for est in (LogisticProbe(Cs=[0.01, 1.0], cv=2), MeanDiffProbe(iid=True)):
        c = clone(est)
        assert c.get_params() == est.get_params()
        with pytest.raises(NotFittedError):
            c.predict(X)
        assert c.fit(X, y) is c
        check_is_fitted(c)
        proba = c.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert ((proba[:, 1] > 0.5) == (c.predict(X) == 1)).all()
        scores = cross_val_score(clone(est), X, y, groups=groups, cv=GroupKFold(3), scoring="roc_auc")
        assert scores.min() > 0.8
    # groups routed to fit (inner grouped CV) through cross_val_score's params
    scores = cross_val_score(LogisticProbe(cv=2), X, y, cv=GroupKFold(3), groups=groups, params={"groups": groups})
    assert scores.min() > 0.8


def test_string_labels_and_non_binary_error():
    X, y, _, _ = planted(n=100, d=5)
    labels = np.where(y == 1, "interest", "other")
    p = MeanDiffProbe().fit(X, labels)
    assert set(p.predict(X)) <= {"interest", "other"}
    assert list(p.classes_) == ["interest", "other"]
    with pytest.raises(ValueError, match="binary"):
        LogisticProbe().fit(X, np.arange(100) % 3)


def test_mean_diff_closed_form():
    X, y, _, _ = planted(n=200, d=8)
    p = MeanDiffProbe().fit(X, y)
    X64 = X.astype(np.float64)
    diff = X64[y == 1].mean(0) - X64[y == 0].mean(0)
    np.testing.assert_allclose(p.direction_, diff / np.linalg.norm(diff), atol=1e-12)
    mid = 0.5 * (X64[y == 1].mean(0) + X64[y == 0].mean(0))
    assert abs(p.decision_function(mid[None, :].astype(np.float32))[0]) < 1e-5


@pytest.mark.parametrize("n,d", [(300, 20), (60, 200)])
def test_ledoit_wolf_via_gram_matches_sklearn(n, d):
    rng = np.random.default_rng(5)
    Xc = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3
    Xc -= Xc.mean(0)
    assert ledoit_wolf_shrinkage(Xc) == pytest.approx(sk_lw_shrinkage(Xc, assume_centered=True), rel=1e-10)
    v = rng.standard_normal(d)
    prec = LedoitWolf(assume_centered=True).fit(Xc).precision_
    np.testing.assert_allclose(_shrunk_solve(Xc, v), prec @ v, rtol=1e-6, atol=1e-8)


def test_mean_diff_iid_uses_within_class_covariance():
    # Correlated nuisance along u inflates the plain difference; the iid correction removes it.
    rng = np.random.default_rng(6)
    n, d = 2000, 30
    y = np.tile([0, 1], n // 2)
    w, u = np.eye(d)[0], np.eye(d)[1]
    X = rng.standard_normal((n, d)) + np.outer(2 * y - 1, 0.5 * w + 0.5 * u)
    X += np.outer(rng.standard_normal(n) * 5, u)  # big within-class variance along u
    plain, iid = MeanDiffProbe().fit(X, y), MeanDiffProbe(iid=True).fit(X, y)
    assert abs(iid.direction_ @ u) < abs(plain.direction_ @ u)
    assert iid.score(X, y) > plain.score(X, y)


def test_vectorised_mean_diff_matches_estimator():
    X, y, _, _ = planted(n=300, d=30, offset=50.0)
    yc = np.random.default_rng(0).permutation(y)
    scores = mean_diff_scores(X[:200], np.column_stack([y[:200], yc[:200]]), X[200:])
    for t, labels in enumerate((y, yc)):
        ref = MeanDiffProbe().fit(X[:200], labels[:200]).decision_function(X[200:])
        np.testing.assert_allclose(scores[:, t], ref, atol=1e-4 * np.abs(ref).max())


def test_folds_solved_together_equal_each_fold_alone():
    """fit_l2_logistic_cv_folds batches several outer folds over one basis; each fold must get exactly its own
    problem (its inner splits, C and refit), as when fitted alone on its rows."""
    X, y, groups, _ = planted(n=240, d=30, delta=0.3, seed=5)
    Z = RowBasis.fit(X).Z
    yc = np.random.default_rng(0).integers(0, 2, len(y))
    folds = [np.arange(0, 180), np.arange(60, 240), np.r_[0:60, 120:240]]
    kw = dict(Cs=[1e-3, 1e-2, 0.1, 1.0], cv=3, scoring="log_loss", tol=1e-8, max_iter=2000, seed=0)
    together = fit_l2_logistic_cv_folds(Z, y, groups, folds, extra_targets=yc, **kw)
    for tr, joint in zip(folds, together):
        alone = fit_l2_logistic_cv_folds(Z[tr], y[tr], groups[tr], [np.arange(len(tr))], extra_targets=yc[tr], **kw)[0]
        assert joint["C"] == alone["C"] and joint["cv_note"] == alone["cv_note"]
        np.testing.assert_allclose(joint["cv_scores"], alone["cv_scores"], rtol=1e-7)
        np.testing.assert_allclose(joint["theta"], alone["theta"], atol=1e-6 * np.abs(alone["theta"]).max())


@pytest.mark.parametrize("d", [30, 400])
def test_row_coordinates_are_the_basis_coordinates(d):
    """The sweep's coordinates-only path must give RowBasis's Z bit for bit (the sweep's results rest on it)."""
    X, _, _, _ = planted(n=200, d=d, seed=6)
    for dtype in (np.float32, np.float64):
        np.testing.assert_array_equal(row_coordinates(X, dtype=dtype), RowBasis.fit(X, dtype=dtype).Z)
