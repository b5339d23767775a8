"""Scoring trial rows with a judge: one :class:`~behaviour.labels.Judgement` per row, merged into the row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from behaviour.labels import EMPTY_RESPONSE, MISSING_RESPONSE, EmptyResponseError, Judge, Judgement


def judge_row(row: dict[str, Any], judge: Judge) -> Judgement:
    """Judge one trial record; a missing or empty ``response`` is recorded (label None), not guessed."""
    response = row.get("response")
    if not isinstance(response, str):
        return Judgement(None, "", MISSING_RESPONSE, judge.name, MISSING_RESPONSE)
    try:
        return judge.judge(response)
    except EmptyResponseError:
        return Judgement(None, "", EMPTY_RESPONSE, judge.name, EMPTY_RESPONSE)


def score_rows(rows: Iterable[dict[str, Any]], judge: Judge,
               on_unscored: Callable[[int, dict[str, Any], Judgement], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield each row with ``label``, ``final_verdict``, ``rationale``, ``judge`` and ``parse_error`` added.

    Every other field is kept. Rows that cannot be labelled (no or empty ``response``, no final answer, an LLM
    judge's unparseable output) keep ``label: None`` with the reason in ``parse_error``; ``on_unscored(index, row,
    judgement)`` is called for each so a caller can report them.
    """
    for index, row in enumerate(rows):
        judgement = judge_row(row, judge)
        if judgement.label is None and on_unscored is not None:
            on_unscored(index, row, judgement)
        yield {**row, **judgement.to_dict()}
