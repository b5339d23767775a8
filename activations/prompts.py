"""Prompt rendering and response splitting, in one place for every experiment.

Instruct models get their own chat template (system + user messages). Base models get a document framing they can
continue. Responses are split into the deliberation (``<think>`` block, or GPT-OSS's analysis channel) and the final
answer; only the final answer is ever scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from common.errors import ConfigError
from activations.registry import ModelSpec


@dataclass(frozen=True)
class PromptSource:
    """What to ask, independent of any model's format.

    ``document`` is the base-model framing (a text that ends where the model should continue). When absent, base
    models get :func:`default_document` built from the system and user text.
    """

    user: str
    system: str | None = None
    document: str | None = None


def default_document(source: PromptSource) -> str:
    parts = [source.system.strip()] if source.system else []
    parts += [source.user.strip(), "Response:\n"]
    return "\n\n".join(parts)


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


@dataclass(frozen=True)
class SplitResponse:
    """A response cut into deliberation and final answer.

    ``think`` is ``None`` when the response had no deliberation; ``think_closed`` is False for a block that was cut
    off (then ``answer`` is empty: an unfinished deliberation is not an answer).
    """

    think: str | None
    answer: str
    think_closed: bool = True


_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
# GPT-OSS harmony format: <|channel|>analysis<|message|>...<|end|> ... <|channel|>final<|message|>...
_HARMONY_FINAL = re.compile(r"<\|channel\|>\s*final\s*<\|message\|>(.*?)(?:<\|return\|>|<\|end\|>|$)", re.S)
_HARMONY_ANALYSIS = re.compile(r"<\|channel\|>\s*analysis\s*<\|message\|>(.*?)(?:<\|end\|>|$)", re.S)
_HARMONY_BARE = re.compile(r"^\s*analysis(.*?)assistantfinal(.*)$", re.S)  # special tokens stripped on decode


def split_response(text: str) -> SplitResponse:
    """Split ``text`` into deliberation and final answer.

    Handles a closed ``<think>...</think>`` block (text before and after it is the answer), a close tag whose opening
    tag was in the prompt (templates that open the block themselves), an unclosed block (the whole text is
    deliberation, the answer is empty), no block at all, and GPT-OSS's analysis/final channels.
    """
    if "<|channel|>" in text:
        final = _HARMONY_FINAL.search(text)
        analysis = "\n".join(m.strip() for m in _HARMONY_ANALYSIS.findall(text)) or None
        if final:
            return SplitResponse(analysis, final.group(1).strip())
        return SplitResponse(analysis if analysis is not None else text.strip(), "", think_closed=False)
    bare = _HARMONY_BARE.match(text)
    if bare:
        return SplitResponse(bare.group(1).strip(), bare.group(2).strip())
    close = text.rfind(_THINK_CLOSE)
    if close >= 0:
        head, tail = text[:close], text[close + len(_THINK_CLOSE):]
        open_at = head.find(_THINK_OPEN)
        # Text before the block is shown to a reader just like the text after it, so both are the answer.
        preamble, think = (head[:open_at], head[open_at + len(_THINK_OPEN):]) if open_at >= 0 else ("", head)
        answer = "\n\n".join(part.strip() for part in (preamble, tail) if part.strip())
        return SplitResponse(think.replace(_THINK_OPEN, "").strip(), answer)
    open_at = text.find(_THINK_OPEN)
    if open_at >= 0:
        # Unclosed: the deliberation was cut off, so there is no answer; a preamble is kept with it, not dropped.
        parts = (text[:open_at].strip(), text[open_at + len(_THINK_OPEN):].strip())
        return SplitResponse("\n\n".join(p for p in parts if p), "", think_closed=False)
    return SplitResponse(None, text.strip())
