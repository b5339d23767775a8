"""Measuring a judge against the hand-labelled set (``configs/judge/labelled.jsonl``).

The set was written by people to the label definitions (see its datasheet), and split into ``dev`` and ``test`` when
written, before any tuning: rules are developed and the embedding classifier trained on ``dev`` only, so agreement on
``test`` is the honest estimate of a judge's accuracy on new responses.

For each judge: Cohen's kappa with a 95% interval and accuracy over the rows it labelled, the confusion matrix
(hand label x judge label), its abstention rate over the rows that carry a hand label, and how it handled rows the
writers left unlabelled (cut off before any verdict: a judge should abstain on all of them). For an LLM judge (alone
or in an ensemble) the share of answers that broke the strict format is reported too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.jsonl import read_jsonl
from common import REPO_ROOT
from common.stats import ConfusionMatrix, Kappa, cohen_kappa, confusion_matrix
from behaviour.labels import LABELS, UNPARSEABLE, Judge, Judgement
from behaviour.scoring import judge_row

LABELLED_PATH = REPO_ROOT / "configs" / "judge" / "labelled.jsonl"
SPLITS = ("dev", "test")
FORMATS = ("plain", "think", "harmony", "memo")


def load_labelled(path: str | Path = LABELLED_PATH, split: str | None = None) -> list[dict[str, Any]]:
    """The labelled responses (all, or one ``split``), each checked: unique id, a known label or null, a split."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; the labelled set lives at configs/judge/labelled.jsonl")
    rows = read_jsonl(path)
    problems, seen = [], set()
    for i, row in enumerate(rows, start=1):
        rid = row.get("id")
        if not rid or rid in seen:
            problems.append(f"line {i}: missing or duplicate id {rid!r}")
        seen.add(rid)
        if row.get("label") is not None and row["label"] not in LABELS:
            problems.append(f"line {i} ({rid}): label {row['label']!r} is not one of {list(LABELS)} or null")
        if row.get("split") not in SPLITS:
            problems.append(f"line {i} ({rid}): split {row.get('split')!r} is not one of {list(SPLITS)}")
        if not isinstance(row.get("response"), str):
            problems.append(f"line {i} ({rid}): no response text")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))
    if split is not None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use one of {list(SPLITS)}")
        rows = [r for r in rows if r["split"] == split]
    return rows


def data_hash(rows: Iterable[dict[str, Any]]) -> str:
    """sha256 over the (id, label, response) of ``rows``: what a trained judge learnt from."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row["id"], row.get("label"), row["response"]], ensure_ascii=False).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class JudgeEvaluation:
    """How one judge's labels compare with the hand labels on one set of rows."""

    judge: str
    split: str
    n_rows: int
    n_labelled: int  # rows with a hand label
    n_judged: int  # of those, rows the judge labelled (did not abstain on)
    kappa: Kappa
    confusion: ConfusionMatrix
    n_unlabelled: int  # rows the writers left unlabelled (cut off before any verdict)
    n_unlabelled_abstained: int
    n_unparseable: int = 0  # LLM answers that broke the strict format
    abstain_reasons: dict[str, int] = field(default_factory=dict)
    misses: tuple[tuple[str, str, str | None], ...] = ()  # (id, hand label, judge label) on disagreements

    @property
    def accuracy(self) -> float:
        return self.kappa.observed if self.n_judged else float("nan")

    @property
    def abstention_rate(self) -> float:
        return 1 - self.n_judged / self.n_labelled if self.n_labelled else float("nan")

    @property
    def coverage_accuracy(self) -> float:
        """Correct labels over every hand-labelled row (an abstention counts as not correct)."""
        correct = sum(self.confusion.counts[i][i] for i in range(len(LABELS)))
        return correct / self.n_labelled if self.n_labelled else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "split": self.split, "n_rows": self.n_rows, "n_labelled": self.n_labelled,
                "n_judged": self.n_judged, "kappa": self.kappa.to_dict(), "accuracy": self.accuracy,
                "abstention_rate": self.abstention_rate, "accuracy_counting_abstentions_wrong":
                    self.coverage_accuracy, "confusion": self.confusion.to_dict(),
                "unlabelled_rows": self.n_unlabelled, "unlabelled_abstained": self.n_unlabelled_abstained,
                "unparseable": self.n_unparseable, "abstain_reasons": self.abstain_reasons,
                "misses": [list(m) for m in self.misses]}

    def summary(self) -> str:
        k = self.kappa
        line = (f"{self.judge} on {self.split} ({self.n_labelled} labelled rows): kappa {k.kappa:.2f} "
                f"[{k.ci[0]:.2f}, {k.ci[1]:.2f}], accuracy {self.accuracy:.2f} on the {self.n_judged} it labelled, "
                f"abstained on {self.n_labelled - self.n_judged} ({self.abstention_rate:.0%}); "
                f"cut-off rows abstained {self.n_unlabelled_abstained}/{self.n_unlabelled}")
        if self.n_unparseable:
            line += f"; unparseable LLM answers {self.n_unparseable}/{self.n_rows}"
        return line


def evaluate(judge: Judge, rows: Sequence[dict[str, Any]], split: str = "?") -> JudgeEvaluation:
    """Judge every row (as :func:`behaviour.scoring.judge_row` would in a run) and compare with the hand labels."""
    judgements = [judge_row(row, judge) for row in rows]
    return compare(judge.name, rows, judgements, split)


def compare(name: str, rows: Sequence[dict[str, Any]], judgements: Sequence[Judgement],
            split: str = "?") -> JudgeEvaluation:
    hand, got, misses = [], [], []
    reasons: dict[str, int] = {}
    n_labelled = n_unlabelled = n_unlabelled_abstained = n_unparseable = 0
    for row, j in zip(rows, judgements):
        n_unparseable += _unparseable(j)
        if j.label is None:
            reason = (j.needs_review or "?").split(":", 1)[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        if row.get("label") is None:
            n_unlabelled += 1
            n_unlabelled_abstained += j.label is None
            continue
        n_labelled += 1
        if j.label is not None:
            hand.append(row["label"])
            got.append(j.label)
        if j.label != row["label"]:
            misses.append((str(row["id"]), row["label"], j.label))
    return JudgeEvaluation(name, split, len(rows), n_labelled, len(got), cohen_kappa(hand, got, LABELS),
                           confusion_matrix(hand, got, LABELS), n_unlabelled, n_unlabelled_abstained, n_unparseable,
                           reasons, tuple(misses))


def _unparseable(j: Judgement) -> int:
    """1 when an LLM judge (alone, or a member of an ensemble) broke the strict answer format."""
    return int(bool(j.needs_review and UNPARSEABLE in j.needs_review) or
               (j.parse_error is not None and j.parse_error.startswith(("no 'LABEL", "conflicting LABEL",
                                                                        "judge gave label"))))


def evaluations_markdown(evaluations: Sequence[JudgeEvaluation], *, show_misses: bool = False) -> str:
    """Judges side by side (kappa with interval, accuracy, abstentions), then each confusion matrix."""
    lines = ["| judge | split | rows labelled by hand | kappa [95% CI] | accuracy (on labelled) | abstained | "
             "accuracy (abstentions wrong) | cut-off rows abstained | LLM unparseable |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in evaluations:
        k = e.kappa
        lines.append(f"| `{e.judge}` | {e.split} | {e.n_labelled} | {k.kappa:.2f} [{k.ci[0]:.2f}, {k.ci[1]:.2f}] | "
                     f"{e.accuracy:.2f} ({e.n_judged}) | {e.n_labelled - e.n_judged} ({e.abstention_rate:.0%}) | "
                     f"{e.coverage_accuracy:.2f} | {e.n_unlabelled_abstained}/{e.n_unlabelled} | "
                     f"{e.n_unparseable}/{e.n_rows} |")
    parts = ["\n".join(lines)]
    for e in evaluations:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(e.abstain_reasons.items(), key=lambda kv: -kv[1]))
        parts.append(f"`{e.judge}` (rows: hand label, columns: judge label; abstentions not counted; abstention "
                     f"reasons: {reasons or 'none'}):\n\n" + e.confusion.to_markdown("hand", "judge"))
        if show_misses and e.misses:
            parts.append("misses: " + ", ".join(f"{rid} ({hand} -> {got or 'abstained'})"
                                                for rid, hand, got in e.misses))
    return "\n\n".join(parts) + "\n"
