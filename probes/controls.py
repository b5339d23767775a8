"""Controls for probe results: a control task (Hewitt & Liang 2019) and a lexical bag-of-words baseline.

Control task design for sentence-level probes evaluated on held-out groups
---------------------------------------------------------------------------
Hewitt & Liang give every word *type* a random label and keep it fixed across occurrences, so the control task
has the task's label marginal, is learnable only by memorising type -> label, and is unrelated to the property.
Here the "type" is whatever unit a memorising probe could key on (``types``):

- default (``types=None``): every example is its own type; labels are a seeded random assignment with the
  task's positive rate, stratified by task label and group so that control and task labels are uncorrelated in
  the sample and every fold sees the same control-label balance (see ``control_labels`` for why both matter). Held-out groups contain no training example, so a probe that memorises cannot
  transfer anything: control accuracy is at chance by construction and selectivity reduces to accuracy - ~0.5.
- ``types=pair_id`` (minimal pairs) or ``types=template_id``: one random label per pair/template. If the types
  recur across groups (a template used for several entities) the control is learnable by recognising the type,
  which is the capacity check Hewitt & Liang intended; a high control accuracy then warns that the probe is
  expressive enough to fit arbitrary surface keys.

``scheme="within_group"`` is a different null: labels permuted inside each group, which keeps each group's label
rate. Above-chance control accuracy under it means part of the task accuracy could come from group-level
label-rate confounds rather than from the concept.

The same control labels are used for every layer and fold, so each layer's control accuracy is measured on the
same splits as its task accuracy. Selectivity = task accuracy - control accuracy, with a Newcombe interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from probes.metrics import Metric, proportion_difference
from probes.solver import LinearDecisionMixin, RowBasis, binary_targets, fit_logistic_in_basis

__all__ = ["control_labels", "selectivity", "LexicalBaseline", "LEXICAL_CS"]

LEXICAL_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-2, 4, 7))


def control_labels(
    y: np.ndarray,
    *,
    types: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    scheme: str = "type",
    seed: int = 0,
) -> np.ndarray:
    """Control-task labels with the task's label marginal (see the module docstring for the design).

    ``scheme="type"``: one random label per distinct value of ``types`` (default: per example). Types are
    stratified by (their group, if all their examples share one, and) their task-label composition; within each
    stratum, types in seeded random order are labelled 1 until the stratum's positive count reaches the task's
    positive rate times its size (rounding carried across strata, so the overall count is within one of the
    task's). Hence the control labels are uncorrelated with the task labels in the sample and have the same rate
    in every group, so no cross-validation fold sees a shifted control-label balance.
    ``scheme="within_group"``: permutation of ``y`` inside each group of ``groups``.
    """
    y = np.asarray(y)
    classes, yb = np.unique(y, return_inverse=True)
    if classes.size != 2:
        raise ValueError(f"control task needs binary labels, got {classes.tolist()}")
    rng = np.random.default_rng(seed)
    out = np.empty_like(yb)
    if scheme == "type":
        keys = np.arange(len(y)) if types is None else np.asarray(types)
        if keys.shape != y.shape:
            raise ValueError(f"types has shape {keys.shape}, labels {y.shape}")
        _, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
        # Why stratify: (1) by task label, because independent draws leave a chance correlation of order
        # 1/sqrt(n) with the task, and a probe that reads the real concept then scores above chance on the
        # control (0.54 at n=800 in a synthetic check); (2) by group, because with a fixed total, a held-out fold
        # with extra control positives leaves the training folds with fewer, the fitted intercept moves the other
        # way and control accuracy falls below chance (0.465 on average in a synthetic check), which inflates
        # selectivity.
        type_rate = np.bincount(inverse, weights=yb) / sizes
        strata = np.round(type_rate * 4).astype(np.int64)
        if groups is not None:
            _, g_idx = np.unique(np.asarray(groups), return_inverse=True)
            g_min = np.full(sizes.size, np.iinfo(np.int64).max)
            g_max = np.full(sizes.size, -1)
            np.minimum.at(g_min, inverse, g_idx)
            np.maximum.at(g_max, inverse, g_idx)
            type_group = np.where(g_min == g_max, g_min, -1)  # -1: type spans several groups
            strata = strata + 5 * (type_group + 1)
        rate = yb.mean()
        pos_type = np.zeros(sizes.size, dtype=bool)
        carry = 0.0
        for s in rng.permutation(np.unique(strata)):
            order = rng.permutation(np.flatnonzero(strata == s))
            target = rate * sizes[order].sum() + carry
            n_pos = float(np.round(target))
            carry = target - n_pos
            before = np.cumsum(sizes[order]) - sizes[order]
            # A type is positive while the running count (at the type's midpoint) is below the stratum target.
            pos_type[order] = before + sizes[order] / 2 < n_pos
        out = pos_type[inverse].astype(yb.dtype)
    elif scheme == "within_group":
        if groups is None:
            raise ValueError("scheme='within_group' needs groups")
        groups = np.asarray(groups)
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            out[idx] = yb[rng.permutation(idx)]
    else:
        raise ValueError(f"unknown control scheme {scheme!r}; use 'type' or 'within_group'")
    return classes[out]


def selectivity(task_accuracy: Metric, control_accuracy: Metric) -> Metric:
    """Task accuracy minus control accuracy (Hewitt & Liang), Newcombe interval."""
    k1 = round(task_accuracy.value * task_accuracy.n)
    k2 = round(control_accuracy.value * control_accuracy.n)
    return proportion_difference(k1, task_accuracy.n, k2, control_accuracy.n)


class LexicalBaseline(LinearDecisionMixin, BaseEstimator):
    """Bag-of-words baseline on the raw texts: unigram+bigram TF-IDF (or binary counts) + L2 logistic regression
    with C chosen by inner CV (grouped when ``fit(..., groups=...)`` is given). Same solver as ``LogisticProbe``.

    If a probe does not beat this, the concept may be readable from surface wording alone.
    """

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 1,
        tfidf: bool = True,
        Cs: Sequence[float] = LEXICAL_CS,
        cv: int = 3,
        scoring: str = "log_loss",
        tol: float = 1e-4,
        max_iter: int = 500,
        random_state: int = 0,
    ):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.tfidf = tfidf
        self.Cs = Cs
        self.cv = cv
        self.scoring = scoring
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def _vectorizer(self):
        if self.tfidf:
            return TfidfVectorizer(ngram_range=self.ngram_range, min_df=self.min_df, sublinear_tf=True)
        return CountVectorizer(ngram_range=self.ngram_range, min_df=self.min_df, binary=True)

    def fit(self, texts, y, groups=None) -> "LexicalBaseline":
        texts = [str(t) for t in texts]
        yb = binary_targets(self, y)
        self.vectorizer_ = self._vectorizer()
        Xt = self.vectorizer_.fit_transform(texts)
        fit_logistic_in_basis(self, RowBasis.fit(Xt, standardize=False), yb, groups)
        return self

    def decision_function(self, texts) -> np.ndarray:
        check_is_fitted(self, "coef_")
        Xt = self.vectorizer_.transform([str(t) for t in texts])
        return np.asarray(Xt @ self.coef_[0]).ravel() + float(self.intercept_[0])

    def top_ngrams(self, k: int = 10) -> dict[str, list[tuple[str, float]]]:
        """The k n-grams with the most positive and most negative weights (what the baseline keys on)."""
        check_is_fitted(self, "coef_")
        names = self.vectorizer_.get_feature_names_out()
        order = np.argsort(self.coef_[0])
        return {
            "positive": [(str(names[i]), float(self.coef_[0, i])) for i in order[::-1][:k]],
            "negative": [(str(names[i]), float(self.coef_[0, i])) for i in order[:k]],
        }
