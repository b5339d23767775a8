"""Judging a response to the Veth scenario: the public names, gathered from the modules that hold each concern.

- :mod:`behaviour.judges.labels`          the label set and definitions, :class:`Judgement`, the ``Judge`` protocol;
- :mod:`behaviour.judges.verdict_text`    finding the verdict text every judge reads;
- :mod:`behaviour.judges.rule_direction`, :mod:`behaviour.judges.rule_grounds`  the rule judge's cue patterns;
- :mod:`behaviour.judges.rule_judge`      the offline rule judge;
- :mod:`behaviour.judges.factory`          the factory (``--judge`` spec -> judge);
- :mod:`behaviour.judges.scoring`         judging trial rows.
"""

from __future__ import annotations

from behaviour.judges.factory import get_judge
from behaviour.judges.labels import (EMPTY_RESPONSE, LABELS, MISSING_RESPONSE, NO_FINAL_ANSWER, EmptyResponseError, Judge,
                              Judgement)
from behaviour.judges.rule_judge import RuleAnalysis, RuleJudge
from behaviour.judges.scoring import judge_row, score_rows
from behaviour.judges.verdict_text import VerdictSection, extract_final_verdict, find_verdict

__all__ = ["EMPTY_RESPONSE", "LABELS", "MISSING_RESPONSE", "NO_FINAL_ANSWER", "EmptyResponseError", "Judge",
           "Judgement", "RuleAnalysis", "RuleJudge", "VerdictSection", "extract_final_verdict", "find_verdict",
           "get_judge", "judge_row", "score_rows"]
