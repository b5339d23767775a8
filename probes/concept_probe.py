"""Probing one concept: the estimators by name, a unit direction from a fitted probe, the per-concept result.

Everything here works on arrays and :class:`~probes.sweep.SweepResult` objects; where the activations come from is the
job's business (:mod:`experiments.jobs.probe`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probes.concepts import ConceptDataset
from probes.directions import Direction
from probes.estimators import LogisticProbe, MeanDiffProbe
from probes.metrics import auroc
from probes.sweep import LayerVerdict, SweepResult

__all__ = ["ESTIMATORS", "ConceptResult", "fit_direction", "primary_layer", "source_breakdown"]

#: Probe estimators by the name used in configs and saved directions.
ESTIMATORS: dict[str, Callable[[], Any]] = {
    "logistic": LogisticProbe, "mean_diff": MeanDiffProbe, "mean_diff_iid": lambda: MeanDiffProbe(iid=True)}


@dataclass
class ConceptResult:
    """One concept's sweep, its baseline verdicts, the selected layer per estimator and its saved directions."""

    concept: str
    n: int
    n_groups: int
    data_hash: str
    sweep: SweepResult
    verdicts: dict[str, list[LayerVerdict]]
    selected: dict[str, int | None]
    selection_notes: dict[str, str] = field(default_factory=dict)
    directions: list[Direction] = field(default_factory=list)
    by_source: dict[str, Any] = field(default_factory=dict)

    def direction(self, estimator: str, layer: int) -> Direction:
        return next(d for d in self.directions if d.estimator == estimator and d.layer == layer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept": self.concept,
            "n": self.n,
            "n_groups": self.n_groups,
            "data_hash": self.data_hash,
            "selected_layer": self.selected,
            "selection_notes": self.selection_notes,
            "by_source": self.by_source,
            "sweep": self.sweep.to_dict(),
            "verdicts": {est: [v.to_dict() for v in rows] for est, rows in self.verdicts.items()},
        }


def fit_direction(estimator: str, X: np.ndarray, y: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, float, Any]:
    """Fit ``estimator`` on all of (X, y); return its unit vector and bias (decision = X @ v + bias) and the model."""
    probe = ESTIMATORS[estimator]()
    probe.fit(X, y, groups=np.asarray(groups)) if estimator == "logistic" else probe.fit(X, y)
    coef = np.asarray(probe.coef_[0], dtype=np.float64)
    norm = float(np.linalg.norm(coef))
    return coef / norm, float(probe.intercept_[0]) / norm, probe


def source_breakdown(ds: ConceptDataset, sweep: SweepResult, selected: dict[str, int | None]) -> dict[str, Any]:
    """Out-of-fold AUROC of each selected probe and of the lexical baseline within each data source.

    Templated rows are built so that unigram and bigram counts carry no label; hand-written rows are not, so the
    lexical baseline is strong there. A probe that only beats it on templated rows may be reading word order.
    """
    if ds.sources is None or sweep.lexical is None:
        return {}
    sources = np.asarray(ds.sources)
    out: dict[str, Any] = {}
    for source in sorted(set(ds.sources)):
        keep = sources == source
        y = sweep.y[keep]
        if len(set(y.tolist())) < 2:
            continue
        row: dict[str, Any] = {"n": int(keep.sum()), "lexical": auroc(y, sweep.lexical.oof_scores[keep]).to_dict()}
        for est, layer in selected.items():
            scores = None if layer is None else sweep.get(est, layer).oof_scores
            if scores is not None:
                row[est] = {"layer": layer, "auroc": auroc(y, scores[keep]).to_dict()}
        out[source] = row
    return out


def primary_layer(result: ConceptResult) -> tuple[str, int] | None:
    """The (estimator, layer) used downstream: the logistic probe's selected layer, else mass-mean's."""
    for est in ("logistic", "mean_diff", *result.selected):
        if result.selected.get(est) is not None:
            return est, int(result.selected[est])  # type: ignore[arg-type]
    return None
