"""Judge-aware rates of convergence: judge-only, reviewed-only and prediction-powered, side by side.

One rate definition everywhere: **converged / (trials - refused)**. Three named columns (``docs/rates.md``):

- **judge-only**: the judge's labels on all N trials, abstentions left out, Wilson 95% interval: today's number. It
  is exact about the judge and says nothing about how far the judge is from a reviewer;
- **reviewed-only**: the reviewer's labels on the blind random sample (:mod:`behaviour.review_sample`), Wilson 95%
  interval. ``no verdict`` is an outcome (it counts in the denominator: engaged, not converged), not a skipped row;
- **PPI**: prediction-powered (PPI++, :mod:`common.ppi`): the judge's predictions on the N - n unreviewed trials,
  corrected by its errors on the n reviewed ones, as one estimating equation for the ratio. The judge's prediction
  includes its abstentions (an abstained trial predicts engaged and not converged; a row's ``probabilities`` dict, if
  a judge records one, is used as a soft prediction instead).

Where no filled sample exists, only the judge-only column is shown, with the plain statement that agreement with a
reviewer on this model's outputs was not measured. Differences between cells that differ in one grouping field get
an interval and p-value per column: Newcombe's interval and Fisher's exact p for judge-only and reviewed-only (counts
exist there), Newcombe's interval on the PPI arms and its inverted p for PPI (:func:`common.ppi.ppi_difference`).

Callers (trials and score reports, steering report, study) use :func:`judged_rates`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from behaviour.judges.labels import LABELS
from behaviour.review_sample import NO_VERDICT, FilledSample
from common.errors import ConfigError
from common.ppi import DifferenceEstimate, PPIEstimate, difference_interval, ppi_difference, ppi_ratio
from common.stats import fisher_exact, wilson_interval

__all__ = ["NOT_MEASURED", "RATE_DEFINITION", "CellRates", "CountRate", "RateDifference", "RatesTable",
           "judged_rates"]

RATE_DEFINITION = "converged / (trials - refused)"
NOT_MEASURED = "judge-only; agreement with a reviewer on this model's outputs not measured"
ALPHA = 0.05


@dataclass(frozen=True)
class CountRate:
    """A rate from counts: ``converged / engaged`` with its Wilson interval (None where ``engaged`` is 0)."""

    converged: int
    engaged: int
    ci: tuple[float, float] | None

    @property
    def estimate(self) -> float | None:
        return self.converged / self.engaged if self.engaged else None

    @classmethod
    def of(cls, converged: int, engaged: int, alpha: float = ALPHA) -> CountRate:
        return cls(converged, engaged, wilson_interval(converged, engaged, alpha) if engaged else None)

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci": list(self.ci) if self.ci else None, "converged": self.converged,
                "engaged": self.engaged, "method": "Wilson"}


@dataclass(frozen=True)
class CellRates:
    """One group's rates. ``trials`` is every trial in it; ``abstained`` those the judge gave no label (out of the
    judge-only rate); ``reviewed`` the sampled trials with a reviewer's answer (``no_verdict`` of them answered
    "no verdict"); ``missing`` the sampled trials left unlabelled (treated as unreviewed). ``reviewed_only`` and
    ``ppi`` are None without a filled sample, or where the cell has no reviewed (engaged) trial."""

    key: tuple[str, ...]
    trials: int
    abstained: int
    judge_only: CountRate
    reviewed: int = 0
    no_verdict: int = 0
    missing: int = 0
    reviewed_only: CountRate | None = None
    ppi: PPIEstimate | None = None

    def to_dict(self, by: Sequence[str]) -> dict[str, Any]:
        return {**dict(zip(by, self.key)), "trials": self.trials, "abstained": self.abstained,
                "reviewed": self.reviewed, "no_verdict": self.no_verdict, "missing": self.missing,
                "judge_only": self.judge_only.to_dict(),
                "reviewed_only": self.reviewed_only.to_dict() if self.reviewed_only else None,
                "ppi": self.ppi.to_dict() if self.ppi else None}


@dataclass(frozen=True)
class RateDifference:
    """``a - b`` in each column (None where a column has no rate for either cell)."""

    a: tuple[str, ...]
    b: tuple[str, ...]
    judge_only: DifferenceEstimate | None
    reviewed_only: DifferenceEstimate | None
    ppi: DifferenceEstimate | None

    def to_dict(self) -> dict[str, Any]:
        return {"a": list(self.a), "b": list(self.b),
                **{name: getattr(self, name).to_dict() if getattr(self, name) else None
                   for name in ("judge_only", "reviewed_only", "ppi")}}


@dataclass(frozen=True)
class RatesTable:
    """Per-group rates in three columns and the differences between groups. Build with :func:`judged_rates`."""

    by: tuple[str, ...]
    cells: list[CellRates]
    differences: list[RateDifference]
    measured: bool  # a filled sample was used
    notes: list[str] = field(default_factory=list)
    alpha: float = ALPHA

    def cell(self, *key: str) -> CellRates:
        for c in self.cells:
            if c.key == tuple(key):
                return c
        raise KeyError(f"no cell {key}; cells: {[c.key for c in self.cells]}")

    def to_dict(self) -> dict[str, Any]:
        return {"by": list(self.by), "rate_definition": RATE_DEFINITION, "alpha": self.alpha,
                "measured": self.measured, "status": None if self.measured else NOT_MEASURED,
                "cells": [c.to_dict(self.by) for c in self.cells],
                "differences": [d.to_dict() for d in self.differences], "notes": list(self.notes)}

    def to_markdown(self) -> str:
        level = f"{1 - self.alpha:.0%}"
        head = [f.replace("_", " ").capitalize() for f in self.by]
        if not self.measured:
            cols = [*head, "Trials", "Judge-only rate", f"{level} CI (Wilson)", "Abstained"]
            lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            for c in self.cells:
                lines.append("| " + " | ".join([*c.key, str(c.trials), _count_rate(c.judge_only),
                                                  _ci(c.judge_only.ci), str(c.abstained)]) + " |")
            parts = [f"Rates of convergence, {RATE_DEFINITION}: **{NOT_MEASURED}**. Draw a blind sample with "
                     "`python -m experiments.review sample RUN_DIR --n K --seed S` and fill it to measure it.",
                     "\n".join(lines)]
        else:
            cols = [*head, "Trials", "Reviewed (no verdict) / missing", "Judge-only (Wilson)",
                    "Reviewed-only (Wilson)", "PPI (PPI++)", "PPI lam"]
            lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            for c in self.cells:
                ppi = f"{c.ppi.estimate:.0%} {_ci(c.ppi.ci)}" if c.ppi else "—"
                reviewed = (f"{_count_rate(c.reviewed_only)} {_ci(c.reviewed_only.ci)}" if c.reviewed_only else "—")
                lines.append("| " + " | ".join([
                    *c.key, str(c.trials), f"{c.reviewed} ({c.no_verdict}) / {c.missing}",
                    f"{_count_rate(c.judge_only)} {_ci(c.judge_only.ci)}; {c.abstained} abstained", reviewed, ppi,
                    f"{c.ppi.lam:.2f}" if c.ppi else "—"]) + " |")
            parts = [f"Rates of convergence, {RATE_DEFINITION}, with {level} intervals: judge-only (the judge's "
                     "labels, abstentions out), reviewed-only (the blind random sample; \"no verdict\" counts as "
                     "engaged, not converged) and PPI (the judge corrected by its errors on the sample; "
                     "docs/rates.md).", "\n".join(lines)]
        if self.differences:
            if self.measured:
                dcols = ["A", "B", "Judge-only (Fisher p)", "Reviewed-only (Fisher p)", "PPI (p)",
                         "PPI detectable (80% power)"]
            else:
                dcols = ["A", "B", "Judge-only difference (Newcombe CI)", "Fisher p"]
            dlines = ["| " + " | ".join(dcols) + " |", "|" + "---|" * len(dcols)]
            for d in self.differences:
                row = [" / ".join(d.a), " / ".join(d.b)]
                if self.measured:
                    row += [_diff(d.judge_only), _diff(d.reviewed_only), _diff(d.ppi),
                            f"±{d.ppi.detectable:.0%}" if d.ppi else "—"]
                else:
                    j = d.judge_only
                    row += [f"{j.estimate:+.0%} {_ci(j.ci)}" if j else "—", _p(j.p_value) if j else "—"]
                dlines.append("| " + " | ".join(row) + " |")
            parts.append(f"Differences A - B ({level} intervals; p-values uncorrected for multiple comparisons):\n\n"
                         + "\n".join(dlines))
        if self.notes:
            parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts) + "\n"


def _ci(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "—"


def _count_rate(r: CountRate) -> str:
    return f"{r.estimate:.0%} ({r.converged}/{r.engaged})" if r.estimate is not None else "—"


def _p(p: float) -> str:
    return f"{p:.3g}{' *' if p < ALPHA else ''}"


def _diff(d: DifferenceEstimate | None) -> str:
    return f"{d.estimate:+.0%} {_ci(d.ci)} ({_p(d.p_value)})" if d else "—"


def _count_difference(a: CountRate, b: CountRate, alpha: float) -> DifferenceEstimate | None:
    if a.estimate is None or b.estimate is None or a.ci is None or b.ci is None:
        return None
    ci = difference_interval(a.estimate, a.ci, b.estimate, b.ci)
    se = math.sqrt(a.estimate * (1 - a.estimate) / a.engaged + b.estimate * (1 - b.estimate) / b.engaged)
    return DifferenceEstimate(a.estimate - b.estimate, ci, fisher_exact(a.converged, a.engaged, b.converged, b.engaged),
                              se, float("nan"), alpha, "Newcombe hybrid score (Wilson arms); Fisher exact p")


def _judge_values(row: dict[str, Any]) -> tuple[float, float]:
    """The judge's prediction of (converged, engaged) for a row: soft from ``probabilities`` when recorded, else its
    label (an abstention predicts engaged and not converged)."""
    probs = row.get("probabilities")
    if isinstance(probs, dict) and probs:
        return float(probs.get("converged", 0.0)), 1.0 - float(probs.get("refused", 0.0))
    label = row.get("label")
    return float(label == "converged"), float(label != "refused")


def _reviewer_values(outcome: str) -> tuple[float, float]:
    return float(outcome == "converged"), float(outcome != "refused")


def judged_rates(rows: Iterable[dict[str, Any]], sample: FilledSample | None = None,
                 by: Sequence[str] = ("model", "condition"), alpha: float = ALPHA) -> RatesTable:
    """Rates of convergence per group of ``by`` fields in three columns (judge-only, reviewed-only, PPI) and the
    differences between groups that differ in one field (with a single field, every pair).

    ``rows`` are the run's scored trial rows (the judge's ``label`` on every one; a review-queue ``reviewed_label``
    is ignored here: the queue is not a random sample). ``sample`` is a checked, filled blind sample
    (:func:`behaviour.review_sample.read_sample` on the same rows); without one only judge-only is measured.
    """
    rows = list(rows)
    by = tuple(by)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for index, row in enumerate(rows):
        missing = [f for f in by if f not in row]
        if missing:
            raise ConfigError(f"row {index} has no field(s) {missing}; cannot group by {list(by)}")
        groups.setdefault(tuple(str(row[f]) for f in by), []).append(row)
    labels = sample.labels if sample is not None else {}
    sampled_missing = set(sample.missing) if sample is not None else set()
    cells = []
    for key, members in groups.items():
        judged = [r.get("label") for r in members]
        judge_only = CountRate.of(sum(lab == "converged" for lab in judged),
                                  sum(lab in LABELS and lab != "refused" for lab in judged), alpha)
        abstained = sum(lab not in LABELS for lab in judged)
        if sample is None:
            cells.append(CellRates(key, len(members), abstained, judge_only))
            continue
        reviewed = [r for r in members if str(r.get("id")) in labels]
        unreviewed = [r for r in members if str(r.get("id")) not in labels]
        outcomes = [labels[str(r.get("id"))] for r in reviewed]
        reviewed_only = CountRate.of(sum(o == "converged" for o in outcomes), sum(o != "refused" for o in outcomes),
                                     alpha)
        ppi = None
        if reviewed and reviewed_only.engaged:
            y = np.array([_reviewer_values(o) for o in outcomes])
            f = np.array([_judge_values(r) for r in reviewed])
            u = np.array([_judge_values(r) for r in unreviewed]).reshape(-1, 2)
            ppi = ppi_ratio(y[:, 0], y[:, 1], f[:, 0], f[:, 1], u[:, 0], u[:, 1], alpha=alpha)
        cells.append(CellRates(key, len(members), abstained, judge_only, len(reviewed),
                               sum(o == NO_VERDICT for o in outcomes),
                               sum(str(r.get("id")) in sampled_missing for r in members), reviewed_only, ppi))
    differences = []
    for a, b in itertools.combinations(cells, 2):
        if sum(x != y for x, y in zip(a.key, b.key)) != 1 and len(by) > 1:
            continue
        differences.append(RateDifference(
            a.key, b.key, _count_difference(a.judge_only, b.judge_only, alpha),
            _count_difference(a.reviewed_only, b.reviewed_only, alpha) if a.reviewed_only and b.reviewed_only else None,
            ppi_difference(a.ppi, b.ppi) if a.ppi and b.ppi else None))
    notes = [f"rate of convergence = {RATE_DEFINITION}"]
    if sample is not None:
        notes.insert(0, f"blind random sample {sample.path.name}: {sample.n_labelled} of {len(sample.draw.ids)} drawn "
                        f"trial(s) reviewed (seed {sample.draw.seed}, ids sha256 {sample.draw.ids_sha256[:12]})")
        if sample.missing:
            notes.append(f"{len(sample.missing)} sampled trial(s) have no reviewer answer yet (missing; counted as "
                         f"unreviewed, which assumes they are missing at random): {', '.join(sample.missing[:5])}"
                         + (" ..." if len(sample.missing) > 5 else ""))
        notes.extend(f"warning: {w}" for w in sample.warnings)
        unreached = [" / ".join(c.key) for c in cells if c.ppi is None]
        if unreached:
            notes.append(f"no PPI rate where no reviewed engaged trial falls in the cell: {', '.join(unreached)}")
    return RatesTable(by, cells, differences, sample is not None, notes, alpha)
