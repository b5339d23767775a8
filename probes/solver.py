"""The L2 logistic-regression solver behind :class:`~probes.estimators.LogisticProbe`, the layer sweep and the
bag-of-words baseline, and the prediction methods every linear probe shares.

Speed comes from two exact reformulations rather than approximations:

1. Row-space basis (:class:`RowBasis`). With an L2 penalty (and an unpenalised intercept) the optimal weight vector
   lies in the span of the training rows: a component orthogonal to every row changes no logit but adds penalty.
   Writing ``Xs = U S V^T`` (thin SVD of the standardised training matrix), ``w = V a`` gives logits ``U S a`` and
   penalty ``|a|^2``, so fitting on ``Z = U S`` (n x rank) is the same problem. Inner-CV folds use rows of the same
   ``Z`` (their row space is a subspace), so the whole C search runs in at most ``min(n, d)`` dimensions. ``Z``
   comes from ``eigh`` of the smaller of the Gram matrix and the covariance. As in ``Pipeline(StandardScaler(),
   LogisticRegressionCV())``, the inner folds share the scaler fitted on the probe's training data (unsupervised,
   no label leakage). The same argument lets several outer folds share one basis of all their rows
   (:func:`fit_l2_logistic_cv_folds`): the layer sweep's default, which then also shares the scaler with the
   held-out rows (their features, never their labels; see ``probes.sweep.layer_sweep``'s ``scaling``).
2. Batched L-BFGS (:func:`logistic_lbfgs`). All (C, inner fold) problems are solved together: each iteration is one
   matrix-matrix product ``Z @ W`` instead of many matrix-vector products, which are memory-bound. Each problem
   keeps its own history, step size and stopping test. In the ``Z`` basis the Hessian at w=0 is close to diagonal,
   and that diagonal is the initial inverse-Hessian scaling, so few iterations are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GroupKFold, StratifiedKFold

from probes.metrics import delong_components

__all__ = ["SCORINGS", "LinearDecisionMixin", "RowBasis", "binary_targets", "fit_l2_logistic_cv",
           "fit_l2_logistic_cv_folds", "fit_logistic_in_basis", "logistic_lbfgs", "row_coordinates"]

SCORINGS = ("log_loss", "roc_auc", "accuracy")


@dataclass
class RowBasis:
    """Standardisation plus an orthonormal basis of the standardised training rows ``A`` (n, d).

    ``Z`` (n, k) = U S of the thin SVD of ``A``: the training coordinates, in ``dtype``. The basis ``V`` (d, k) = A^T U / s is
    kept factored as (``A``, ``Us`` = U / s) when d > n: mapping test rows through ``A_test A^T Us`` and weights
    through ``A^T (Us a)`` is cheaper than forming ``V`` (and needs no d x n dense matrix for sparse text features).
    ``dtype=float32`` halves the cost of the Gram matrix and ``eigh``; eigen-directions below ``rel_tol`` times the
    largest eigenvalue are dropped (1e-9 in float64, 1e-5 in float32: below that they are rounding noise).
    """

    mean: np.ndarray | None  # None: no centring (sparse input)
    scale: np.ndarray | None  # None: no scaling
    Z: np.ndarray
    V: np.ndarray | None = None  # d <= n
    A: object = None  # d > n: standardised training rows (dense or sparse)
    Us: np.ndarray | None = None

    @classmethod
    def fit(cls, X, standardize: bool = True, dtype=np.float64) -> "RowBasis":
        mean, scale, A = _standardised(X, standardize, np.dtype(dtype))
        if A.shape[1] <= A.shape[0]:
            V = _top_eigenvectors(A.T)[1]
            return cls(mean, scale, np.ascontiguousarray(A @ V), V=V)
        s, U = _top_eigenvectors(A)
        return cls(mean, scale, _scaled(U, s), A=A, Us=U.astype(np.float64) / s)

    def _standardise(self, X):
        if sp.issparse(X):
            return X
        A = np.asarray(X, dtype=np.float64)
        if self.mean is not None:
            A = A - self.mean
        if self.scale is not None:
            A = A / self.scale
        return A

    def transform(self, X) -> np.ndarray:
        A = self._standardise(X)
        if self.V is not None:
            return np.asarray(A @ self.V, dtype=np.float64)
        K = A.astype(self.A.dtype, copy=False) @ self.A.T  # (m, n) kernel against the training rows
        K = K.toarray() if sp.issparse(K) else K
        return np.asarray(K, dtype=np.float64) @ self.Us

    def to_original(self, a: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        """Map basis coefficients ``a`` and intercept ``b`` to (coef, intercept) acting on raw X."""
        if self.V is not None:
            w = self.V.astype(np.float64) @ a
        else:
            w = np.asarray(self.A.T @ (self.Us @ a).astype(self.A.dtype), dtype=np.float64).ravel()
        if self.scale is not None:
            w = w / self.scale
        if self.mean is not None:
            b = b - float(self.mean @ w)
        return w, float(b)


def row_coordinates(X: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``RowBasis.fit(X, dtype=dtype).Z`` alone (bit for bit): the coordinates of X's standardised rows, which is
    all the layer sweep keeps, without the float64 factors that map new rows and weights."""
    _, _, A = _standardised(X, True, np.dtype(dtype))
    if A.shape[1] <= A.shape[0]:
        return A @ _top_eigenvectors(A.T)[1]
    s, U = _top_eigenvectors(A)
    return _scaled(U, s)


def _standardised(X, standardize: bool, dtype: np.dtype) -> tuple[np.ndarray | None, np.ndarray | None, object]:
    """(mean, scale, A): A is a standardised copy of X in ``dtype`` (sparse X: neither centred nor scaled)."""
    if sp.issparse(X):
        return None, None, sp.csr_matrix(X, dtype=dtype)
    X = np.asarray(X)
    mean = X.mean(axis=0, dtype=np.float64)
    A = X.astype(dtype, copy=True)  # one working copy in the target precision (float32 halves the traffic)
    A -= mean.astype(dtype)
    scale = None
    if standardize:
        scale = np.sqrt(np.square(A).mean(axis=0, dtype=np.float64))
        scale[scale < 1e-12 * max(1.0, float(scale.max(initial=0.0)))] = 1.0  # constant features
        A /= scale.astype(dtype)
    return mean, scale, A


def _top_eigenvectors(A) -> tuple[np.ndarray, np.ndarray]:
    """(s, U): square roots of the eigenvalues of ``A A^T`` above ``rel_tol`` times the largest (1e-9 in float64,
    1e-5 in float32: below that they are rounding noise), descending, and their eigenvectors (C-contiguous)."""
    rel_tol = 1e-9 if A.dtype == np.float64 else 1e-5
    G = A @ A.T  # dense: numpy computes one triangle (syrk) and mirrors it, so G is exactly symmetric
    G = G.toarray() if sp.issparse(G) else G.T  # the transpose is Fortran-ordered: LAPACK needs no copy
    # LAPACK's divide-and-conquer driver was the fastest measured here (vs numpy's default and MRRR).
    ev, U = scipy.linalg.eigh(G, lower=True, driver="evd", overwrite_a=True, check_finite=False)
    keep = np.flatnonzero(ev > rel_tol * max(ev[-1], 1e-300))[::-1]
    return np.sqrt(ev[keep].astype(np.float64)), np.ascontiguousarray(U[:, keep])


def _scaled(U: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``U * s`` in U's dtype, C-contiguous (rounded once from float64, as the solver has always done)."""
    return np.ascontiguousarray((U.astype(np.float64) * s).astype(U.dtype))


def logistic_lbfgs(
    Z: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    C: np.ndarray,
    theta0: np.ndarray | None = None,
    *,
    tol: float = 1e-4,
    max_iter: int = 500,
    memory: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve P independent L2 logistic regressions sharing the design ``Z`` (n, k).

    The two products with ``Z`` per iteration run in ``Z``'s dtype (float32 halves their cost); everything else,
    including the L-BFGS history, is float64.

    Problem p: rows with ``M[:, p] > 0``, labels ``Y[:, p]`` in {0,1}, objective
    ``mean_i loss_i + |w|^2 / (2 C_p n_p)`` (scikit-learn's C convention divided by C n_p). Intercept unpenalised.
    Returns ``theta`` (k+1, P) whose last row is the intercept, and iterations used per problem.
    """
    n, k = Z.shape
    P = Y.shape[1]
    Wt = M / np.maximum(M.sum(axis=0), 1.0)  # per-row weights, each column sums to one
    lam = 1.0 / (np.asarray(C, float) * np.maximum(M.sum(axis=0), 1.0))
    # Diagonal of the Hessian at w=0 (sigma' = 1/4): exact in the orthogonal Z basis when all rows are used.
    h0 = np.empty((k + 1, P))
    h0[:k] = 0.25 * ((Z * Z).T @ Wt.astype(Z.dtype)) + lam
    h0[k] = 0.25
    theta = np.zeros((k + 1, P)) if theta0 is None else np.array(theta0, dtype=float, copy=True)
    n_iter = np.zeros(P, dtype=int)
    st = _LbfgsState(theta.copy(), Wt, Wt * Y, lam, 1.0 / h0, memory)

    def objective(th: np.ndarray, c) -> tuple[np.ndarray, np.ndarray]:
        z = (Z @ th[:k].astype(Z.dtype)).astype(np.float64)
        z += th[k]
        f = np.einsum("ij,ij->j", st.Wt[:, c], np.logaddexp(0.0, z)) - np.einsum("ij,ij->j", st.WY[:, c], z)
        return f + 0.5 * st.lam[c] * np.einsum("ij,ij->j", th[:k], th[:k]), z

    def gradient(th: np.ndarray, z: np.ndarray) -> np.ndarray:
        R = st.Wt * expit(z)
        R -= st.WY
        g = np.empty_like(th)
        g[:k] = Z.T @ R.astype(Z.dtype)
        g[:k] += st.lam * th[:k]
        g[k] = R.sum(axis=0)
        return g

    every = slice(None)
    st.f, z = objective(st.theta, every)
    st.g = gradient(st.theta, z)
    st.finish(np.abs(st.g).max(axis=0) <= tol, theta, n_iter)
    for it in range(max_iter):
        if not st.live.any():
            break
        live = st.live
        st.n_iter += live
        # Two-loop recursion, vectorised over problems; pairs with rho=0 are inert.
        q = st.g.copy()
        alphas = []
        for j in [(st.slot - 1 - i) % memory for i in range(min(memory, it))]:
            al = st.rho[j] * np.einsum("ij,ij->j", st.S[j], q)
            q -= al * st.Yh[j]
            alphas.append((j, al))
        q *= st.gamma * st.H0
        for j, al in reversed(alphas):
            be = st.rho[j] * np.einsum("ij,ij->j", st.Yh[j], q)
            q += st.S[j] * (al - be)
        d = np.negative(q, out=q)
        d[:, ~live] = 0.0  # finished problems still carried take no step
        gd = np.einsum("ij,ij->j", st.g, d)
        bad = live & (gd >= 0)  # lost descent (numerical): restart from the preconditioned gradient
        if bad.any():
            d[:, bad] = -st.H0[:, bad] * st.g[:, bad]
            gd[bad] = (st.g[:, bad] * d[:, bad]).sum(axis=0)
            st.rho[:, bad] = 0.0
            st.gamma[bad] = 1.0
        # Backtracking Armijo line search per problem; only failing problems are re-evaluated.
        t = np.ones(live.size)
        th_new = st.theta + d
        f_new, z_new = objective(th_new, every)
        ok = ~live | (f_new <= st.f + 1e-4 * t * gd)
        for _ls in range(40):
            if ok.all():
                break
            fail = np.flatnonzero(~ok)
            t[fail] *= 0.5
            th_try = st.theta[:, fail] + t[fail] * d[:, fail]
            f_try, z_try = objective(th_try, fail)
            th_new[:, fail], f_new[fail], z_new[:, fail] = th_try, f_try, z_try
            ok[fail] = f_try <= st.f[fail] + 1e-4 * t[fail] * gd[fail]
        g_new = gradient(th_new, z_new)
        s_vec = th_new - st.theta
        y_vec = g_new - st.g
        sy = np.einsum("ij,ij->j", s_vec, y_vec)
        ss, yy = np.einsum("ij,ij->j", s_vec, s_vec), np.einsum("ij,ij->j", y_vec, y_vec)
        valid = live & (sy > 1e-12 * np.sqrt(ss * yy))
        st.S[st.slot] = np.where(valid, s_vec, 0.0)
        st.Yh[st.slot] = np.where(valid, y_vec, 0.0)
        st.rho[st.slot] = np.where(valid, 1.0 / np.where(valid, sy, 1.0), 0.0)
        yHy = np.einsum("ij,ij,ij->j", y_vec, st.H0, y_vec)
        st.gamma = np.where(valid & (yHy > 0), sy / np.where(yHy > 0, yHy, 1.0), st.gamma)
        st.slot = (st.slot + 1) % memory
        decrease = st.f - f_new
        st.theta, st.g, st.f = th_new, g_new, f_new
        small = (np.abs(g_new).max(axis=0) <= tol) | (decrease <= 1e-12 * np.maximum(1.0, np.abs(f_new)))
        st.finish(live & (small | ~ok), theta, n_iter)
    st.finish(st.live, theta, n_iter)  # max_iter reached
    return theta, n_iter


class _LbfgsState:
    """Per-problem arrays (problem axis last) of the problems :func:`logistic_lbfgs` still carries.

    Finished problems are written out and stay in the arrays, inert (no step), until they are a quarter of them;
    then the arrays are compacted. Gathering the live columns of the whole L-BFGS history every iteration instead
    cost more than the products with ``Z``.
    """

    _COLUMNS = ("ids", "theta", "Wt", "WY", "lam", "H0", "n_iter", "gamma", "rho", "S", "Yh", "f", "g")

    def __init__(self, theta: np.ndarray, Wt: np.ndarray, WY: np.ndarray, lam: np.ndarray, H0: np.ndarray,
                 memory: int) -> None:
        k1, P = theta.shape
        self.ids, self.theta, self.Wt, self.WY, self.lam, self.H0 = np.arange(P), theta, Wt, WY, lam, H0
        self.n_iter = np.zeros(P, dtype=int)
        self.gamma = np.ones(P)
        self.rho = np.zeros((memory, P))
        self.S = np.zeros((memory, k1, P))
        self.Yh = np.zeros((memory, k1, P))
        self.f = self.g = None
        self.live = np.ones(P, dtype=bool)
        self.slot = 0

    def finish(self, done: np.ndarray, theta_out: np.ndarray, n_iter_out: np.ndarray) -> None:
        """Write out the problems in ``done`` (a mask over the carried columns) and stop them."""
        if done.any():
            theta_out[:, self.ids[done]] = self.theta[:, done]
            n_iter_out[self.ids[done]] = self.n_iter[done]
            self.live &= ~done
        if 4 * (~self.live).sum() >= self.live.size:
            keep = self.live.copy()
            for name in self._COLUMNS:
                value = getattr(self, name)
                if value is not None:
                    setattr(self, name, value[..., keep])
            self.live = self.live[keep]


def _inner_splits(
    y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Grouped K-fold when groups are given (as many folds as groups allow), else stratified K-fold."""
    if groups is not None:
        n_groups = np.unique(groups).size
        if n_groups >= 2:
            k = min(n_splits, n_groups)
            cv = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
            return list(cv.split(np.zeros(len(y)), y, groups)), f"group_kfold({k})"
    k = min(n_splits, int(np.bincount(y).min()))
    if k < 2:
        raise ValueError("too few examples of the minority class for inner cross-validation")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    note = "stratified_kfold" + ("" if groups is None else " (fewer than 2 groups: fell back)")
    return list(cv.split(np.zeros(len(y)), y)), f"{note}({k})"


def _cv_score(y: np.ndarray, logits: np.ndarray, scoring: str) -> float:
    if scoring == "log_loss":
        return -float(np.mean(np.logaddexp(0.0, logits) - y * logits))
    if scoring == "accuracy":
        return float(np.mean((logits > 0) == (y == 1)))
    if scoring == "roc_auc":
        pos = y == 1
        if pos.all() or not pos.any():
            return float("nan")
        return float(delong_components(pos, logits)[0][0])
    raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")


def _select_C(
    Z: np.ndarray,
    y: np.ndarray,
    inner: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]],
    Cs: Sequence[float],
    scoring: str,
    tol: float,
    max_iter: int,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Solve every (outer fold, inner fold, C) problem in one batch over the rows of ``Z``.

    ``inner[f]`` lists outer fold f's inner (train, test) splits as row indices of ``Z``. Returns, per outer fold,
    the best C index, the mean inner score per C and the warm start for the refit.
    """
    n = len(y)
    nC = len(Cs)
    cells = [(f, i) for f, splits in enumerate(inner) for i in range(len(splits))]
    M = np.zeros((n, len(cells) * nC))
    for j, (f, i) in enumerate(cells):
        M[inner[f][i][0], j * nC : (j + 1) * nC] = 1.0  # column = cell * nC + c
    Y = np.repeat(y[:, None].astype(float), M.shape[1], axis=1)
    Cvec = np.tile(np.asarray(Cs, float), len(cells))
    theta, _ = logistic_lbfgs(Z, Y, M, Cvec, tol=tol, max_iter=max_iter)
    out, j0 = [], 0
    for splits in inner:
        block = theta[:, j0 * nC : (j0 + len(splits)) * nC]
        scores = np.empty((len(splits), nC))
        for i, (_, te) in enumerate(splits):
            logits = Z[te] @ block[:-1, i * nC : (i + 1) * nC] + block[-1, i * nC : (i + 1) * nC]
            scores[i] = [_cv_score(y[te], logits[:, c], scoring) for c in range(nC)]
        mean = np.nanmean(scores, axis=0)
        # Cs ascend, argmax takes the first maximum: ties go to the stronger penalty.
        best = int(np.nanargmax(mean))
        out.append((best, mean, block[:, best::nC].mean(axis=1)))
        j0 += len(splits)
    return out


def fit_l2_logistic_cv_folds(
    Z: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    train_rows: Sequence[np.ndarray],
    *,
    Cs: Sequence[float],
    cv: int,
    scoring: str,
    tol: float,
    max_iter: int,
    seed: int,
    extra_targets: np.ndarray | None = None,
) -> list[dict]:
    """:func:`fit_l2_logistic_cv` for several training subsets of the rows of one basis ``Z`` (n, k), solved together.

    ``train_rows[f]`` indexes outer fold f's training rows. Each fold gets exactly the problem it would get alone
    (its own inner splits, C and refit; other rows have weight zero), but every (fold, inner fold, C) problem runs in
    one batched solve and the refits in another, so each iteration is one large matrix product. This is how the
    layer sweep fits all its outer folds on a basis of the whole layer: a fold's row space lies inside the layer's.
    """
    y = np.asarray(y)
    Cs = sorted(float(c) for c in Cs)
    folds = [np.asarray(tr) for tr in train_rows]
    if len(Cs) == 1:
        picks = [(0, np.array([np.nan]), None)] * len(folds)
        notes = ["single C"] * len(folds)
    else:
        inner, notes = [], []
        for tr in folds:
            splits, note = _inner_splits(y[tr], None if groups is None else groups[tr], cv, seed)
            inner.append([(tr[a], tr[b]) for a, b in splits])
            notes.append(note)
        picks = _select_C(Z, y, inner, Cs, scoring, tol, max_iter)
    targets = y[:, None].astype(float)
    if extra_targets is not None:
        targets = np.hstack([targets, np.asarray(extra_targets, float).reshape(len(y), -1)])
    T = targets.shape[1]
    M = np.zeros((len(y), len(folds) * T))
    for f, tr in enumerate(folds):
        M[tr, f * T : (f + 1) * T] = 1.0
    Cvec = np.repeat([Cs[best] for best, _, _ in picks], T)
    theta0 = None
    if picks[0][2] is not None:
        theta0 = np.repeat(np.column_stack([warm for _, _, warm in picks]), T, axis=1)
    theta, n_iter = logistic_lbfgs(Z, np.tile(targets, len(folds)), M, Cvec, theta0, tol=tol, max_iter=max_iter)
    return [
        {"C": Cs[best], "cv_scores": scores, "theta": theta[:, f * T : (f + 1) * T],
         "n_iter": n_iter[f * T : (f + 1) * T], "cv_note": notes[f]}
        for f, (best, scores, _) in enumerate(picks)
    ]


def fit_l2_logistic_cv(
    basis: RowBasis,
    y: np.ndarray,
    groups: np.ndarray | None,
    *,
    Cs: Sequence[float],
    cv: int,
    scoring: str,
    tol: float,
    max_iter: int,
    seed: int,
    extra_targets: np.ndarray | None = None,
) -> dict:
    """Pick C on ``y`` by inner CV, then refit on all rows for ``y`` and any ``extra_targets`` (n, T) at that C.

    Extra targets (e.g. control-task labels) reuse the basis and the chosen C, so they cost one more column.
    """
    return fit_l2_logistic_cv_folds(basis.Z, y, groups, [np.arange(len(y))], Cs=Cs, cv=cv, scoring=scoring, tol=tol,
                                    max_iter=max_iter, seed=seed, extra_targets=extra_targets)[0]


def fit_logistic_in_basis(est: BaseEstimator, basis: RowBasis, yb: np.ndarray, groups) -> dict:
    """Fit ``est``'s CV-tuned L2 logistic regression in ``basis``; set ``coef_``, ``intercept_`` (original space), ``C_``.

    Shared by :class:`LogisticProbe` (activations) and ``probes.controls.LexicalBaseline`` (bag of words).
    """
    out = fit_l2_logistic_cv(basis, yb, None if groups is None else np.asarray(groups), Cs=est.Cs, cv=est.cv,
                              scoring=est.scoring, tol=est.tol, max_iter=est.max_iter, seed=est.random_state)
    w, b = basis.to_original(out["theta"][:-1, 0], out["theta"][-1, 0])
    est.coef_ = w[None, :]
    est.intercept_ = np.array([b])
    est.C_ = out["C"]
    return out


def binary_targets(est: BaseEstimator, y) -> np.ndarray:
    classes, yb = np.unique(np.asarray(y), return_inverse=True)
    if classes.size != 2:
        raise ValueError(f"{type(est).__name__} is a binary probe; got classes {classes.tolist()}")
    est.classes_ = classes
    return yb.astype(np.int64)


class LinearDecisionMixin(ClassifierMixin):
    """``predict_proba`` and ``predict`` from a ``decision_function`` (the logit), for binary linear classifiers.

    A subclass defines ``decision_function`` and ``classes_``; ``_logit`` may rescale the decision for
    probabilities (the mass-mean probe does) without moving the decision boundary.
    """

    def _logit(self, X) -> np.ndarray:
        return self.decision_function(X)

    def predict_proba(self, X) -> np.ndarray:
        p1 = expit(self._logit(X))
        return np.column_stack([1 - p1, p1])

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0  # first: raises NotFittedError before classes_ is touched
        return self.classes_[positive.astype(int)]
