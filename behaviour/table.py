"""The seed-format convergence table, with Wilson intervals, Fisher exact comparisons and detectable differences.

Columns follow the seed post: model, trials, converged, ambiguous, did not converge, refused, rate of convergence;
each rate gets its n and a Wilson 95% interval. The **rate of convergence is converged / (trials - refused)**: the
seed reports "—" for a model that refused every trial, i.e. refusals are not counted as non-convergence. Rows the
judge abstained on (label null: no recommendation found, cut off, judges disagree, no final answer ...) are counted in
the *Abstained* column next to the rates, excluded from them, and their ``needs_review`` reasons are listed.
A ``reviewed_label`` (manual review) takes precedence over the judge's ``label``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.errors import ConfigError
from behaviour.judges.labels import LABELS
from common.stats import fisher_exact, min_detectable_difference, wilson_interval

ALPHA = 0.05


def effective_label(row: dict[str, Any]) -> str | None:
    """The label the statistics use: a non-empty ``reviewed_label`` over the judge's ``label``."""
    reviewed = row.get("reviewed_label")
    if isinstance(reviewed, str) and reviewed.strip():
        return reviewed.strip()
    label = row.get("label")
    return label if isinstance(label, str) and label else None


@dataclass(frozen=True)
class Cell:
    """Counts for one group (e.g. one model x condition)."""

    key: tuple[str, ...]
    counts: dict[str, int]
    unscored: int = 0
    reviewed: int = 0

    @property
    def trials(self) -> int:
        return sum(self.counts.get(label, 0) for label in LABELS)

    @property
    def converged(self) -> int:
        return self.counts.get("converged", 0)

    @property
    def engaged(self) -> int:
        """Trials that were not refusals: the denominator of the rate of convergence."""
        return self.trials - self.counts.get("refused", 0)

    @property
    def rate(self) -> float | None:
        return self.converged / self.engaged if self.engaged else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson_interval(self.converged, self.engaged) if self.engaged else None

    def to_dict(self, by: Sequence[str]) -> dict[str, Any]:
        return {**dict(zip(by, self.key)), "trials": self.trials, **{lab: self.counts.get(lab, 0) for lab in LABELS},
                "engaged": self.engaged, "rate": self.rate, "ci95": list(self.ci) if self.ci else None,
                "unscored": self.unscored, "abstained": self.unscored, "reviewed": self.reviewed}


@dataclass(frozen=True)
class Comparison:
    """A two-sided Fisher exact test of the convergence rates of two cells."""

    a: tuple[str, ...]
    b: tuple[str, ...]
    k_a: int
    n_a: int
    k_b: int
    n_b: int
    p: float

    def to_dict(self) -> dict[str, Any]:
        return {"a": list(self.a), "b": list(self.b), "a_count": f"{self.k_a}/{self.n_a}",
                "b_count": f"{self.k_b}/{self.n_b}", "fisher_p": self.p, "significant": self.p < ALPHA}


@dataclass(frozen=True)
class ConvergenceTable:
    """Cells grouped by ``by`` plus the comparisons between them. Build with :func:`convergence_table`."""

    by: tuple[str, ...]
    cells: list[Cell]
    notes: list[str] = field(default_factory=list)

    def cell(self, *key: str) -> Cell:
        for c in self.cells:
            if c.key == tuple(key):
                return c
        raise KeyError(f"no cell {key}; cells: {[c.key for c in self.cells]}")

    def comparisons(self) -> list[Comparison]:
        """Fisher tests between cells that differ in exactly one grouping field (e.g. two conditions of one model,
        or two models in one condition); with a single grouping field, between every pair. Uncorrected p-values."""
        out = []
        for a, b in itertools.combinations(self.cells, 2):
            differing = sum(x != y for x, y in zip(a.key, b.key))
            if differing == 1 and a.engaged and b.engaged:
                out.append(Comparison(a.key, b.key, a.converged, a.engaged, b.converged, b.engaged,
                                      fisher_exact(a.converged, a.engaged, b.converged, b.engaged)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": list(self.by),
            "rate_definition": "converged / (trials - refused); Wilson 95% interval",
            "cells": [c.to_dict(self.by) for c in self.cells],
            "comparisons": [c.to_dict() for c in self.comparisons()],
            "detectable": [
                {**dict(zip(self.by, c.key)), **min_detectable_difference(c.converged, c.engaged, ALPHA).to_dict()}
                for c in self.cells if c.engaged
            ],
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        head = [f.replace("_", " ").capitalize() for f in self.by]
        # Abstentions sit next to the rates, always: a rate over few labelled trials must show what it left out.
        cols = [*head, "Trials", "Converged", "Ambiguous", "Did not converge", "Refused", "Rate of convergence",
                "95% CI (Wilson)", "Abstained"]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for c in self.cells:
            rate = f"{c.rate:.0%} ({c.converged}/{c.engaged})" if c.rate is not None else "—"
            ci = f"[{c.ci[0]:.2f}, {c.ci[1]:.2f}]" if c.ci else "—"
            row = [*c.key, str(c.trials), *(str(c.counts.get(lab, 0)) for lab in LABELS), rate, ci, str(c.unscored)]
            lines.append("| " + " | ".join(row) + " |")
        parts = ["\n".join(lines)]
        comps = self.comparisons()
        if comps:
            parts.append("Fisher exact tests (two-sided, uncorrected for multiple comparisons):\n\n"
                         "| A | B | A | B | p |\n|---|---|---|---|---|\n" + "\n".join(
                             f"| {' / '.join(x.a)} | {' / '.join(x.b)} | {x.k_a}/{x.n_a} | {x.k_b}/{x.n_b} | "
                             f"{x.p:.3g}{' *' if x.p < ALPHA else ''} |" for x in comps))
        detect = [f"- {' / '.join(c.key)}: {min_detectable_difference(c.converged, c.engaged, ALPHA).describe()}"
                  for c in self.cells if c.engaged]
        if detect:
            parts.append("Smallest difference detectable at this n (Fisher, two-sided, alpha 0.05, same n):\n\n"
                         + "\n".join(detect))
        if self.notes:
            parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts) + "\n"


def table_from_counts(by: Sequence[str], counts: dict[tuple[str, ...], dict[str, int]],
                      notes: Sequence[str] = ()) -> ConvergenceTable:
    """A table from published counts: ``{(model, condition): {"converged": 10, ...}}``."""
    cells = []
    for key, cell_counts in counts.items():
        unknown = set(cell_counts) - set(LABELS)
        if unknown:
            raise ConfigError(f"unknown label(s) {sorted(unknown)} for {key}; labels are {list(LABELS)}")
        cells.append(Cell(tuple(key), {lab: int(cell_counts.get(lab, 0)) for lab in LABELS}))
    return ConvergenceTable(tuple(by), cells, list(notes))


def convergence_table(rows: Iterable[dict[str, Any]], by: Sequence[str] = ("model", "condition")) -> ConvergenceTable:
    """Count scored trial records per group of ``by`` fields (in first-seen order).

    Uses ``reviewed_label`` over ``label``; rows without a usable label are counted as unscored and excluded.
    """
    by = tuple(by)
    counts: dict[tuple[str, ...], dict[str, int]] = {}
    unscored: dict[tuple[str, ...], int] = {}
    reviewed: dict[tuple[str, ...], int] = {}
    invalid: list[str] = []
    reasons: dict[str, int] = {}
    for index, row in enumerate(rows):
        missing = [f for f in by if f not in row]
        if missing:
            raise ConfigError(f"row {index} has no field(s) {missing}; cannot group by {list(by)}")
        key = tuple(str(row[f]) for f in by)
        bucket = counts.setdefault(key, {lab: 0 for lab in LABELS})
        label = effective_label(row)
        if label is None:
            unscored[key] = unscored.get(key, 0) + 1
            reason = abstention_reason(row)
            reasons[reason] = reasons.get(reason, 0) + 1
        elif label not in LABELS:
            invalid.append(label)
            unscored[key] = unscored.get(key, 0) + 1
        else:
            bucket[label] += 1
        if isinstance(row.get("reviewed_label"), str) and row["reviewed_label"].strip():
            reviewed[key] = reviewed.get(key, 0) + 1
    cells = [Cell(k, v, unscored.get(k, 0), reviewed.get(k, 0)) for k, v in counts.items()]
    notes = []
    n_unscored = sum(unscored.values())
    if n_unscored:
        why = "; ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        notes.append(f"{n_unscored} trial(s) the judge abstained on are excluded from the counts (Abstained column) "
                     f"and go first in the review export; reasons: {why}")
    if invalid:
        notes.append(f"labels not in {list(LABELS)} were treated as unscored: {sorted(set(invalid))}")
    n_reviewed = sum(reviewed.values())
    if n_reviewed:
        notes.append(f"{n_reviewed} trial(s) use the manually reviewed label instead of the judge's")
    notes.append("rate of convergence = converged / (trials - refused)")
    return ConvergenceTable(by, cells, notes)


def abstention_reason(row: dict[str, Any]) -> str:
    """The short reason a row has no label: its ``needs_review`` up to any detail, else its ``parse_error``."""
    reason = row.get("needs_review") or row.get("parse_error") or "no label"
    return str(reason).split(":", 1)[0]


def plot_convergence(table: ConvergenceTable) -> Any:
    """Bar chart of the rate of convergence per cell, with Wilson 95% error bars; returns a matplotlib Figure.

    With two grouping fields, bars are grouped by the first field and coloured by the second.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(c.key[0] for c in table.cells))
    series = list(dict.fromkeys(c.key[1:] for c in table.cells))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(groups) * max(1, len(series)) ** 0.5 + 2), 4))
    for s_index, s_key in enumerate(series):
        xs, ys, lo, hi, labels = [], [], [], [], []
        for g_index, g in enumerate(groups):
            try:
                cell = table.cell(g, *s_key)
            except KeyError:
                continue
            if cell.rate is None or cell.ci is None:
                ax.annotate("no engaged\ntrials" if cell.trials else "no trials",
                            (g_index - 0.4 + width * (s_index + 0.5), 0.02), ha="center", fontsize=7)
                continue
            xs.append(g_index - 0.4 + width * (s_index + 0.5))
            ys.append(cell.rate)
            lo.append(max(0.0, cell.rate - cell.ci[0]))  # matplotlib rejects a negative error bar, however small
            hi.append(max(0.0, cell.ci[1] - cell.rate))
            labels.append(f"{cell.converged}/{cell.engaged}")
        bars = ax.bar(xs, ys, width=width * 0.95, yerr=[lo, hi], capsize=3,
                      label=" / ".join(s_key) if s_key else None)
        for bar, text in zip(bars, labels):
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, 0.02), ha="center", va="bottom", fontsize=7,
                        rotation=90, color="white")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate of convergence (converged / engaged)")
    ax.set_title("Convergence with Wilson 95% intervals")
    if any(series):
        ax.legend(title=" / ".join(table.by[1:]), fontsize=8)
    fig.tight_layout()
    return fig


# The seed post's published counts ("Preliminary evidence for value convergence in AI models"), 20 trials per cell.
SEED_COUNTS: dict[tuple[str, str], dict[str, int]] = {
    ("Llama 3.1 8B", "plain"): {"converged": 10, "ambiguous": 8, "did_not_converge": 2, "refused": 0},
    ("Llama 3.3 70B", "plain"): {"converged": 11, "ambiguous": 8, "did_not_converge": 1, "refused": 0},
    ("Llama 4 Scout 17B", "plain"): {"converged": 14, "ambiguous": 4, "did_not_converge": 2, "refused": 0},
    ("Qwen 3 32B", "plain"): {"converged": 16, "ambiguous": 2, "did_not_converge": 2, "refused": 0},
    ("GPT-OSS 120B", "plain"): {"converged": 0, "ambiguous": 0, "did_not_converge": 0, "refused": 20},
    ("Llama 3.1 8B", "threat"): {"converged": 10, "ambiguous": 5, "did_not_converge": 5, "refused": 0},
    ("Llama 3.3 70B", "threat"): {"converged": 12, "ambiguous": 4, "did_not_converge": 4, "refused": 0},
    ("Llama 4 Scout 17B", "threat"): {"converged": 16, "ambiguous": 3, "did_not_converge": 1, "refused": 0},
    ("Qwen 3 32B", "threat"): {"converged": 15, "ambiguous": 2, "did_not_converge": 3, "refused": 0},
    ("GPT-OSS 120B", "threat"): {"converged": 0, "ambiguous": 0, "did_not_converge": 0, "refused": 20},
}


def seed_table() -> ConvergenceTable:
    """The seed post's published table (plain and existential-threat conditions) as a :class:`ConvergenceTable`."""
    return table_from_counts(("model", "condition"), SEED_COUNTS, notes=[
        "counts transcribed from the seed post; its Qwen 3 32B labels were manually reviewed by the author",
        "rate of convergence = converged / (trials - refused)",
    ])
