"""What joins a loaded model to the behavioural side: the local-model backend, and judges that run on a local model.

:mod:`behaviour.backends` holds the :class:`~behaviour.backends.Backend` protocol and the OpenAI-compatible HTTP
backend; a backend that generates with a model loaded here needs :mod:`activations` as well, so it lives in this
layer:

- :class:`LocalBackend` renders each prompt with the model's chat template (or base-model document framing) and
  generates through the TransformerLens bridge (:mod:`activations.generation`: hooks apply, and each prompt samples
  with its own ``torch.Generator`` seeded by its seed, so a trial's output does not depend on its batch);
- :func:`get_judge` builds any judge spec, ``local:<model name>`` (constrained answers) and
  ``local-text:<model name>`` (free text) included (the model is loaded here), and passes the others to
  :func:`behaviour.judge.get_judge`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from activations.generation import generate_detailed
from activations.models import LoadedModel, load_model
from activations.prompts import render_prompt
from behaviour.backends import Completion
from behaviour.judge import Judge
from behaviour.judges.factory import DEFAULT_JUDGE
from behaviour.judges.factory import get_judge as get_behaviour_judge
from behaviour.judges.llm_judge import (
    CHOICE_RUBRIC_VERSION, RUBRIC_VERSION, ConstrainedLLMJudge, LLMJudge, backend_complete,
)
from common.errors import ConfigError
from common.prompts import PromptSource
from experiments.jobs.choice_judge import choice_explainer, choice_scorer, resolve_choice_tokens
from interventions.directions_source import normalise_concept
from interventions.steered_trials import ResolvedSteering
from interventions.steering import generate_steered, plan_for

__all__ = ["LocalBackend", "SteeredBackend", "get_judge", "local_judge"]


class LocalBackend:
    """Generate with a :class:`LoadedModel` through its bridge, ``batch_size`` prompts at a time."""

    name = "local"

    def __init__(self, model: LoadedModel, *, batch_size: int = 8):
        self.model = model
        self.batch_size = batch_size
        self.model_name = model.spec.name

    @property
    def identity(self) -> dict[str, Any]:
        return self.model.identity.to_dict()

    @property
    def prompt_format(self) -> str:
        """``chat`` or ``document`` (base models), from the registry entry."""
        return self.model.spec.prompt_format

    def render(self, source: PromptSource, *, enable_thinking: bool | None = None) -> str:
        return render_prompt(source, self.model.tokenizer, self.model.spec, enable_thinking=enable_thinking)

    def complete(self, sources: Sequence[PromptSource], *, max_new_tokens: int, temperature: float, top_p: float,
                 seeds: Sequence[int], enable_thinking: bool | None = None) -> list[Completion]:
        prompts = [self.render(s, enable_thinking=enable_thinking) for s in sources]
        generations = generate_detailed(self.model, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                                        top_p=top_p, seeds=seeds, batch_size=self.batch_size)
        return [Completion(g.text, None, g.finished, len(g.token_ids)) for g in generations]


def local_judge(model: LoadedModel | str, *, free_text: bool = False, explain: bool = False,
                max_new_tokens: int = 64) -> Judge:
    """A judge that grades with ``model`` (a loaded model or a registry name).

    By default the constrained judge (:class:`~behaviour.judges.llm_judge.ConstrainedLLMJudge`: four single-token
    answers read from one forward pass, :mod:`experiments.jobs.choice_judge`), with a generated reason when
    ``explain``; ``free_text`` gives the free-text :class:`~behaviour.judges.llm_judge.LLMJudge` (``LABEL: ...``,
    ``max_new_tokens`` greedy tokens). The answer tokens are checked before the model is ever run.
    """
    loaded = load_model(model) if isinstance(model, str) else model
    name = model if isinstance(model, str) else loaded.spec.name
    if free_text:
        backend = LocalBackend(loaded, batch_size=1)
        return LLMJudge(backend_complete(backend, max_new_tokens=max_new_tokens),
                        f"llm:local:{name}:{RUBRIC_VERSION}")
    tokens = resolve_choice_tokens(loaded.tokenizer)
    return ConstrainedLLMJudge(choice_scorer(loaded, tokens), f"llm:local:{name}:{CHOICE_RUBRIC_VERSION}",
                               explain=choice_explainer(loaded, tokens) if explain else None)


def get_judge(spec: str = DEFAULT_JUDGE) -> Judge:
    """A judge from a ``--judge`` spec (:data:`behaviour.judges.SPEC_HELP`), ``local:<model>`` members included."""
    return get_behaviour_judge(spec, local=local_judge)


class SteeredBackend(LocalBackend):
    """A local backend that generates with one steering setting; its identity (and key) includes the steering."""

    name = "local-steered"

    def __init__(self, model: LoadedModel, steering: ResolvedSteering, *, batch_size: int = 8):
        super().__init__(model, batch_size=batch_size)
        self.steering = steering
        spec = steering.spec
        # Tables group trials by model name: a steered model gets its own row.
        self.model_name = (f"{model.spec.name}+steer({normalise_concept(spec.concept)}@L{spec.layer},"
                           f"a{float(spec.alpha):g},{spec.positions})")

    @property
    def identity(self) -> dict[str, Any]:
        base = self.model.identity.to_dict()
        steering = self.steering.identity()
        key = hashlib.sha256(json.dumps({"model": base["key"], "steering": steering}, sort_keys=True)
                             .encode()).hexdigest()[:16]
        return {**base, "model_key": base["key"], "steering": steering, "key": key}

    def complete(self, sources: Sequence[PromptSource], *, max_new_tokens: int, temperature: float, top_p: float,
                 seeds: Sequence[int], enable_thinking: bool | None = None) -> list[Completion]:
        prompts = [self.render(s, enable_thinking=enable_thinking) for s in sources]
        plan = plan_for(self.model, [[self.steering.steer] for _ in prompts], self.steering.norms)
        generations = generate_steered(self.model, prompts, plan, max_new_tokens=max_new_tokens,
                                       temperature=temperature, top_p=top_p, seeds=seeds, batch_size=self.batch_size)
        return [Completion(g.text, None, g.finished, len(g.token_ids)) for g in generations]
