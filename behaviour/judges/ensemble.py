"""Judges made of judges: an ensemble that labels only where all members agree, and a cascade that falls back.

``--judge rules+embedding`` (:class:`EnsembleJudge`): each member judges the same verdict text and every member's
label is recorded (``members``). When any member abstains, or the members disagree, the ensemble abstains (label
None) with the reason (``a judge abstained: ...`` / ``judges disagree: rules=..., embedding=...``), so the row goes
first in the review export instead of being settled by one judge's guess. Precise, but it abstains wherever either
member does.

``--judge rules/embedding`` (:class:`CascadeJudge`): the first member that gives a label decides, so the embedding
judge labels what the rules cannot read; but a later member that gives a different label *confidently* (a
classifier at or above its ``confident`` level, where its out-of-fold accuracy was at least 97%; any label from a
member without calibrated confidence, such as an LLM judge) sends the row to review as a disagreement. It abstains
when every member abstains.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import ConfigError
from behaviour.judges.labels import DISAGREEMENT, MEMBER_ABSTAINED, Judge, Judgement


class _Combined:
    """Runs every member on the response and keeps what each said (labels, the verdict read, rationales)."""

    joiner = "+"

    def __init__(self, members: Sequence[Judge]):
        if len(members) < 2:
            raise ConfigError(f"combining judges needs at least two, e.g. 'rules{self.joiner}embedding'")
        self.members = list(members)
        self.name = self.joiner.join(m.name for m in self.members)
        self.version = "; ".join(getattr(m, "version", m.name) for m in self.members)

    def _run(self, response: str) -> tuple[list[Judgement], dict[str, str | None], str, str]:
        judgements = [m.judge(response) for m in self.members]  # EmptyResponseError propagates, as for one judge
        labels = {m.name: j.label for m, j in zip(self.members, judgements)}
        verdict = next((j.final_verdict for j in judgements if j.final_verdict), "")
        rationale = " || ".join(f"[{m.name}] {j.rationale}" for m, j in zip(self.members, judgements))
        return judgements, labels, verdict, rationale

    def _abstained(self, judgements: Sequence[Judgement]) -> str:
        return "; ".join(f"{m.name}: {j.needs_review}" for m, j in zip(self.members, judgements) if j.label is None)


class EnsembleJudge(_Combined):
    """Members must agree; any abstention or disagreement is an abstention of the ensemble."""

    def judge(self, response: str) -> Judgement:
        judgements, labels, verdict, rationale = self._run(response)
        parse_error = next((j.parse_error for j in judgements if j.parse_error), None)
        if any(j.label is None for j in judgements):
            return Judgement(None, verdict, rationale, self.name, parse_error,
                             needs_review=f"{MEMBER_ABSTAINED}: {self._abstained(judgements)}", members=labels)
        if len(set(labels.values())) > 1:
            shown = ", ".join(f"{name}={label}" for name, label in labels.items())
            return Judgement(None, verdict, rationale, self.name, needs_review=f"{DISAGREEMENT}: {shown}",
                             members=labels)
        confidence = min((j.confidence for j in judgements if j.confidence is not None), default=None)
        return Judgement(judgements[0].label, verdict, rationale, self.name, members=labels, confidence=confidence)


def _confidently(member: Judge, judgement: Judgement) -> bool:
    """Whether ``member``'s label is sure enough to veto another judge's (see the module docstring)."""
    if judgement.confidence is None:
        return True
    return judgement.confidence >= getattr(member, "confident", 0.0)


class CascadeJudge(_Combined):
    """The first member's label, else the next one's; a later member's confident disagreement goes to review."""

    joiner = "/"

    def judge(self, response: str) -> Judgement:
        judgements, labels, verdict, rationale = self._run(response)
        first = next((i for i, j in enumerate(judgements) if j.label is not None), None)
        if first is None:
            parse_error = next((j.parse_error for j in judgements if j.parse_error), None)
            return Judgement(None, verdict, rationale, self.name, parse_error,
                             needs_review=f"{MEMBER_ABSTAINED}: {self._abstained(judgements)}", members=labels)
        decided = judgements[first]
        vetoes = [(m, j) for m, j in zip(self.members[first + 1:], judgements[first + 1:])
                  if j.label is not None and j.label != decided.label and _confidently(m, j)]
        if vetoes:
            shown = ", ".join(f"{name}={label}" for name, label in labels.items() if label is not None)
            sure = ", ".join(f"{m.name} p={j.confidence:.2f}" for m, j in vetoes if j.confidence is not None)
            return Judgement(None, verdict, rationale, self.name, needs_review=f"{DISAGREEMENT}: {shown}"
                             + (f" ({sure})" if sure else ""), members=labels)
        return Judgement(decided.label, decided.final_verdict or verdict, rationale, self.name, members=labels,
                         confidence=decided.confidence)
