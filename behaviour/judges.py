"""The judge factory: a spec string (``--judge``) to a :class:`~behaviour.labels.Judge`.

- ``rules``: the offline rule judge (:mod:`behaviour.rule_judge`);
- ``embedding``: the learned judge (:mod:`behaviour.embedding_judge`; MiniLM + a classifier trained on the labelled
  set's dev split);
- ``local:<model name>`` / ``openai:<base_url>#<model>``: a model-graded judge (:mod:`behaviour.llm_judge`);
- ``A+B[+C]``: an ensemble of any of these (:mod:`behaviour.ensemble`), e.g. ``rules+embedding`` or
  ``rules+openai:http://localhost:8000/v1#qwen3-32b`` (a ``+`` splits the spec only before a judge kind).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from common.errors import ConfigError
from behaviour.labels import Judge
from behaviour.rule_judge import RuleJudge

#: The judge used when none is named. Chosen by measurement on the labelled set's test split (README, "Judging").
DEFAULT_JUDGE = "rules"

SPEC_HELP = ("'rules', 'embedding', 'local:<model name>', 'openai:<base_url>#<model>', or an ensemble joined by "
             "'+' (e.g. 'rules+embedding')")

_MEMBER_BREAK = re.compile(r"\+\s*(?=rules\b|embedding\b|local:|openai:)")


def get_judge(spec: str = DEFAULT_JUDGE, *, local: Callable[[str], Judge] | None = None) -> Judge:
    """Build a judge from a spec (see the module docstring); raises :class:`ConfigError` for an unknown one.

    ``local`` builds a ``local:<model name>`` judge from the model name: loading a model is the model side's work,
    so the layer that joins both passes it in (:func:`experiments.jobs.backends.get_judge`)."""
    spec = (spec or DEFAULT_JUDGE).strip()
    parts = [p.strip() for p in _MEMBER_BREAK.split(spec)]
    if len(parts) > 1:
        if any(not p for p in parts) or len(set(parts)) != len(parts):
            raise ConfigError(f"bad ensemble {spec!r}; join distinct judge specs with '+', e.g. 'rules+embedding'")
        from behaviour.ensemble import EnsembleJudge

        return EnsembleJudge([get_judge(p, local=local) for p in parts])
    if spec == "rules":
        return RuleJudge()
    if spec == "embedding":
        from behaviour.embedding_judge import load_embedding_judge

        return load_embedding_judge()
    if spec.startswith("local:") and local is not None:
        name = spec.partition(":")[2].strip()
        if not name:
            raise ConfigError(f"bad judge spec {spec!r}; use local:<model name>, e.g. local:smollm2-135m-instruct")
        return local(name)
    if spec.startswith("local:") or spec.startswith("openai:"):
        from behaviour.llm_judge import llm_judge_from_spec

        return llm_judge_from_spec(spec)
    raise ConfigError(f"unknown judge {spec!r}; use {SPEC_HELP}")
