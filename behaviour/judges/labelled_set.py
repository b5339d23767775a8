"""The hand-labelled judge set (``configs/judge/labelled.jsonl``): loading and checking its rows, its splits, and the
hash a trained judge records of what it learnt from.

The set was written by hand to the label definitions (see its datasheet) in two rounds. Round 1 (ids ``L...``) was
split into ``dev`` and ``test`` before any tuning; the rules were developed on ``dev`` and measured once on ``test``.
Round 2 added training rows by three more authors (``train``, ids ``C...``, ``D...``, ``E...``) and a held-out set
by two others (``holdout``, ids ``A...``/``B...``), written without sight of the judges; judges learn from
:data:`TRAINING_SPLITS` only. The default judge was changed after ``holdout`` was measured, so round 3 (``holdout2``,
ids ``F...``/``G...``, two further authors) was written after that choice to measure it untouched.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from common import REPO_ROOT
from common.errors import ConfigError
from common.jsonl import read_jsonl
from behaviour.judges.labels import LABELS

LABELLED_PATH = REPO_ROOT / "configs" / "judge" / "labelled.jsonl"
#: Real model outputs from trials runs, labelled by hand blind to the judges (``real``: measured, never trained on).
REAL_OUTPUTS_PATH = REPO_ROOT / "configs" / "judge" / "real_outputs.jsonl"
#: The authors whose sets were written after the first rounds and train the judges, one file each
#: (``labelled_<letter>.jsonl``; DATASHEET.md): K (round 6, ``holdout3`` until spent, training since judge round 7:
#: minutes, press releases, structured decisions), M (round 7, ``holdout4``, since round 8: resolutions, decision
#: trees, logs), N (round 8, written as training rows: commit messages, ballots, configs, verse ...), O, P, Q (round 8,
#: ``holdout5``-``holdout7``, since round 9: forms, receipts, games, interface text), T (round 9, ``holdout8``, since
#: round 10), V (round 10, written as training rows) and U, W (rounds 10-11, ``holdout9``, ``holdout10``, since round
#: 11) and X (round 12, ``holdout11``, since round 12): answers written as the seed's models write them, and kinds of
#: text no earlier round had.
TRAINING_AUTHORS = ("K", "M", "N", "O", "P", "Q", "T", "V", "U", "W", "X")


def author_of(row: dict[str, Any]) -> str:
    """The row's author: the capital letters its id starts with (datasheet, "Schema"): ``K`` (``K012``), or ``ZA``
    (``ZA001``) for the authors named after the alphabet ran out."""
    found = re.match(r"[A-Z]+", str(row["id"]))
    return found.group(0) if found else str(row["id"])[:1]


def author_set_path(letter: str) -> Path:
    """The file of one later author's rows (training or fresh held-out): ``configs/judge/labelled_<letter>.jsonl``."""
    return LABELLED_PATH.with_name(f"labelled_{letter}.jsonl")


#: What every command reads unless told otherwise.
LABELLED_SETS = (LABELLED_PATH, REAL_OUTPUTS_PATH, *map(author_set_path, TRAINING_AUTHORS))
#: Second annotators' blind labels of the holdout and real rows (``{"id", "label", "note"}`` per line): the ceiling.
SECOND_ANNOTATION_PATH = REPO_ROOT / "configs" / "judge" / "second_annotation.jsonl"
#: ``holdout3``: configs/judge/labelled_K.jsonl (round 6), spent after r5 and r6 were measured on it; its rows are
#: ``train`` rows since judge round 7 (docs/judging-generalisation.md). ``holdout4``: labelled_M.jsonl (round 7), spent
#: after r5, r6 and r7 were measured on it; ``train`` rows since judge round 8. ``holdout5``: labelled_O.jsonl (round
#: 8), ``holdout6``: labelled_P.jsonl (round 8b) and ``holdout7``: labelled_Q.jsonl (round 8c), spent after the round-8
#: versions were measured on them; ``train`` rows since judge round 9. ``holdout8``: labelled_T.jsonl (round 9),
#: spent after r8 and r9 were measured on it; ``train`` rows since judge round 10. ``holdout9``: labelled_U.jsonl
#: (round 10), measured once for r9 and r10, and ``holdout10``: labelled_W.jsonl (round 11), measured once for r10;
#: ``train`` rows since judge round 11. ``holdout11``: labelled_X.jsonl (round 12), measured once for r10 and r11;
#: ``train`` rows since judge round 12. ``holdout12``: labelled_Y.jsonl and ``holdout13``: labelled_Z.jsonl (round 13),
#: measured once for r11 and r12; ``holdout14``: labelled_ZA.jsonl and ``holdout15``: labelled_ZB.jsonl (round 14),
#: measured once for r12. Fresh sets are read only when named with ``--labelled``.
#: ``real``: configs/judge/real_outputs.jsonl.
SPLITS = ("dev", "test", "train", "holdout", "holdout2", "holdout3", "holdout4", "holdout5", "holdout6", "holdout7",
          "holdout8", "holdout9", "holdout10", "holdout11", "holdout12", "holdout13", "holdout14", "holdout15",
          "real")
TRAINING_SPLITS = ("dev", "test", "train")  # what judges learn from; the holdouts are only ever measured on
#: Names that select several splits at once.
SPLIT_GROUPS = {"training": TRAINING_SPLITS}
FORMATS = ("plain", "think", "harmony", "memo")
#: The register of a labelled response (DATASHEET.md, "Registers"), annotated blind by someone other than its author:
#: what cross-validation holds out whole. ``think_block`` / ``harmony`` mark deliberation formats whatever follows.
REGISTERS = ("memo", "email", "chat", "qa", "option_list", "legal_finding", "step_list", "essay", "think_block",
             "harmony", "fragment", "other")


def _is_review_sample(path: Path) -> bool:
    """A blind review sample (:mod:`behaviour.review_sample`) or its record: measured on, never learnt from. Checked by
    name and by the record's ``kind`` (a renamed sample keeps its record beside it)."""
    record = path.with_suffix(".json")
    if path.name.startswith("review_sample"):
        return True
    try:
        return record.exists() and '"kind": "review_sample"' in record.read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False


def load_labelled(paths: str | Path | Sequence[str | Path] = LABELLED_SETS,
                  split: str | None = None) -> list[dict[str, Any]]:
    """The labelled responses of one file or several (all, one ``split``, or a group such as ``training``), each
    checked: an id unique across the files, a known label or null, a split."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    rows: list[dict[str, Any]] = []
    problems, seen = [], set()
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path} does not exist; the labelled sets live in configs/judge/ "
                              f"({', '.join(p.name for p in LABELLED_SETS)})")
        if _is_review_sample(path):
            raise ConfigError(f"{path} is a blind review sample: it measures a judge on a run (docs/rates.md) and "
                              "never becomes labelled data a judge learns from or is tuned on")
        for i, row in enumerate(read_jsonl(path), start=1):
            rid, where = row.get("id"), f"{path.name} line {i}"
            if not rid or rid in seen:
                problems.append(f"{where}: missing or duplicate id {rid!r}")
            seen.add(rid)
            if row.get("label") is not None and row["label"] not in LABELS:
                problems.append(f"{where} ({rid}): label {row['label']!r} is not one of {list(LABELS)} or null")
            if row.get("split") not in SPLITS:
                problems.append(f"{where} ({rid}): split {row.get('split')!r} is not one of {list(SPLITS)}")
            if not isinstance(row.get("response"), str):
                problems.append(f"{where} ({rid}): no response text")
            rows.append(row)
    if problems:
        raise ConfigError("; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))
    if split is not None:
        wanted = SPLIT_GROUPS.get(split, (split,))
        if not set(wanted) <= set(SPLITS):
            raise ConfigError(f"unknown split {split!r}; use one of {[*SPLITS, *SPLIT_GROUPS]}")
        rows = [r for r in rows if r["split"] in wanted]
    return rows


def data_hash(rows: Iterable[dict[str, Any]]) -> str:
    """sha256 over the (id, label, response) of ``rows``: what a trained judge learnt from."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row["id"], row.get("label"), row["response"]], ensure_ascii=False).encode())
    return digest.hexdigest()


def load_second_annotation(path: str | Path = SECOND_ANNOTATION_PATH) -> dict[str, str | None]:
    """A second annotator's labels by row id (empty when the file is absent), each a known label or null."""
    path = Path(path)
    if not path.exists():
        return {}
    labels: dict[str, str | None] = {}
    for row in read_jsonl(path):
        if row.get("label") is not None and row["label"] not in LABELS:
            raise ConfigError(f"{path}: row {row.get('id')!r} has label {row['label']!r}, not one of {list(LABELS)} "
                              "or null")
        labels[str(row["id"])] = row.get("label")
    return labels
