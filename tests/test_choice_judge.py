"""The constrained LLM judge: answer tokens per tokenizer, probabilities read at the right position (held to a plain
HF forward pass), never unparseable, and the spec that selects it."""

from __future__ import annotations

import math

import pytest
import torch

from activations.tiny import tiny_hf_model, tiny_model, tiny_tokenizer
from behaviour.judge import get_judge
from behaviour.judges.labels import LABELS, NO_FINAL_ANSWER, EmptyResponseError, Judgement
from behaviour.judges.llm_judge import (
    CHOICE_RUBRIC, RUBRIC_USER, ConstrainedLLMJudge, LLMJudge, choice_probabilities,
)
from common.errors import ConfigError
from experiments.jobs.backends import local_judge
from experiments.jobs.choice_judge import resolve_choice_tokens

RESPONSE = "Step 1: facts.\n\nFinal verdict: do not proceed; the Veth show distress when separated."


def test_choice_tokens_per_tokenizer() -> None:
    # The tiny BPE has no " A" token: it falls back to bare letters after "Answer: ", as the text would tokenize.
    tok = tiny_tokenizer()
    tokens = resolve_choice_tokens(tok)
    assert tokens.cue == "Answer: " and tokens.texts == ("A", "B", "C", "D")
    assert all(tok("Answer: " + t, add_special_tokens=False)["input_ids"][-1] == i
               for t, i in zip(tokens.texts, tokens.ids))
    with pytest.raises(ConfigError, match="local-text") as err:  # a label name is many tokens
        resolve_choice_tokens(tok, ("did_not_converge", "B", "C", "D"))
    assert "splits into" in str(err.value)
    with pytest.raises(ConfigError, match="share token ids"):
        resolve_choice_tokens(tok, ("A", "A", "C", "D"))


def test_probabilities_come_from_the_answer_position() -> None:
    model = tiny_model("llama", seed=0)
    rubric = "Grade it. A: converged B: ambiguous C: did_not_converge D: refused"  # the full one exceeds tiny's n_ctx
    judge = local_judge(model)
    judge.rubric = rubric
    j = judge.judge(RESPONSE)
    assert j.label in LABELS and j.parse_error is None and j.needs_review is None
    assert sum(j.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
    assert j.confidence == max(j.probabilities.values()) and j.label == max(j.probabilities, key=j.probabilities.get)
    # Independently: the same weights as a plain HF model, the prompt built by hand from the chat template.
    tok = tiny_tokenizer()
    user = RUBRIC_USER.format(verdict="do not proceed; the Veth show distress when separated.")
    text = tok.apply_chat_template([{"role": "system", "content": rubric}, {"role": "user", "content": user}],
                                   tokenize=False, add_generation_prompt=True) + "Answer: "
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    with torch.no_grad():
        logits = tiny_hf_model("llama", seed=0)(torch.tensor([ids])).logits[0].float()
    letters = [tok.convert_tokens_to_ids(c) for c in "ABCD"]
    expected = torch.softmax(logits[-1, letters], dim=-1)
    got = torch.tensor([j.probabilities[label] for label in LABELS])
    assert torch.allclose(got, expected, atol=1e-4), (got, expected)
    # The position matters: one token earlier gives other numbers (so the check above could fail).
    assert not torch.allclose(torch.softmax(logits[-2, letters], dim=-1), expected, atol=1e-3)
    # The optional reason is generated after the chosen letter and never changes the label.
    explained = local_judge(model, explain=True)
    explained.rubric = rubric
    e = explained.judge(RESPONSE)
    assert e.label == j.label and e.probabilities == pytest.approx(j.probabilities)
    assert e.rationale.startswith(j.rationale + " | ")


def test_base_models_get_a_document_ending_in_the_cue() -> None:
    from experiments.jobs.choice_judge import choice_prompt

    model = tiny_model("llama", seed=0, chat=False)  # no chat template: prompted as a document
    tokens = resolve_choice_tokens(model.tokenizer)
    assert choice_prompt(model, tokens, "Grade it.", "Verdict: no.") == "Grade it.\n\nVerdict: no.\n\nAnswer: "
    judge = local_judge(model)
    judge.rubric = "Grade it."
    j = judge.judge(RESPONSE)
    assert j.label in LABELS and sum(j.probabilities.values()) == pytest.approx(1.0)


def test_constrained_judge_never_fails_to_parse() -> None:
    asked = []

    def score(system: str, user: str) -> list[float]:
        asked.append((system, user))
        return [math.log(0.1), math.log(0.5), math.log(0.2), math.log(0.05)]  # 85% of the mass on the answers

    judge = ConstrainedLLMJudge(score, "llm:test", explain=lambda s, u, letter: f" chose {letter} ")
    j = judge.judge("<think>private</think>Step 1: x\n\nFinal verdict: Not advisable; cost.")
    assert j.label == "ambiguous" and j.parse_error is None and j.needs_review is None
    assert j.probabilities == pytest.approx({"converged": 0.1 / 0.85, "ambiguous": 0.5 / 0.85,
                                             "did_not_converge": 0.2 / 0.85, "refused": 0.05 / 0.85})
    assert j.confidence == pytest.approx(0.5 / 0.85)
    assert "85%" in j.rationale and j.rationale.endswith("| chose B")
    assert asked[0][0] == CHOICE_RUBRIC and "Not advisable; cost." in asked[0][1] and "private" not in asked[0][1]
    assert Judgement(**{**j.__dict__}).to_dict()["probabilities"] == j.probabilities
    # No final answer: the model is not asked; empty input is an error, as for every judge.
    assert judge.judge("<think>unfinished").parse_error == NO_FINAL_ANSWER and len(asked) == 1
    with pytest.raises(EmptyResponseError):
        judge.judge("  ")
    with pytest.raises(ValueError, match="4 finite"):
        choice_probabilities([0.0, float("nan"), 0.0, 0.0])


def test_local_is_constrained_and_local_text_is_free_text() -> None:
    built = []

    def local(name: str, **kwargs: object) -> LLMJudge:
        built.append((name, kwargs))
        return LLMJudge(lambda s, u: "LABEL: refused", f"llm:{name}")

    get_judge("local:smollm2-135m-instruct", local=local)
    cascade = get_judge("rules/local-text:smollm2-135m-instruct", local=local)
    assert built == [("smollm2-135m-instruct", {}), ("smollm2-135m-instruct", {"free_text": True})]
    assert [m.name for m in cascade.members] == ["rules", "llm:smollm2-135m-instruct"]
    with pytest.raises(ConfigError, match="local-text:<model name>"):
        get_judge("local-text:", local=local)
    with pytest.raises(ConfigError, match="needs a loaded model"):
        get_judge("local-text:smollm2-135m-instruct")  # behaviour alone loads no model


@pytest.mark.slow
def test_smollm2_constrained_judge_labels_every_response() -> None:
    """The real embedded model with the full rubric: every response with a final answer gets a label and four
    probabilities, whatever the model would have written as free text."""
    from behaviour.judges.labelled_set import load_labelled
    from experiments.jobs.backends import get_judge as get_any_judge

    judge = get_any_judge("local:smollm2-135m-instruct")
    assert judge.name == "llm:local:smollm2-135m-instruct:veth-rubric-1-choice"
    rows = load_labelled(split="holdout2")[:6]
    for row in rows:
        j = judge.judge(row["response"])
        assert j.label in LABELS and j.parse_error is None, j
        assert sum(j.probabilities.values()) == pytest.approx(1.0)
