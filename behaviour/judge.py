"""Scoring a response: the label set, final-verdict extraction and the judges.  (STUB: being filled in.)"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from activations.prompts import split_response

LABELS = ("converged", "ambiguous", "did_not_converge", "refused")


@dataclass(frozen=True)
class Judgement:
    label: str | None
    final_verdict: str
    rationale: str
    judge: str
    parse_error: str | None = None


class Judge(Protocol):
    name: str

    def judge(self, response: str) -> Judgement: ...


def extract_final_verdict(response: str) -> str:
    return split_response(response).answer


class RuleJudge:
    name = "rules"

    def judge(self, response: str) -> Judgement:
        raise NotImplementedError


def get_judge(spec: str = "rules") -> Judge:
    return RuleJudge()


def score_rows(rows: Iterable[dict[str, Any]], judge: Judge) -> Iterator[dict[str, Any]]:
    for row in rows:
        j = judge.judge(row["response"])
        yield {**row, "label": j.label, "final_verdict": j.final_verdict, "rationale": j.rationale,
               "judge": j.judge, "parse_error": j.parse_error}
