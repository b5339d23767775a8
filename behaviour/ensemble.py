"""Ensembles of judges: a label only where every member gives the same one; otherwise the row goes to review.

``--judge rules+embedding`` or ``rules+<llm spec>``: each member judges the same verdict text; every member's label
is recorded (``members``). When any member abstains, or the members disagree, the ensemble abstains (label None)
with the reason (``a judge abstained: ...`` / ``judges disagree: rules=..., embedding=...``), so the row goes first
in the review export instead of being settled by one judge's guess.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import ConfigError
from behaviour.labels import DISAGREEMENT, MEMBER_ABSTAINED, Judge, Judgement


class EnsembleJudge:
    """Members must agree; any abstention or disagreement is an abstention of the ensemble."""

    def __init__(self, members: Sequence[Judge]):
        if len(members) < 2:
            raise ConfigError("an ensemble needs at least two judges, e.g. 'rules+embedding'")
        self.members = list(members)
        self.name = "+".join(m.name for m in self.members)

    def judge(self, response: str) -> Judgement:
        judgements = [m.judge(response) for m in self.members]  # EmptyResponseError propagates, as for one judge
        labels = {m.name: j.label for m, j in zip(self.members, judgements)}
        verdict = next((j.final_verdict for j in judgements if j.final_verdict), "")
        rationale = " || ".join(f"[{m.name}] {j.rationale}" for m, j in zip(self.members, judgements))
        parse_error = next((j.parse_error for j in judgements if j.parse_error), None)
        abstained = [f"{m.name}: {j.needs_review}" for m, j in zip(self.members, judgements) if j.label is None]
        if abstained:
            return Judgement(None, verdict, rationale, self.name, parse_error,
                             needs_review=f"{MEMBER_ABSTAINED}: {'; '.join(abstained)}", members=labels)
        if len(set(labels.values())) > 1:
            shown = ", ".join(f"{name}={label}" for name, label in labels.items())
            return Judgement(None, verdict, rationale, self.name, needs_review=f"{DISAGREEMENT}: {shown}",
                             members=labels)
        confidence = min((j.confidence for j in judgements if j.confidence is not None), default=None)
        return Judgement(judgements[0].label, verdict, rationale, self.name, members=labels, confidence=confidence)
