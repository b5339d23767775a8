"""The constrained LLM judge's model side: its four answer tokens, checked per tokenizer, and the forward pass that
reads their log-probabilities (:class:`behaviour.judges.llm_judge.ConstrainedLLMJudge` holds the rubric and the
labels; loading and running a model is this layer's work, since :mod:`behaviour` imports no model code).

The prompt is the rubric rendered as the model's chat (system + user messages; thinking switched off where the
template has it) or, for a base model, a document, ending in ``Answer:``. One forward pass over it gives the
next-token log-probabilities; the four answers' are read at the last position. The answers are the letters of
:data:`~behaviour.judges.llm_judge.CHOICE_LETTERS`, each of which must be one token, distinct, and tokenized the
same after the cue as alone (:func:`resolve_choice_tokens`): with a leading space (``" A"``) where the tokenizer has
such tokens, else bare letters after ``"Answer: "``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from activations.generation import generate_detailed
from activations.models import LoadedModel
from activations.prompts import render_prompt
from behaviour.judges.llm_judge import ANSWER_CUE, CHOICE_LETTERS, Explain, ScoreChoices
from common.errors import ConfigError
from common.prompts import PromptSource
from interventions.steering import last_logits, plan_for, steered_forward
from interventions.verdict import single_token


@dataclass(frozen=True)
class ChoiceTokens:
    """The text the prompt ends with (``cue``) and the four answers' token texts and ids, in label order."""

    cue: str
    texts: tuple[str, ...]
    ids: tuple[int, ...]


def resolve_choice_tokens(tokenizer: object, letters: Sequence[str] = CHOICE_LETTERS) -> ChoiceTokens:
    """The answers as distinct single tokens that follow the cue as they would in text; a :class:`ConfigError`
    naming what the tokenizer made of them otherwise."""
    problems = []
    for space in (" ", ""):
        texts = tuple(space + letter for letter in letters)
        cue = ANSWER_CUE + ("" if space else " ")
        try:
            ids = tuple(single_token(tokenizer, t) for t in texts)
        except ConfigError as exc:
            problems.append(str(exc).split(";")[0])
            continue
        if len(set(ids)) != len(ids):
            problems.append(f"the answers {texts} share token ids {ids}")
            continue
        cue_ids = tokenizer(cue, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        joined = [tokenizer(cue + t, add_special_tokens=False)["input_ids"] for t in texts]  # type: ignore[operator]
        if any(j != [*cue_ids, i] for j, i in zip(joined, ids)):
            problems.append(f"{cue!r} followed by {texts} does not tokenize as the cue then the answer")
            continue
        return ChoiceTokens(cue, texts, ids)
    raise ConfigError("the constrained judge needs its four answers as distinct single tokens, and this tokenizer "
                      f"cannot give them ({'; '.join(problems)}); judge with local-text:<model> (free-text answers) "
                      "instead")


def choice_prompt(model: LoadedModel, tokens: ChoiceTokens, system: str, user: str) -> str:
    """The exact text fed to the judge model: rubric and verdict in the model's own format, ending in the cue."""
    if model.spec.prompt_format == "document":
        return render_prompt(PromptSource(user=user, system=system, document=f"{system}\n\n{user}\n\n{tokens.cue}"),
                             model.tokenizer, model.spec)
    thinking = False if model.spec.thinking else None  # the answer must be the next token, not a <think> block
    return render_prompt(PromptSource(user=user, system=system), model.tokenizer, model.spec,
                         enable_thinking=thinking) + tokens.cue


def choice_scorer(model: LoadedModel, tokens: ChoiceTokens | None = None) -> ScoreChoices:
    """``score(system, user)``: the four answers' next-token log-probabilities (over the whole vocabulary, float32)
    after :func:`choice_prompt`, from one forward pass."""
    tokens = tokens or resolve_choice_tokens(model.tokenizer)

    def score(system: str, user: str) -> list[float]:
        ids = model.encode(choice_prompt(model, tokens, system, user))
        if len(ids) > model.n_ctx:
            raise ConfigError(f"the judge prompt has {len(ids)} tokens, more than the model's context of "
                              f"{model.n_ctx}; judge with a model of longer context")
        [logits] = steered_forward(model, [ids], plan_for(model, [[]]), last_logits, batch_size=1)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return [float(logprobs[i]) for i in tokens.ids]

    return score


def choice_explainer(model: LoadedModel, tokens: ChoiceTokens | None = None, *, max_new_tokens: int = 48) -> Explain:
    """``explain(system, user, letter)``: a greedy free-text reason generated after the chosen answer."""
    tokens = tokens or resolve_choice_tokens(model.tokenizer)

    def explain(system: str, user: str, letter: str) -> str:
        answer = tokens.texts[CHOICE_LETTERS.index(letter)]
        prompt = choice_prompt(model, tokens, system, user) + answer + "\nReason:"
        [generation] = generate_detailed(model, [prompt], max_new_tokens=max_new_tokens, temperature=0.0,
                                         seeds=[0], batch_size=1)
        return generation.text.strip()

    return explain
