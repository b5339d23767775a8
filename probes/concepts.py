"""Concept datasets for linear probes: loading, validation and a stable content hash.

The data live in ``configs/concepts/<concept>.jsonl`` (built by ``configs/concepts/build.py``; see the DATASHEET
there). Each row is one text with a binary label; rows come in minimal contrastive pairs (``pair_id``) and carry a
``group`` (entity kind / domain cluster) so that evaluation can hold out whole groups.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError
from common.jsonl import BadLine, iter_jsonl_numbered

__all__ = [
    "CONCEPTS",
    "DATA_DIR",
    "ConceptDataError",
    "ConceptDataset",
    "canonical_concept",
    "load_concept",
    "load_concepts",
    "read_labelled_jsonl",
]

CONCEPTS: tuple[str, ...] = ("interest_recognition", "perspective_taking")
DATA_DIR = Path(__file__).resolve().parents[1] / "configs" / "concepts"
REQUIRED_FIELDS: tuple[str, ...] = ("id", "concept", "text", "label", "pair_id", "group")
EVAL_FIELDS: tuple[str, ...] = ("concept", "text", "label")
_REBUILD_HINT = "regenerate it with `python configs/concepts/build.py`"


class ConceptDataError(ConfigError):
    """A concept data file is missing, malformed or unusable for probing."""


@dataclass(frozen=True, eq=False)
class ConceptDataset:
    """Texts and binary labels for one concept, aligned by index."""

    concept: str
    texts: list[str]
    labels: np.ndarray  # int64, values in {0, 1}
    groups: list[str]
    pair_ids: list[str]
    ids: list[str]
    sources: list[str] | None = None  # "template" or "handwritten" per row, when the file says

    def __post_init__(self) -> None:
        n = len(self.texts)
        if any(len(x) != n for x in (self.labels, self.groups, self.pair_ids, self.ids, self.sources or self.ids)):
            raise ConceptDataError(f"{self.concept}: texts, labels, groups, pair_ids and ids differ in length")
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Sequence[int] | np.ndarray) -> ConceptDataset:
        """Rows at positions ``idx`` (integer indices or a boolean mask), in that order."""
        index = np.asarray(idx)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        pick = [int(i) for i in index]
        return ConceptDataset(self.concept, [self.texts[i] for i in pick], self.labels[pick].copy(),
                              [self.groups[i] for i in pick], [self.pair_ids[i] for i in pick],
                              [self.ids[i] for i in pick],
                              None if self.sources is None else [self.sources[i] for i in pick])

    def to_dataset(self) -> Any:
        """The rows as a Hugging Face :class:`datasets.Dataset` (``id``, ``concept``, ``text``, ``label``,
        ``pair_id``, ``group`` and, when known, ``source``), e.g. to share or to train other tools on the same data.

        ``info.description`` records :attr:`data_hash`, the digest saved directions carry.
        """
        import datasets  # heavy (pyarrow); only needed here

        columns: dict[str, Any] = {"id": self.ids, "concept": [self.concept] * len(self), "text": self.texts,
                                   "label": self.labels.tolist(), "pair_id": self.pair_ids, "group": self.groups}
        if self.sources is not None:
            columns["source"] = self.sources
        features = {name: datasets.Value("int64" if name == "label" else "string") for name in columns}
        info = datasets.DatasetInfo(description=f"data_hash {self.data_hash}", features=datasets.Features(features))
        return datasets.Dataset.from_dict(columns, info=info)

    @property
    def data_hash(self) -> str:
        """sha256 over the (id, text, label, group) rows in order; tags probe directions with the data they saw."""
        h = hashlib.sha256(self.concept.encode())
        for row in zip(self.ids, self.texts, self.labels.tolist(), self.groups):
            h.update(json.dumps(row, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()


def load_concept(concept: str, path: Path | None = None) -> ConceptDataset:
    """Load and validate one concept dataset (default: ``configs/concepts/<concept>.jsonl``).

    ``concept`` may be spelled with hyphens or underscores (:func:`canonical_concept`).
    """
    concept = canonical_concept(concept)
    _check_concept(concept)
    path = Path(path) if path is not None else DATA_DIR / f"{concept}.jsonl"
    rows = _read_jsonl(path, REQUIRED_FIELDS)
    ids: set[str] = set()
    for lineno, row in rows:
        if canonical_concept(row["concept"]) != concept:
            raise ConceptDataError(f"{path}:{lineno}: row has concept {row['concept']!r}, expected {concept!r}")
        if row["id"] in ids:
            raise ConceptDataError(f"{path}:{lineno}: duplicate id {row['id']!r}; ids must be unique")
        ids.add(row["id"])
        for field in ("id", "pair_id", "group"):
            if not isinstance(row[field], str) or not row[field]:
                raise ConceptDataError(f"{path}:{lineno}: field {field!r} must be a non-empty string")
    _check_both_classes(rows, f"{path} ({concept})")
    data = [r for _, r in rows]
    return ConceptDataset(concept=concept, texts=[r["text"] for r in data],
                          labels=np.array([r["label"] for r in data], dtype=np.int64),
                          groups=[r["group"] for r in data], pair_ids=[r["pair_id"] for r in data],
                          ids=[r["id"] for r in data],
                          sources=[r["source"] for r in data] if all("source" in r for r in data) else None)


def load_concepts(names: Iterable[str] | None = None) -> dict[str, ConceptDataset]:
    """Load several concepts (default: all of ``CONCEPTS``), keyed by name."""
    if isinstance(names, str):
        names = [names]
    return {canonical_concept(name): load_concept(name) for name in (CONCEPTS if names is None else names)}


def read_labelled_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Read an outside evaluation file: JSONL rows with at least ``concept``, ``text`` and ``label``.

    Every concept must be one of ``CONCEPTS`` (hyphens or underscores; rows come back with the canonical name) and
    have both labels present; errors name the file and line.
    """
    path = Path(path)
    rows = _read_jsonl(path, EVAL_FIELDS)
    by_concept: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for lineno, row in rows:
        if isinstance(row["concept"], str):
            row["concept"] = canonical_concept(row["concept"])
        if row["concept"] not in CONCEPTS:
            raise ConceptDataError(f"{path}:{lineno}: unknown concept {row['concept']!r}; "
                                   f"valid concepts: {', '.join(CONCEPTS)}")
        by_concept.setdefault(row["concept"], []).append((lineno, row))
    for concept, concept_rows in by_concept.items():
        _check_both_classes(concept_rows, f"{path} (concept {concept!r})")
    return [row for _, row in rows]


# --- helpers ------------------------------------------------------------------------------------------------------
def canonical_concept(name: str) -> str:
    """A concept name as the toolkit spells it: ``interest-recognition`` and ``Interest_Recognition`` both give
    ``interest_recognition``. Unknown names pass through (callers report them with the valid ones)."""
    return name.strip().lower().replace("-", "_") if isinstance(name, str) else name


def _check_concept(concept: str) -> None:
    if concept not in CONCEPTS:
        raise ConceptDataError(f"unknown concept {concept!r}; valid concepts: {', '.join(CONCEPTS)}")


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    """Parse a JSONL file into (line number, row) pairs, checking required fields, text and label."""
    if not path.is_file():
        hint = _REBUILD_HINT if path.parent == DATA_DIR else "check the path"
        raise ConceptDataError(f"concept data file not found: {path}; {hint}")
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, row in iter_jsonl_numbered(path, on_error=_raise_bad_line):
        missing = [k for k in required if k not in row]
        if missing:
            raise ConceptDataError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}; "
                                   f"each row needs {', '.join(required)}")
        if not isinstance(row["text"], str) or not row["text"].strip():
            raise ConceptDataError(f"{path}:{lineno}: 'text' must be a non-empty string")
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, int) or label not in (0, 1):
            raise ConceptDataError(f"{path}:{lineno}: label must be the integer 0 or 1, got {label!r}")
        rows.append((lineno, row))
    if not rows:
        raise ConceptDataError(f"{path}: no rows; the file is empty")
    return rows


def _raise_bad_line(bad: BadLine) -> None:
    """Concept data must be clean: the first malformed line is an error naming the file and line."""
    reason = bad.reason
    if reason.startswith("invalid JSON: "):
        reason = f"malformed JSON ({reason.removeprefix('invalid JSON: ')}); fix or remove the line"
    raise ConceptDataError(f"{bad.path}:{bad.line_number}: {reason}")


def _check_both_classes(rows: list[tuple[int, dict[str, Any]]], where: str) -> None:
    labels = {r["label"] for _, r in rows}
    if labels != {0, 1}:
        only = labels.pop()
        lines = ", ".join(str(n) for n, _ in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise ConceptDataError(f"{where}: only label {only} present (lines {lines}); a probe needs both "
                               f"positive (1) and negative (0) examples")
