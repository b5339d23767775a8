"""Scoring trial rows with a judge: one :class:`~behaviour.judges.labels.Judgement` per row, merged into the row."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from behaviour.judges.labels import EMPTY_RESPONSE, MISSING_RESPONSE, TRUNCATED, EmptyResponseError, Judge, Judgement
from behaviour.judges.verdict_text import find_verdict, looks_cut_off, reached_verdict


def was_cut_off(row: dict[str, Any]) -> bool:
    """Whether ``max_new_tokens`` cut the row's response off: the generator's ``finished`` flag when recorded, else
    an answer that stops mid-sentence."""
    finished = row.get("finished")
    if isinstance(finished, bool):
        return not finished
    response = row.get("response")
    return isinstance(response, str) and looks_cut_off(response)


def judge_row(row: dict[str, Any], judge: Judge) -> Judgement:
    """Judge one trial record; a missing or empty ``response`` is recorded (label None), not guessed.

    A response cut off before any verdict (:func:`was_cut_off` and not
    :func:`~behaviour.judges.verdict_text.reached_verdict`) is not judged as if complete: it abstains with the reason
    ``truncated``; so does a cut-off response on which the judge abstains.
    """
    response = row.get("response")
    if not isinstance(response, str):
        return Judgement(None, "", MISSING_RESPONSE, judge.name, MISSING_RESPONSE)
    cut = was_cut_off(row)
    if cut and response.strip() and not reached_verdict(response):
        return Judgement(None, find_verdict(response).text, "abstains: the response was cut off (max_new_tokens) "
                         "before its verdict", judge.name, needs_review=TRUNCATED)
    try:
        judgement = judge.judge(response)
    except EmptyResponseError:
        return Judgement(None, "", EMPTY_RESPONSE, judge.name, EMPTY_RESPONSE)
    if cut and judgement.label is None:
        judgement = dataclasses.replace(judgement, needs_review=f"{TRUNCATED}: {judgement.needs_review}")
    return judgement


def score_rows(rows: Iterable[dict[str, Any]], judge: Judge,
               on_unscored: Callable[[int, dict[str, Any], Judgement], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield each row with the judgement's fields (:data:`~behaviour.judges.labels.JUDGE_FIELDS`) added.

    Every other field is kept. Rows the judge abstains on (no or empty ``response``, no final answer, cut off, no
    recommendation found, an LLM judge's unparseable output ...) keep ``label: None`` with the reason in
    ``needs_review`` (and ``parse_error`` when the input could not be read); ``on_unscored(index, row, judgement)``
    is called for each so a caller can report them.
    """
    for index, row in enumerate(rows):
        judgement = judge_row(row, judge)
        if judgement.label is None and on_unscored is not None:
            on_unscored(index, row, judgement)
        yield {**row, **judgement.to_dict()}
