"""Prompt rendering in each model's own format (the texts and response splitting are in :mod:`common.prompts`).

Instruct models get their own chat template (system + user messages). Base models get a document framing they can
continue.
"""

from __future__ import annotations

from typing import Any

from common.errors import ConfigError
from activations.registry import ModelSpec
from common.prompts import PromptSource, default_document


def render_prompt(
    source: PromptSource, tokenizer: Any, spec: ModelSpec, *, enable_thinking: bool | None = None
) -> str:
    """The exact text fed to the model: chat template for chat models, document framing for base models.

    ``enable_thinking`` switches Qwen3-style thinking; ``None`` keeps the template's default. Asking for thinking on
    a model without a thinking mode is an error rather than a silent no-op.
    """
    if spec.prompt_format == "document":
        if enable_thinking:
            raise ConfigError(f"{spec.name} is a base model prompted as a document; it has no thinking mode")
        return source.document if source.document is not None else default_document(source)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"{spec.name} is registered as a chat model but its tokenizer has no chat template; "
            "register it with prompt_format: document, or load a tokenizer that ships a template"
        )
    if enable_thinking is not None and not spec.thinking:
        raise ConfigError(f"{spec.name} has no thinking mode; drop --thinking/--no-thinking")
    messages = [{"role": "system", "content": source.system}] if source.system else []
    messages.append({"role": "user", "content": source.user})
    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
