"""Model-independent prompt and response texts: what to ask (:class:`PromptSource`) and how a response splits.

Shared ground because both sides use it: the model side renders a :class:`PromptSource` into a model's format
(:func:`activations.prompts.render_prompt`), and the judge reads only the final answer that
:func:`split_response` leaves after dropping ``<think>`` blocks or GPT-OSS's analysis channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
# The same, cut off before its final channel: "analysis" glued to a capital ("analysisWe need to ..."), which an answer
# that merely starts with the word does not do.
_HARMONY_BARE_OPEN = re.compile(r"^\s*analysis(?=[A-Z])(.*)$", re.S)


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
    bare = _HARMONY_BARE_OPEN.match(text)
    if bare:
        return SplitResponse(bare.group(1).strip(), "", think_closed=False)
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
