"""Manual review: export scored trials for a person to label, import their labels, and measure judge agreement.

The round trip is keyed by each trial's ``id``. Review files are CSV (opens in a spreadsheet) or JSONL, chosen by
the file suffix; a reviewer fills the blank ``reviewed_label`` column (and optionally ``reviewer_note``). Rows left
blank are simply not reviewed. Reviewed labels then take precedence over the judge's in every statistic
(:func:`behaviour.table.effective_label`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import ConfigError, ToolkitError
from common.jsonl import BadLine, JSONLError, dumps_jsonl, iter_jsonl_numbered
from behaviour.judges.labels import LABELS
from common.stats import ConfusionMatrix, Kappa, cohen_kappa, confusion_matrix
from common.fileio import atomic_write_text

log = logging.getLogger(__name__)

REVIEW_COLUMNS = ("id", "model", "condition", "label", "needs_review", "judges", "reviewed_label", "reviewer_note",
                  "final_verdict", "response")


class ReviewError(ToolkitError, ValueError):
    """A review file with unknown labels, missing ids or conflicting entries (every bad line is listed)."""


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    raise ConfigError(f"{path}: use a .csv or .jsonl file for reviews")


def normalise_label(text: str) -> str | None:
    """``"Did Not Converge"``, ``"did-not-converge"`` -> ``"did_not_converge"``; None if not a label."""
    key = "_".join(text.strip().lower().replace("-", " ").split())
    return key if key in LABELS else None


def unique_ids(rows: Sequence[dict[str, Any]], *, need: str, duplicate: str, label: str = "id") -> list[str]:
    """Each row's ``id`` as a string; :class:`ConfigError` for a row without one (``need`` says why it must have one)
    or a repeated one (``duplicate`` says what that means here)."""
    ids: list[str] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        rid = row.get("id")
        if rid is None or str(rid) == "":
            raise ConfigError(f"row {index} has no 'id'; {need}")
        if str(rid) in seen:
            raise ConfigError(f"duplicate {label} {rid!r} (row {index}); {duplicate}")
        seen.add(str(rid))
        ids.append(str(rid))
    return ids


def export_for_review(rows: Iterable[dict[str, Any]], path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write scored trials to ``path`` (CSV or JSONL) with a blank ``reviewed_label`` column; returns the path.

    Refuses to replace an existing file (it may hold a reviewer's work) unless ``overwrite``. Each row needs a
    unique ``id``. Rows the judge abstained on (label null) come first, with their ``needs_review`` reason and, for
    an ensemble, every member's label (``judges``): they are the ones a reviewer must label; the rest keep their order.
    """
    path = Path(path)
    fmt = _format(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists and may hold reviews; choose another name or delete it first")
    rows = list(rows)
    records = []
    for row, rid in zip(rows, unique_ids(rows, need="review needs a unique id per trial to match labels back",
                                         duplicate="ids must be unique for review")):
        records.append({
            "id": rid, "model": row.get("model", ""), "condition": row.get("condition", ""),
            "label": row.get("label") or "", "needs_review": row.get("needs_review") or "",
            "judges": "; ".join(f"{k}={v or 'abstained'}" for k, v in (row.get("members") or {}).items()),
            "reviewed_label": row.get("reviewed_label") or "",
            "reviewer_note": row.get("reviewer_note") or "", "final_verdict": row.get("final_verdict", ""),
            "response": row.get("response", ""),
        })
    records.sort(key=lambda r: bool(r["label"]) or bool(r["reviewed_label"]))  # stable: abstentions first
    if fmt == "jsonl":
        atomic_write_text(path, dumps_jsonl(records))
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=REVIEW_COLUMNS, delimiter="\t" if fmt == "tsv" else ",")
        writer.writeheader()
        writer.writerows(records)
        atomic_write_text(path, buffer.getvalue())
    return path


def _read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) pairs; CSV line numbers are where each record starts."""
    fmt = _format(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; export a review file first (experiments.review export)")
    if fmt == "jsonl":
        bad: list[BadLine] = []
        numbered = list(iter_jsonl_numbered(path, on_error=bad.append))
        if bad:
            raise ReviewError(str(JSONLError(path, bad, [r for _, r in numbered])))
        return numbered
    return read_review_csv(path, delimiter="\t" if fmt == "tsv" else ",")


def read_review_csv(path: Path, *, delimiter: str = ",", error: type[Exception] = ReviewError
                    ) -> list[tuple[int, dict[str, Any]]]:
    """A review spreadsheet's records with the line each starts on (a quoted cell may span lines); the header must
    name ``id`` and ``reviewed_label``, else ``error``. Shared by the review queue and the blind sample."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames or "id" not in reader.fieldnames or "reviewed_label" not in reader.fieldnames:
            raise error(f"{path}: the header must include 'id' and 'reviewed_label' (got {reader.fieldnames})")
        out, start = [], 2
        for record in reader:
            out.append((start, record))
            start = reader.line_num + 1
        return out


def import_reviews(path: str | os.PathLike) -> dict[str, str]:
    """Read reviewed labels: ``{id: label}`` for every row with a non-empty ``reviewed_label``.

    Labels are normalised ("Did Not Converge" -> ``did_not_converge``). Unknown labels, missing ids and one id given
    two different labels raise :class:`ReviewError` listing every offending line; nothing is half-imported.
    """
    path = Path(path)
    reviews: dict[str, str] = {}
    where: dict[str, int] = {}
    problems: list[str] = []
    for line, record in _read_records(path):
        raw = record.get("reviewed_label")
        if raw is None or not str(raw).strip():
            continue
        rid = record.get("id")
        if rid is None or not str(rid).strip():
            problems.append(f"line {line}: a reviewed_label without an id")
            continue
        rid = str(rid).strip()
        label = normalise_label(str(raw))
        if label is None:
            problems.append(f"line {line} (id {rid}): {raw!r} is not a label; use one of {', '.join(LABELS)}")
            continue
        if rid in reviews and reviews[rid] != label:
            problems.append(f"line {line} (id {rid}): {label} conflicts with {reviews[rid]} on line {where[rid]}")
            continue
        reviews[rid], where[rid] = label, line
    if problems:
        raise ReviewError(f"{path}: {len(problems)} bad review line(s); fix them and import again:\n  "
                          + "\n  ".join(problems))
    return reviews


def apply_reviews(rows: Iterable[dict[str, Any]], reviews: dict[str, str]) -> list[dict[str, Any]]:
    """Copies of ``rows`` with ``reviewed_label`` set from ``reviews`` (by ``id``); other rows are unchanged.

    Review ids that match no row are logged as a warning (a review file for a different run is the usual cause).
    """
    out, used = [], set()
    for row in rows:
        rid = str(row.get("id")) if row.get("id") is not None else None
        if rid is not None and rid in reviews:
            out.append({**row, "reviewed_label": reviews[rid]})
            used.add(rid)
        else:
            out.append(dict(row))
    unmatched = sorted(set(reviews) - used)
    if unmatched:
        log.warning("%d reviewed id(s) match no trial (e.g. %s); is the review file from another run?",
                    len(unmatched), ", ".join(unmatched[:5]))
    return out


@dataclass(frozen=True)
class Agreement:
    """Judge vs reviewer on the reviewed trials: Cohen's kappa, the confusion matrix (rows = judge), and n.

    ``unscored`` counts reviewed trials the judge gave no label (unparseable): they are outside the kappa.
    """

    kappa: Kappa
    confusion: ConfusionMatrix
    n: int
    labels: tuple[str, ...]
    unscored: int = 0

    @property
    def observed(self) -> float:
        return self.kappa.observed

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "unscored": self.unscored, "kappa": self.kappa.to_dict(),
                "confusion": self.confusion.to_dict()}

    def to_markdown(self) -> str:
        k = self.kappa
        head = (f"Judge vs reviewed labels: n = {self.n}, raw agreement {k.observed:.0%}, Cohen's kappa "
                f"{k.kappa:.2f} (approx. 95% CI [{k.ci[0]:.2f}, {k.ci[1]:.2f}]; chance agreement {k.expected:.0%})"
                if self.n else "Judge vs reviewed labels: no reviewed trials with a judge label")
        if self.unscored:
            head += f"; {self.unscored} reviewed trial(s) the judge could not label are excluded"
        return head + "\n\n" + self.confusion.to_markdown("judge", "reviewed") + "\n"


def agreement(rows: Iterable[dict[str, Any]], labels: Sequence[str] = LABELS) -> Agreement:
    """Agreement between ``label`` (judge) and ``reviewed_label`` over the rows that have a reviewed label."""
    judge, human, unscored = [], [], 0
    for row in rows:
        reviewed = row.get("reviewed_label")
        if not isinstance(reviewed, str) or not reviewed.strip():
            continue
        if not row.get("label"):
            unscored += 1
            continue
        judge.append(row["label"])
        human.append(normalise_label(reviewed) or reviewed)
    return Agreement(cohen_kappa(judge, human, labels), confusion_matrix(judge, human, labels), len(judge),
                     tuple(labels), unscored)
