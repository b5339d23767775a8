"""The judge factory: a spec string (``--judge``) to a :class:`~behaviour.labels.Judge`."""

from __future__ import annotations

from common.errors import ConfigError
from behaviour.labels import Judge
from behaviour.rule_judge import RuleJudge

SPEC_HELP = "'rules', 'local:<model name>' or 'openai:<base_url>#<model>'"


def get_judge(spec: str = "rules") -> Judge:
    """Build a judge from a spec: ``rules`` (default), ``local:<model name>`` or ``openai:<base_url>#<model>``."""
    spec = (spec or "rules").strip()
    if spec == "rules":
        return RuleJudge()
    if spec.startswith("local:") or spec.startswith("openai:"):
        from behaviour.llm_judge import llm_judge_from_spec

        return llm_judge_from_spec(spec)
    raise ConfigError(f"unknown judge {spec!r}; use {SPEC_HELP}")
