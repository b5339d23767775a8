"""The verdict metric shared by steering, patching and model comparison.

After a prompt that ends where the verdict is stated (e.g. ``Final verdict:``), the metric is the log-odds of the
"against" continuations over the "proceed" ones at the last position:

    logsumexp(logits[against]) - logsumexp(logits[proceed])  =  log P(against set) - log P(proceed set)

With one token on each side this is the plain logit difference that activation patching uses; with several it is the
log-odds of the two sets. One forward pass gives it, so sweeps over layers x alphas x directions stay cheap.
Every verdict string must be a single token in the model's tokenizer; otherwise the error says what it splits into.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from common.errors import ConfigError

#: Defaults for a prompt that asks for a yes/no verdict and ends in "Final verdict:" (leading space: the next word
#: after the colon). " No" and " Yes" are single tokens in the embedded models' tokenizers (SmolLM2, Gemma 3); words
#: such as " Reject" split in SmolLM2's. Pass other strings where the prompt frames the verdict differently.
DEFAULT_AGAINST = (" No",)
DEFAULT_PROCEED = (" Yes",)


@dataclass(frozen=True)
class VerdictTokens:
    """Token ids of the two sides of the verdict, with the strings they came from."""

    against: tuple[int, ...]
    proceed: tuple[int, ...]
    against_text: tuple[str, ...]
    proceed_text: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"against": dict(zip(self.against_text, self.against)),
                "proceed": dict(zip(self.proceed_text, self.proceed))}


def single_token(tokenizer: Any, text: str) -> int:
    """The one token id of ``text``; a :class:`ConfigError` naming the pieces when it is not one token."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise ConfigError(
            f"verdict token {text!r} is not a single token in this tokenizer: it splits into {pieces}; "
            "choose a string that is one token (often with a leading space), e.g. its first piece"
        )
    return int(ids[0])


def resolve_verdict_tokens(tokenizer: Any, against: Sequence[str] = DEFAULT_AGAINST,
                           proceed: Sequence[str] = DEFAULT_PROCEED) -> VerdictTokens:
    """Check and look up the verdict strings (each must be one token; the two sides must not share a token)."""
    if not against or not proceed:
        raise ConfigError("verdict tokens: give at least one 'against' and one 'proceed' string")
    a = tuple(single_token(tokenizer, t) for t in against)
    p = tuple(single_token(tokenizer, t) for t in proceed)
    shared = set(a) & set(p)
    if shared:
        raise ConfigError(f"verdict tokens: ids {sorted(shared)} are on both the 'against' and 'proceed' side")
    return VerdictTokens(a, p, tuple(against), tuple(proceed))


def verdict_log_odds(logits: torch.Tensor, tokens: VerdictTokens) -> torch.Tensor:
    """Log-odds of against over proceed from next-token logits ``(..., vocab)``; returns shape ``(...)``.

    Pass the logits at the verdict position (e.g. ``logits[:, -1]`` for left-aligned prompts of equal length, or
    gathered at each row's last real token). Computed in float32 whatever the model's dtype.
    """
    logits = logits.float()
    against = torch.logsumexp(logits[..., list(tokens.against)], dim=-1)
    proceed = torch.logsumexp(logits[..., list(tokens.proceed)], dim=-1)
    return against - proceed
