"""The verdict metric: single-token checks and log-odds against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch

from activations.tiny import tiny_tokenizer
from common.errors import ConfigError
from interventions.verdict import resolve_verdict_tokens, single_token, verdict_log_odds


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _one_and_many(tok):
    """A string that is one token and one that splits, found in this tokenizer's vocabulary."""
    vocab = tok.get_vocab()
    one = next(t for t in sorted(vocab) if t.isalpha() and len(t) > 2)
    many = "zqxjv" * 3
    assert len(tok(many, add_special_tokens=False)["input_ids"]) > 1
    return one, many


def test_single_token_and_split_message(tok):
    one, many = _one_and_many(tok)
    assert single_token(tok, one) == tok.get_vocab()[one]
    with pytest.raises(ConfigError, match="splits into"):
        single_token(tok, many)


def test_sides_must_differ(tok):
    one, _ = _one_and_many(tok)
    with pytest.raises(ConfigError, match="both"):
        resolve_verdict_tokens(tok, [one], [one])
    with pytest.raises(ConfigError, match="at least one"):
        resolve_verdict_tokens(tok, [], [one])


def test_log_odds_is_log_probability_ratio(tok):
    vocab = sorted(t for t in tok.get_vocab() if t.isalpha() and len(t) > 1)
    tokens = resolve_verdict_tokens(tok, vocab[:2], vocab[2:3])
    logits = torch.randn(3, 5, len(tok), generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    got = verdict_log_odds(logits, tokens)
    assert got.shape == (3, 5) and got.dtype == torch.float32
    probs = logits.float().softmax(-1)
    want = (probs[..., list(tokens.against)].sum(-1) / probs[..., list(tokens.proceed)].sum(-1)).log()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert not math.isnan(got.sum().item())
