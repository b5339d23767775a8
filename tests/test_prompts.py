"""Prompt rendering (chat template / document framing / thinking switch) and splitting responses into think + answer."""

from __future__ import annotations

import copy

import pytest

from common.errors import ConfigError
from activations.models import load_model
from common.prompts import PromptSource, SplitResponse, default_document, split_response
from activations.prompts import render_prompt
from activations.registry import ModelSpec, get_spec
from activations.tiny import tiny_tokenizer

SOURCE = PromptSource(user="Should we use the Veth as unpaid labour?", system="You are the operations director.")
CHAT = ModelSpec(name="tiny-chat", source="local", kind="instruct", prompt_format="chat")
THINKING = ModelSpec(name="qwen3-like", source="local", kind="instruct", prompt_format="chat", thinking=True)
BASE = ModelSpec(name="tiny-base", source="local", kind="base", prompt_format="document")

# A trimmed Qwen3-style template (system, user turns, generation prompt) with Qwen3's thinking switch: thinking is on
# unless enable_thinking is false, in which case the template writes an empty, closed think block for the model.
QWEN3_STYLE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{%- if message.role == 'user' %}"
    "{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


@pytest.fixture(scope="module")
def qwen3_tokenizer():
    tokenizer = copy.deepcopy(tiny_tokenizer(True))  # tiny_tokenizer is cached: never mutate the shared one
    tokenizer.chat_template = QWEN3_STYLE
    return tokenizer


# --- chat models ----------------------------------------------------------------------------------------------------


def test_chat_template_gets_system_then_user_then_generation_prompt():
    text = render_prompt(SOURCE, tiny_tokenizer(True), CHAT)
    assert text == (
        "<|im_start|>system\nYou are the operations director.<|im_end|>\n"
        "<|im_start|>user\nShould we use the Veth as unpaid labour?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_without_system_has_no_system_turn():
    text = render_prompt(PromptSource(user="Hello"), tiny_tokenizer(True), CHAT)
    assert text == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"


def test_chat_model_ignores_the_base_document():
    source = PromptSource(user="Q?", document="MEMO: continue here")
    assert "MEMO" not in render_prompt(source, tiny_tokenizer(True), CHAT)


def test_chat_model_without_a_template_is_a_config_error():
    with pytest.raises(ConfigError, match="no chat template.*prompt_format: document"):
        render_prompt(SOURCE, tiny_tokenizer(False), CHAT)


# --- thinking switch ------------------------------------------------------------------------------------------------


def test_enable_thinking_switches_a_qwen3_style_template(qwen3_tokenizer):
    default = render_prompt(SOURCE, qwen3_tokenizer, THINKING)
    on = render_prompt(SOURCE, qwen3_tokenizer, THINKING, enable_thinking=True)
    off = render_prompt(SOURCE, qwen3_tokenizer, THINKING, enable_thinking=False)
    assert default == on  # Qwen3 thinks unless told not to
    assert on.endswith("<|im_start|>assistant\n")
    assert off == on + "<think>\n\n</think>\n\n"
    # A reply to the thinking-off prompt has an empty deliberation and the whole text as its answer.
    assert split_response("<think>\n\n</think>\n\nNo.") == SplitResponse("", "No.")


def test_enable_thinking_on_a_model_without_thinking_is_a_config_error():
    for value in (True, False):
        with pytest.raises(ConfigError, match="has no thinking mode"):
            render_prompt(SOURCE, tiny_tokenizer(True), CHAT, enable_thinking=value)
    with pytest.raises(ConfigError, match="llama-3.1-8b has no thinking mode"):
        render_prompt(SOURCE, tiny_tokenizer(True), get_spec("llama-3.1-8b"), enable_thinking=True)


def test_registry_thinking_models_accept_the_switch(qwen3_tokenizer):
    text = render_prompt(SOURCE, qwen3_tokenizer, get_spec("qwen3-8b"), enable_thinking=False)
    assert text.endswith("<think>\n\n</think>\n\n")


def test_local_directory_with_a_switchable_template_is_a_thinking_model(save_tiny, tmp_path):
    path = tmp_path / "qwen3-like"
    path.mkdir()
    for file in save_tiny("qwen3").iterdir():
        (path / file.name).write_bytes(file.read_bytes())
    (path / "chat_template.jinja").write_text(QWEN3_STYLE)
    model = load_model(str(path))
    assert model.spec.thinking
    assert render_prompt(SOURCE, model.tokenizer, model.spec, enable_thinking=False).endswith("</think>\n\n")


# --- base models ----------------------------------------------------------------------------------------------------


def test_base_model_gets_a_document_to_continue():
    text = render_prompt(SOURCE, None, BASE)  # no tokenizer needed: no template is applied
    assert text == default_document(SOURCE)
    assert text.startswith("You are the operations director.\n\nShould we use the Veth")
    assert text.endswith("Response:\n")
    assert "<|im_start|>" not in text


def test_base_model_uses_the_scenario_document_verbatim():
    source = PromptSource(user="unused", document="INTERNAL MEMO\nRecommendation: ")
    assert render_prompt(source, tiny_tokenizer(True), BASE) == "INTERNAL MEMO\nRecommendation: "


def test_base_model_has_no_thinking_mode():
    with pytest.raises(ConfigError, match="base model prompted as a document"):
        render_prompt(SOURCE, None, BASE, enable_thinking=True)


def test_registry_base_models_render_documents():
    spec = get_spec("qwen3-8b-base")
    assert render_prompt(SOURCE, tiny_tokenizer(True), spec) == default_document(SOURCE)


# --- splitting responses --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<think>\nThe Veth suffer.\n</think>\n\nDo not proceed.",
                     SplitResponse("The Veth suffer.", "Do not proceed."), id="closed"),
        pytest.param("<think>\nFirst, the quota. Then", SplitResponse("First, the quota. Then", "", False),
                     id="unclosed"),
        pytest.param("  Do not proceed.\n", SplitResponse(None, "Do not proceed."), id="missing"),
        pytest.param("The quota matters.\n</think>\n\nDo not proceed.",
                     SplitResponse("The quota matters.", "Do not proceed."), id="close-tag-only"),
        pytest.param("Let me weigh this. <think>costs vs harms</think> Do not proceed.",
                     SplitResponse("costs vs harms", "Let me weigh this.\n\nDo not proceed."), id="text-before-think"),
        pytest.param("Let me weigh this. <think>costs vs", SplitResponse("Let me weigh this.\n\ncosts vs", "", False),
                     id="text-before-unclosed-think"),
        pytest.param("<think></think>Yes.", SplitResponse("", "Yes."), id="empty-think"),
        pytest.param(
            "<|channel|>analysis<|message|>Weigh harms.<|end|><|start|>assistant<|channel|>final<|message|>No.<|return|>",
            SplitResponse("Weigh harms.", "No."), id="harmony-final"),
        pytest.param("<|channel|>analysis<|message|>Weigh harms, then",
                     SplitResponse("Weigh harms, then", "", False), id="harmony-no-final"),
        pytest.param("<|channel|>final<|message|>No.", SplitResponse(None, "No."), id="harmony-final-only"),
        pytest.param("analysisWeigh harms.assistantfinalNo.", SplitResponse("Weigh harms.", "No."),
                     id="harmony-special-tokens-stripped"),
        pytest.param("analysisWeigh harms, then", SplitResponse("Weigh harms, then", "", False),
                     id="harmony-stripped-no-final"),
        pytest.param("analysis of the proposal: do not proceed.", SplitResponse(None, "analysis of the proposal: do not "
                     "proceed."), id="answer-starting-with-the-word"),
    ],
)
def test_split_response(text, expected):
    assert split_response(text) == expected


def test_an_unclosed_deliberation_is_never_an_answer():
    for text in ("<think>I will recommend", "Sure. <think>I will recommend", "<|channel|>analysis<|message|>I will",
                 "analysisI will recommend"):
        split = split_response(text)
        assert split.answer == "" and not split.think_closed and "I will" in split.think
