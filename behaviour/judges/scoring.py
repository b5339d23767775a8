"""Scoring trial rows with a judge: the one path every judged row in the toolkit goes through.

A row is a dict with the model's ``response`` and, where the generator recorded it, ``finished`` (False when
``max_new_tokens`` cut it off). Trials (:mod:`behaviour.trials`), ``experiments.score``, the judge evaluation
(:mod:`behaviour.judges.judge_eval`) and the steering job's confirmation generations all call :func:`judge_row` (or
:func:`score_rows`), so the same row gets the same verdict whichever command scored it. (An ensemble calls its
members' ``judge`` on the text :func:`judge_row` passed it: that is one judge, not another path.)

The rules, in order:

1. **A prefill is context, not an answer.** A row may carry ``prefill``: text *we* wrote at the start of the model's
   turn (the steering job's Steps 1-2), with ``response`` holding only the model's continuation. The verdict must
   come from the continuation: where its verdict text states no recommendation or refusal, the judge abstains with
   :data:`~behaviour.judges.labels.NO_CONTINUATION_VERDICT` (or :data:`~behaviour.judges.labels.TRUNCATED` when it
   was cut off), however much reasoning the prefill holds. Where the continuation does state one, the judge reads
   ``prefill + response``, so the prefill may supply the grounds that a bare "No." refers to.
2. **A cut-off response is not judged as if complete**: cut off (:func:`was_cut_off`) before any verdict
   (:func:`~behaviour.judges.verdict_text.reached_verdict`, applied to the model's own text) it abstains with
   ``truncated``; a cut-off response the judge abstains on keeps ``truncated`` in its reason.
3. A missing or empty response is recorded (label None, ``parse_error``), not guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from behaviour.judges.labels import (
    EMPTY_RESPONSE, MISSING_RESPONSE, NO_CONTINUATION_VERDICT, TRUNCATED, EmptyResponseError, Judge, Judgement,
)
from behaviour.judges.rule_direction import direction_hits, refusal_cue
from behaviour.judges.text import split_sentences
from behaviour.judges.verdict_text import find_verdict, looks_cut_off, reached_verdict

BAD_PREFILL = "the 'prefill' field is not text"


def was_cut_off(row: dict[str, Any]) -> bool:
    """Whether ``max_new_tokens`` cut the row's response off: the generator's ``finished`` flag when recorded, else
    an answer that stops mid-sentence."""
    finished = row.get("finished")
    if isinstance(finished, bool):
        return not finished
    response = row.get("response")
    return isinstance(response, str) and looks_cut_off(response)


def states_verdict(text: str) -> bool:
    """Whether ``text``'s own verdict text (:func:`~behaviour.judges.verdict_text.find_verdict`) states a
    recommendation or a refusal: the test a prefilled row's continuation must pass to be judged at all."""
    verdict = find_verdict(text).text
    return bool(verdict and (direction_hits(split_sentences(verdict)) or refusal_cue(verdict)))


def _abstain(response: str, judge: Judge, reason: str, why: str) -> Judgement:
    return Judgement(None, find_verdict(response).text, f"abstains: {why}", judge.name, needs_review=reason)


def judge_row(row: dict[str, Any], judge: Judge) -> Judgement:
    """Judge one row by the rules in the module docstring: a prefilled row on its continuation's verdict, a cut-off
    row only when it reached a verdict, a missing or empty response recorded rather than judged."""
    response = row.get("response")
    if not isinstance(response, str):
        return Judgement(None, "", MISSING_RESPONSE, judge.name, MISSING_RESPONSE)
    prefill = row.get("prefill")
    if prefill is not None and not isinstance(prefill, str):
        return Judgement(None, "", BAD_PREFILL, judge.name, BAD_PREFILL)
    cut = was_cut_off(row)
    if prefill and not states_verdict(response):
        if cut:
            return _abstain(response, judge, TRUNCATED, "the continuation was cut off (max_new_tokens) before its "
                            "verdict; the prefill is context, not an answer")
        return _abstain(response, judge, NO_CONTINUATION_VERDICT, "the model's continuation states no verdict; the "
                        "prefill's reasoning is ours, not the model's answer")
    if cut and response.strip() and not reached_verdict(response):
        return _abstain(response, judge, TRUNCATED, "the response was cut off (max_new_tokens) before its verdict")
    try:
        judgement = judge.judge((prefill or "") + response)
    except EmptyResponseError:
        return Judgement(None, "", EMPTY_RESPONSE, judge.name, EMPTY_RESPONSE)
    if cut and judgement.label is None:
        judgement = dataclasses.replace(judgement, needs_review=f"{TRUNCATED}: {judgement.needs_review}")
    return judgement


def score_rows(rows: Iterable[dict[str, Any]], judge: Judge,
               on_unscored: Callable[[int, dict[str, Any], Judgement], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield each row with the judgement's fields (:data:`~behaviour.judges.labels.JUDGE_FIELDS`) added.

    Every other field is kept. Rows the judge abstains on (no or empty ``response``, no final answer, cut off, a
    continuation without a verdict of its own, no recommendation found, an LLM judge's unparseable output ...) keep
    ``label: None`` with the reason in ``needs_review`` (and ``parse_error`` when the input could not be read);
    ``on_unscored(index, row, judgement)`` is called for each so a caller can report them.
    """
    for index, row in enumerate(rows):
        judgement = judge_row(row, judge)
        if judgement.label is None and on_unscored is not None:
            on_unscored(index, row, judgement)
        yield {**row, **judgement.to_dict()}
