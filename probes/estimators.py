"""Linear probes with the scikit-learn estimator API.

``LogisticProbe``: L2 logistic regression on standardised activations, C chosen by inner cross-validation, fitted
by the batched row-space solver in :mod:`probes.solver` (exact, not approximate; see there).

``MeanDiffProbe``: difference of class means (mass-mean probe, Marks & Tegmark 2023), optionally with the
"iid" correction ``Sigma^-1 (mu1 - mu0)`` using a Ledoit-Wolf shrunk within-class covariance, applied via the
Woodbury identity when d > n so no d x d matrix is formed. :func:`mean_diff_scores` fits many label columns at once
(the sweep's task and control together).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from probes.solver import SCORINGS, LinearDecisionMixin, RowBasis, binary_targets, fit_logistic_in_basis

__all__ = ["LogisticProbe", "MeanDiffProbe", "DEFAULT_CS", "ledoit_wolf_shrinkage", "mean_diff_scores"]

DEFAULT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 7))


class _LinearProbeMixin(LinearDecisionMixin):
    """decision_function for probes storing ``coef_`` (1, d) and ``intercept_`` (1,) over activation rows."""

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)  # float64: x.w and the intercept nearly cancel
        return X @ self.coef_[0] + float(self.intercept_[0])


class LogisticProbe(_LinearProbeMixin, BaseEstimator):
    """L2 logistic-regression probe; C chosen by inner cross-validation; standardisation inside.

    Parameters: ``Cs`` grid of inverse regularisation strengths (scikit-learn convention); ``cv`` inner folds
    (grouped when ``fit(..., groups=...)`` is given, else stratified); ``scoring`` for the inner CV
    (``"log_loss"``, ``"roc_auc"``, ``"accuracy"``); ``tol`` max-abs gradient of the mean loss; ``precision``
    of the Gram matrix and eigendecomposition (``"float32"`` is ~2x faster; the solver always runs in float64);
    ``random_state`` for the inner split shuffling.

    Fitted attributes: ``coef_`` (1, d) and ``intercept_`` (1,) acting on raw activations, ``direction_`` (d,)
    unit vector in the original activation space (scaling undone), ``C_``, ``cv_scores_`` (mean inner score per
    C in ascending-C order), ``classes_``, ``n_features_in_``.
    """

    def __init__(
        self,
        Cs: Sequence[float] = DEFAULT_CS,
        cv: int = 3,
        scoring: str = "log_loss",
        standardize: bool = True,
        tol: float = 1e-4,
        max_iter: int = 500,
        precision: str = "float64",
        random_state: int = 0,
    ):
        self.Cs = Cs
        self.cv = cv
        self.scoring = scoring
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.precision = precision
        self.random_state = random_state

    def fit(self, X, y, groups=None) -> "LogisticProbe":
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        yb = binary_targets(self, y)
        if self.precision not in ("float64", "float32"):
            raise ValueError(f"precision must be 'float64' or 'float32', got {self.precision!r}")
        basis = RowBasis.fit(X, standardize=self.standardize, dtype=self.precision)
        out = fit_logistic_in_basis(self, basis, yb, groups)
        w = self.coef_[0]
        norm = np.linalg.norm(w)
        self.direction_ = w / norm if norm > 0 else w
        self.cv_scores_ = out["cv_scores"]
        self.n_iter_ = out["n_iter"]
        return self


def mean_diff_scores(X_train: np.ndarray, Y: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    """Decision scores of plain mass-mean probes for every label column of ``Y`` (n, T) in {0, 1} at once.

    Same result as ``MeanDiffProbe().fit(X_train, Y[:, t]).decision_function(X_test)`` for each t, with one
    matrix product for all class means (the sweep fits task and control together this way).
    """
    X = np.asarray(X_train)
    centre = X.mean(axis=0, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64).reshape(len(X), -1)
    Wm = np.hstack([(1 - Y) / (1 - Y).sum(axis=0), Y / Y.sum(axis=0)])  # (n, 2T) class-mean weights
    # Centre first so that float32 class means do not lose the (small) difference against a large common offset.
    means = (Wm.T.astype(X.dtype) @ (X - centre.astype(X.dtype))).astype(np.float64)  # (2T, d)
    T = Y.shape[1]
    mu0, mu1 = means[:T], means[T:]
    U = mu1 - mu0
    U /= np.maximum(np.linalg.norm(U, axis=1, keepdims=True), 1e-300)
    thresholds = (0.5 * (mu0 + mu1) * U).sum(axis=1)
    Xt = np.asarray(X_test, dtype=np.float64) - centre
    return Xt @ U.T - thresholds


def ledoit_wolf_shrinkage(Xc: np.ndarray, gram: np.ndarray | None = None) -> float:
    """Ledoit-Wolf shrinkage for already-centred data (same formula as scikit-learn's ``ledoit_wolf_shrinkage``
    with ``assume_centered=True``), computed from the n x n Gram matrix so it costs O(n^2 d), not O(n d^2)."""
    n, d = Xc.shape
    if d == 1:
        return 0.0
    G = Xc @ Xc.T if gram is None else gram
    diag = np.diag(G)
    mu = diag.sum() / (n * d)
    beta_ = float((diag**2).sum())  # sum_i |x_i|^4 = sum of <X2.T, X2>
    delta_ = float((G**2).sum()) / n**2  # |X^T X|_F^2 = |X X^T|_F^2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * diag.sum() / n + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def _shrunk_solve(Xc: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sigma^-1 v for the Ledoit-Wolf covariance of centred rows Xc (n, d). Woodbury when d > n."""
    n, d = Xc.shape
    G = Xc @ Xc.T
    s = ledoit_wolf_shrinkage(Xc, G)
    mu = np.trace(G) / (n * d)
    a = s * mu  # Sigma = a I + ((1-s)/n) Xc^T Xc
    if d <= n or a <= 1e-12 * max(mu, 1e-300):
        Sigma = (1 - s) / n * (Xc.T @ Xc) + a * np.eye(d)
        return np.linalg.lstsq(Sigma, v, rcond=None)[0]
    inner = a * np.eye(n) + (1 - s) / n * G
    return (v - (1 - s) / n * (Xc.T @ np.linalg.solve(inner, Xc @ v))) / a


class MeanDiffProbe(_LinearProbeMixin, BaseEstimator):
    """Difference-of-means (mass-mean) probe, closed form (Marks & Tegmark 2023).

    ``direction_`` = (mu1 - mu0) / |mu1 - mu0|; with ``iid=True`` it is Sigma^-1 (mu1 - mu0), normalised, where
    Sigma is the Ledoit-Wolf shrunk covariance of the class-centred training data (their "iid correction").
    ``decision_function(x) = x . direction_ - threshold_``, threshold at the projected midpoint of the class means
    (so it assumes balanced classes). ``predict_proba`` uses the equal-variance Gaussian slope
    (m1 - m0) / s^2 of the 1-D projections (``proba_scale_``); it only rescales the decision.
    """

    def __init__(self, iid: bool = False):
        self.iid = iid

    def fit(self, X, y) -> "MeanDiffProbe":
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        yb = binary_targets(self, y)
        X = np.asarray(X, dtype=np.float64)
        mu0, mu1 = X[yb == 0].mean(axis=0), X[yb == 1].mean(axis=0)
        diff = mu1 - mu0
        w = diff
        if self.iid:
            Xc = X - np.where((yb == 1)[:, None], mu1, mu0)
            w = _shrunk_solve(Xc, diff)
        norm = np.linalg.norm(w)
        u = w / norm if norm > 0 else w
        self.diff_of_means_ = diff
        self.direction_ = u
        self.threshold_ = float(0.5 * (mu0 + mu1) @ u)
        self.coef_ = u[None, :]
        self.intercept_ = np.array([-self.threshold_])
        proj = X @ u
        m0, m1 = proj[yb == 0].mean(), proj[yb == 1].mean()
        var = (((proj[yb == 0] - m0) ** 2).sum() + ((proj[yb == 1] - m1) ** 2).sum()) / max(len(yb) - 2, 1)
        self.proba_scale_ = float((m1 - m0) / var) if var > 0 else 1.0
        return self

    def _logit(self, X) -> np.ndarray:
        return self.proba_scale_ * self.decision_function(X)
