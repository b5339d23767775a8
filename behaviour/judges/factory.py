"""The judge factory: a spec string (``--judge``) to a :class:`~behaviour.judges.labels.Judge`.

- ``rules``: the offline rule judge (:mod:`behaviour.judges.rule_judge`);
- ``embedding``: the learned judge (:mod:`behaviour.judges.embedding_judge`; a sentence encoder + a classifier
  trained on the labelled sets' training splits);
- ``local:<model name>``: a model-graded judge constrained to four single-token answers, read from their
  log-probabilities (:class:`~behaviour.judges.llm_judge.ConstrainedLLMJudge`: never unparseable, with the four
  probabilities); ``local-text:<model name>`` the same model answering in free text (``LABEL: ...``), and
  ``openai:<base_url>#<model>`` a served model in free text (:mod:`behaviour.judges.llm_judge`);
- ``A+B[+C]``: an ensemble of any of these (:mod:`behaviour.judges.ensemble`), e.g. ``rules+embedding`` or
  ``rules+openai:http://localhost:8000/v1#qwen3-32b``: a label only where every member agrees;
- ``A/B[/C]``: a cascade (:mod:`behaviour.judges.ensemble`), e.g. ``rules/embedding`` ("rules, else embedding"): the first
  member's label, the next one's where it abstains, and review where a later member confidently disagrees. ``/``
  binds looser than ``+`` (``rules/embedding+openai:...`` falls back to the ensemble). Both split the spec only before
  a judge kind, and neither needs quoting in a shell.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from common.errors import ConfigError
from behaviour.judges.labels import Judge
from behaviour.judges.rule_judge import RuleJudge

#: The judge used when none is named. Round 5 (docs/judging-generalisation.md): with the format-4 classifier the
#: cascade ``rules/embedding`` fell to kappa 0.87 on ``holdout2`` (the r4 default had 0.91), failing the no-regression
#: check fixed beforehand (>= 0.89 with <= 10% abstained); the next candidate, ``embedding`` (0.71 with 18% abstained on
#: the cross-register proxy, the cascade 0.66 with 15%), passed it (0.91 with 4%) and had the higher kappa on ``real``
#: (0.32 vs 0.31), the round-4 rule. Round 6 kept it (rules r6 in its features: holdout2 0.94 with 6% abstained). No
#: judge is reliable on a 135M model's outputs; review them.
DEFAULT_JUDGE = "embedding"

SPEC_HELP = ("'rules', 'embedding', 'local:<model name>' (constrained answer), 'local-text:<model name>' (free "
             "text), 'openai:<base_url>#<model>', an ensemble joined by "
             "'+' (e.g. 'rules+embedding') or a cascade joined by '/' (e.g. 'rules/embedding')")

# Split only before a judge kind, so that a path in local:/x/embedding-v2 is not split.
_KIND = r"(?=(?:rules|embedding)(?:$|\s|[+/])|local:|local-text:|openai:)"
_CASCADE_BREAK = re.compile(r"/\s*" + _KIND)
_MEMBER_BREAK = re.compile(r"\+\s*" + _KIND)


def get_judge(spec: str = DEFAULT_JUDGE, *, local: Callable[..., Judge] | None = None,
              embedding: Judge | None = None) -> Judge:
    """Build a judge from a spec (see the module docstring); raises :class:`ConfigError` for an unknown one.

    ``local(name)`` builds a ``local:<model name>`` judge from the model name (``local(name, free_text=True)`` a
    ``local-text:`` one): loading a model is the model side's work,
    so the layer that joins both passes it in (:func:`experiments.jobs.backends.get_judge`). ``embedding``, when
    given, stands for every ``embedding`` member instead of the saved classifier (cross-validation trains its own)."""
    spec = (spec or DEFAULT_JUDGE).strip()
    for breaker, joiner in ((_CASCADE_BREAK, "/"), (_MEMBER_BREAK, "+")):
        parts = [p.strip() for p in breaker.split(spec)]
        if len(parts) > 1:
            if any(not p for p in parts) or len(set(parts)) != len(parts):
                raise ConfigError(f"bad judge spec {spec!r}; join distinct judge specs with '{joiner}', e.g. "
                                  f"'rules{joiner}embedding'")
            from behaviour.judges.ensemble import CascadeJudge, EnsembleJudge

            combine = CascadeJudge if joiner == "/" else EnsembleJudge
            return combine([get_judge(p, local=local, embedding=embedding) for p in parts])
    if spec == "rules":
        return RuleJudge()
    if spec == "embedding" and embedding is not None:
        return embedding
    if spec == "embedding":
        from behaviour.judges.embedding_judge import load_embedding_judge

        return load_embedding_judge()
    if spec.startswith(("local:", "local-text:")) and local is not None:
        kind, _, name = spec.partition(":")
        if not name.strip():
            raise ConfigError(f"bad judge spec {spec!r}; use {kind}:<model name>, e.g. {kind}:smollm2-135m-instruct")
        # local(name) is the constrained judge; the free-text one is asked for by keyword (the default stays short).
        return local(name.strip()) if kind == "local" else local(name.strip(), free_text=True)
    if spec.startswith(("local:", "local-text:", "openai:")):
        from behaviour.judges.llm_judge import llm_judge_from_spec

        return llm_judge_from_spec(spec)
    raise ConfigError(f"unknown judge {spec!r}; use {SPEC_HELP}")


def check_judge_spec(spec: str) -> None:
    """Raise :class:`ConfigError` for a spec :func:`get_judge` would refuse, without loading an encoder or a model
    (configs are validated before any model work; the same parser, with free stand-ins for the members that load)."""
    get_judge(spec, local=lambda name, **_: RuleJudge(), embedding=RuleJudge())
