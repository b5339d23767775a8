"""Schema and integrity of the hand-labelled judge set (configs/judge/labelled.jsonl; protocol in DATASHEET.md).

Fast: reads the file only. It guards what the judge measurements rely on: well-formed rows, unique ids, no
response counted twice, every label and format present in every split, round 1's split rule fixed before tuning
(recomputed here, so a row moved between splits or a row inserted mid-file is caught), and each round-2 author's
rows in the split they were written for (``train``, or the ``holdout`` no judge learns from).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from behaviour.judge import LABELS
from behaviour.judges.labelled_set import FORMATS, REGISTERS
from common import REPO_ROOT

PATH = REPO_ROOT / "configs" / "judge" / "labelled.jsonl"
FIELDS = {"id", "format", "register", "register_annotator", "response", "label", "reason", "tags", "split", "note"}
MIN_ROWS = 200  # per round-1 set and per round-2 holdout (issue 12: at least 200 responses to split)
# Which split each author's rows belong to, fixed when they were written: round 1 (L) by the rule below; round 2's
# training authors (C, D, E) and held-out authors (A, B); round 3's held-out authors (F, G); round 4's training
# authors (H, I: small and weak models); round 5's training author (J: registers the set lacked).
SPLIT_OF_PREFIX = {"C": "train", "D": "train", "E": "train", "H": "train", "I": "train", "J": "train", "A": "holdout",
                   "B": "holdout", "F": "holdout2", "G": "holdout2"}
SPLITS = ("dev", "test", "train", "holdout", "holdout2")
# Rows removed after they were written, with why (ids are not reused).
REMOVED = {"H010": "the same text as A010, a holdout row (the GPT-OSS refusal formula)"}
# The split rule (DATASHEET.md): the n-th row (0-based, in file order) of each (label, format) stratum is a test row
# iff n % 20 is in this set (9 of 20, i.e. 45%).
TEST_POSITIONS = {1, 3, 5, 7, 10, 12, 14, 16, 18}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    out = []
    with PATH.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            assert line.strip(), f"line {number} is blank"
            out.append(json.loads(line))
    return out


def test_schema(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        where = row.get("id", row)
        assert set(row) == FIELDS | answer_field(row), where
        assert re.fullmatch(r"[LCDEHIJABFG]\d{3}", row["id"]), where
        assert row["format"] in FORMATS, where
        assert row["label"] in LABELS or row["label"] is None, where
        # Null labels are exactly the responses cut off before any verdict.
        assert row["reason"] == ("truncated" if row["label"] is None else ""), where
        assert row["split"] == SPLIT_OF_PREFIX.get(row["id"][0], row["split"]), where
        assert row["split"] in SPLITS, where
        assert isinstance(row["response"], str) and row["response"].strip(), where
        assert isinstance(row["note"], str) and row["note"].strip(), where
        assert isinstance(row["tags"], list) and all(isinstance(t, str) and t for t in row["tags"]), where
        check_register(row)


def answer_field(row: dict[str, Any]) -> set[str]:
    """A deliberation row (``think_block``, ``harmony``) also names the register of its final answer."""
    return {"answer_register"} if row.get("register") in ("think_block", "harmony") else set()


def check_register(row: dict[str, Any]) -> None:
    """Every row carries its register, from the fixed vocabulary, annotated by someone other than its author (the
    annotator's letter is not the id's); a deliberation format is its own register (issue 17, part 2)."""
    where = row["id"]
    assert row["register"] in REGISTERS, where
    annotator = row["register_annotator"]
    assert isinstance(annotator, str) and annotator.strip() and annotator.split("-")[0] != row["id"][0], where
    assert (row["register"] == "think_block") == (row["format"] == "think"), where
    assert (row["register"] == "harmony") == (row["format"] == "harmony"), where
    if answer_field(row):  # null: no final answer (an unclosed <think>, no final channel, an empty one)
        assert row["answer_register"] in set(REGISTERS) - {"think_block", "harmony"} | {None}, where


def check_format(row: dict[str, Any]) -> None:
    text, fmt = row["response"], row["format"]
    # GPT-OSS channels, with their special tokens or stripped on decode ("analysis...assistantfinal...")
    # (a stripped one cut off before its final channel is only "analysis...")
    harmony = "<|channel|>" in text or "assistantfinal" in text or text.startswith("analysis")
    assert harmony == (fmt == "harmony"), row["id"]
    assert (("<think>" in text or "</think>" in text) == (fmt == "think")), row["id"]
    if fmt == "memo":  # a base-model continuation starts after the memo's "Step 1:"
        assert not text.lstrip().lower().startswith("step 1"), row["id"]


def test_formats_match_the_text(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        check_format(row)


def test_size_and_unique_ids(rows: list[dict[str, Any]]) -> None:
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    for prefix in "LCDEHIABFG":
        mine = [i for i in ids if i[0] == prefix]
        expected = [f"{prefix}{i:03d}" for i in range(1, len(mine) + len(REMOVED) + 1)]
        assert mine == [i for i in expected if i not in REMOVED][:len(mine)], f"{prefix} ids must run in file order"
    assert sum(i[0] == "L" for i in ids) >= MIN_ROWS
    assert sum(row["split"] == "holdout" for row in rows) >= 150
    assert sum(row["split"] == "holdout2" for row in rows) >= 150


def test_no_duplicated_responses(rows: list[dict[str, Any]]) -> None:
    normal = Counter(" ".join(row["response"].lower().split()) for row in rows)
    assert [text[:80] for text, n in normal.items() if n > 1] == []


def test_every_label_and_format_in_every_split(rows: list[dict[str, Any]]) -> None:
    for split in SPLITS:
        part = [row for row in rows if row["split"] == split]
        assert {row["label"] for row in part} == {*LABELS, None}, split
        assert {row["format"] for row in part} == set(FORMATS), split


def test_split_follows_the_fixed_rule(rows: list[dict[str, Any]]) -> None:
    seen: defaultdict[tuple[Any, str], int] = defaultdict(int)
    rows = [row for row in rows if row["id"].startswith("L")]
    for row in rows:
        stratum = (row["label"], row["format"])
        expected = "test" if seen[stratum] % 20 in TEST_POSITIONS else "dev"
        seen[stratum] += 1
        assert row["split"] == expected, row["id"]
    share = sum(row["split"] == "test" for row in rows) / len(rows)
    assert 0.40 <= share <= 0.50, share


def test_second_annotation_covers_each_holdout_and_real_row_once(rows: list[dict[str, Any]]) -> None:
    second = [json.loads(line) for line in (PATH.parent / "second_annotation.jsonl").read_text().splitlines()]
    real = [json.loads(line) for line in (PATH.parent / "real_outputs.jsonl").read_text().splitlines()]
    held = {row["id"] for row in rows if row["split"] in ("holdout", "holdout2")} | {row["id"] for row in real}
    assert sorted(r["id"] for r in second) == sorted(held)
    assert all(r["label"] in LABELS or r["label"] is None for r in second)


def test_real_outputs_are_trial_records_with_hand_labels() -> None:
    """configs/judge/real_outputs.jsonl: real model outputs from trials runs, labelled blind; ``finished`` is the
    generator's flag (what the scoring reads to tell a response cut off by max_new_tokens)."""
    real = [json.loads(line) for line in (PATH.parent / "real_outputs.jsonl").read_text().splitlines()]
    assert len(real) >= 40 and len({r["id"] for r in real}) == len(real)
    for row in real:
        assert set(row) == FIELDS | {"finished"} | answer_field(row), row["id"]
        assert re.fullmatch(r"[SRM]\d{3}", row["id"]) and row["split"] in ("train", "real"), row["id"]
        assert row["format"] in FORMATS and isinstance(row["finished"], bool), row["id"]
        assert row["label"] in LABELS or row["label"] is None, row["id"]
        assert row["reason"] == ("truncated" if row["label"] is None else ""), row["id"]
        assert any(t.startswith("model:") for t in row["tags"]) and any(t.startswith("trial:") for t in row["tags"])
        check_register(row)


# Fresh held-out sets written while the judge is being improved (author letter -> split), each measured once per judge
# version, named on the command line; not among the sets every command reads. Empty while none is pending. Spent ones
# join training (``ANNOTATED_TRAINING_AUTHORS``): K's round-6 set (``holdout3``) and M's round-7 set (``holdout4``) since
# judge rounds 7 and 8; O's, P's and Q's round-8 sets (``holdout5``-``holdout7``) since judge round 9 (DATASHEET.md).
# T's round-9 set (``holdout8``, ids ``T...``: the letters R and S are the real outputs') since judge round 10. U's
# round-10 set (``holdout9``) and W's round-11 set (``holdout10``) since judge round 11, X's round-12 set
# (``holdout11``) since judge round 12. Y's and Z's round-13 sets (``holdout12``, ``holdout13``, measured once for r11
# and r12) and ZA's and ZB's round-14 sets (``holdout14``, ``holdout15``, measured once for r12) are not trained on.
FRESH_HOLDOUTS: dict[str, str] = {"Y": "holdout12", "Z": "holdout13", "ZA": "holdout14", "ZB": "holdout15"}


def check_intents(intent_path: Path, set_rows: list[dict[str, Any]]) -> None:
    """The author's intended register of each row (not an annotation): the vocabulary, or ``other`` with the kind of
    text the vocabulary lacks; a deliberation format is its own register."""
    intents = [json.loads(line) for line in intent_path.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in intents] == [r["id"] for r in set_rows]
    for intent, row in zip(intents, set_rows):
        assert intent["register_intent"] in REGISTERS, intent
        assert set(intent) == {"id", "register_intent"} | ({"kind"} if intent["register_intent"] == "other" else set())
        assert intent["register_intent"] != "other" or (isinstance(intent["kind"], str) and intent["kind"]), intent
        assert (intent["register_intent"] == "think_block") == (row["format"] == "think"), intent
        assert (intent["register_intent"] == "harmony") == (row["format"] == "harmony"), intent


def check_written_row(row: dict[str, Any]) -> None:
    assert row["label"] in LABELS or row["label"] is None, row["id"]
    assert row["reason"] == ("truncated" if row["label"] is None else ""), row["id"]
    assert row["response"].strip() and row["note"].strip() and row["tags"], row["id"]
    assert all(isinstance(t, str) and t for t in row["tags"]), row["id"]
    check_format(row)


def check_unannotated_set(author: str, split: str, others: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """One author's rows in the labelled schema without a register (their author may not annotate it), not among the
    sets every command reads: ids, fields, split, labels, formats and intents, and no id or response shared with the
    default sets or ``others``. Returns the rows."""
    from behaviour.judges.labelled_set import LABELLED_SETS, load_labelled

    set_path = PATH.parent / f"labelled_{author}.jsonl"
    assert set_path not in LABELLED_SETS
    fresh_rows = load_labelled(set_path, split=split)
    assert [r["id"] for r in fresh_rows] == [f"{author}{i:03d}" for i in range(1, len(fresh_rows) + 1)]
    assert len(fresh_rows) == len(set_path.read_text(encoding="utf-8").splitlines())
    default_rows = load_labelled([*LABELLED_SETS, *others])
    assert not {r["id"] for r in fresh_rows} & {r["id"] for r in default_rows}
    for row in fresh_rows:
        assert set(row) == FIELDS - {"register", "register_annotator"}, row["id"]
        assert row["split"] == split and row["format"] in FORMATS, row["id"]
        check_written_row(row)
    assert {r["label"] for r in fresh_rows} == {*LABELS, None}
    normal = Counter(" ".join(r["response"].lower().split()) for r in default_rows + fresh_rows)
    assert [text[:80] for text, n in normal.items() if n > 1] == []
    check_intents(PATH.parent / f"register_intent_{author}.jsonl", fresh_rows)
    return fresh_rows


@pytest.mark.parametrize("author", sorted(FRESH_HOLDOUTS) or [pytest.param(None, marks=pytest.mark.skip(
    reason="no fresh held-out set pending"))])
def test_fresh_holdout_is_well_formed_and_unseen(author: str) -> None:
    """labelled_<author>.jsonl: one author's fresh held-out rows in registers unlike the training rows. No judge trains
    on them: the file is not among the sets every command reads, and it shares no id or response with them
    (DATASHEET.md)."""
    from behaviour.judges.labelled_set import LABELLED_SETS, author_of, load_labelled

    check_unannotated_set(author, FRESH_HOLDOUTS[author])
    # Named beside the default sets (as `experiments.judge --labelled ... evaluate --split holdout4` reads them), no
    # row reaches the training splits.
    set_path = PATH.parent / f"labelled_{author}.jsonl"
    assert not [r for r in load_labelled([*LABELLED_SETS, set_path], "training") if author_of(r) == author]


# Authors whose rows were written outside the first rounds and joined training with the registers their blind second
# annotators gave: K (round 6, ``holdout3`` until spent; training since judge round 7), M (round 7, ``holdout4`` until
# spent; training since judge round 8), N (round 8, written as training rows), O, P, Q (round 8, ``holdout5``-
# ``holdout7`` until spent; training since judge round 9), T (round 9, ``holdout8`` until spent; training since judge
# round 10), V (round 10, written as training rows), U, W (rounds 10-11, ``holdout9``, ``holdout10`` until spent;
# training since judge round 11) and X (round 12, ``holdout11`` until spent; training since judge round 12).
# ``second_annotation_<A>.jsonl`` holds the blind labels and registers (DATASHEET.md).
ANNOTATED_TRAINING_AUTHORS = ("K", "M", "N", "O", "P", "Q", "T", "V", "U", "W", "X")


@pytest.mark.parametrize("author", ANNOTATED_TRAINING_AUTHORS)
def test_later_authors_rows_are_well_formed_training_rows(rows: list[dict[str, Any]], author: str) -> None:
    """labelled_K.jsonl ... labelled_Q.jsonl: one later author's training rows, each with the register its blind second
    annotator gave (DATASHEET.md, rounds 6-8c). Read by every command beside the
    other sets; ids and texts clash with none."""
    from behaviour.judges.labelled_set import LABELLED_SETS, load_labelled

    set_path = PATH.parent / f"labelled_{author}.jsonl"
    assert set_path in LABELLED_SETS
    set_rows = load_labelled(set_path, split="train")
    assert [r["id"] for r in load_labelled(LABELLED_SETS, "training") if r["id"].startswith(author)] == \
        [r["id"] for r in set_rows]
    assert [r["id"] for r in set_rows] == [f"{author}{i:03d}" for i in range(1, len(set_rows) + 1)]
    assert len(set_rows) == len(set_path.read_text(encoding="utf-8").splitlines())
    assert not {r["id"] for r in set_rows} & {r["id"] for r in rows}
    second = {r["id"]: r for r in map(json.loads, (PATH.parent / f"second_annotation_{author}.jsonl").read_text(
        encoding="utf-8").splitlines())}
    assert set(second) == {r["id"] for r in set_rows}
    for row in set_rows:
        assert set(row) == FIELDS | answer_field(row), row["id"]
        assert row["split"] == "train" and row["format"] in FORMATS, row["id"]
        assert (row["register"], row["register_annotator"]) == (second[row["id"]]["register"],
                                                                second[row["id"]]["annotator"]), row["id"]
        check_written_row(row)
        check_register(row)
    assert {r["label"] for r in set_rows} == {*LABELS, None}
    others = [r for r in load_labelled(LABELLED_SETS) if not r["id"].startswith(author)]
    normal = Counter(" ".join(r["response"].lower().split()) for r in others + set_rows)
    assert [text[:80] for text, n in normal.items() if n > 1] == []
    check_intents(PATH.parent / f"register_intent_{author}.jsonl", set_rows)
