"""Batched generation through the bridge: padding invariance, seeded sampling, hooks, decoding, bad input."""

from __future__ import annotations

import pytest
import torch

from common.errors import ConfigError
from activations.generation import (
    Generation,
    _filtered_probs,
    decode_new_tokens,
    generate,
    generate_detailed,
    row_seed,
    stop_token_ids,
)
from common.prompts import PromptSource
from activations.prompts import render_prompt
from activations.tiny import tiny_model

# Prompts of different lengths, so a batch of them is left-padded.
QUESTIONS = ["Hi", "The Veth show distress when separated, so staying together matters to them.",
             "Step 1: list the facts.", "Final verdict?"]


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=0)


@pytest.fixture(scope="module")
def prompts(model):
    return [render_prompt(PromptSource(q, system="Be brief."), model.tokenizer, model.spec) for q in QUESTIONS]


def test_batched_greedy_equals_unbatched(model, prompts):
    batched = generate_detailed(model, prompts, max_new_tokens=12, batch_size=4, stop_at_eos=False)
    for prompt, got in zip(prompts, batched):
        alone = generate_detailed(model, [prompt], max_new_tokens=12, batch_size=1, stop_at_eos=False)[0]
        assert got.token_ids == alone.token_ids
        assert len(got.token_ids) == 12 and not got.finished


def test_returns_only_new_text_and_no_double_bos(model, prompts):
    gen = generate_detailed(model, prompts[:1], max_new_tokens=5, stop_at_eos=False)[0]
    # The rendered chat prompt has no BOS; encode adds exactly one.
    assert gen.n_prompt_tokens == len(model.encode(prompts[0]))
    with_bos = model.tokenizer.bos_token + prompts[0]
    again = generate_detailed(model, [with_bos], max_new_tokens=5, stop_at_eos=False)[0]
    assert again.n_prompt_tokens == gen.n_prompt_tokens  # a BOS already present is not doubled
    assert again.token_ids == gen.token_ids
    assert gen.text == decode_new_tokens(model, gen.token_ids)
    assert not gen.text.startswith(prompts[0])


def test_seeded_sampling_is_reproducible_and_batch_independent(model, prompts):
    kwargs = dict(max_new_tokens=10, temperature=1.5, top_p=0.95, stop_at_eos=False)
    seeds = [11, 12, 13, 14]
    first = generate_detailed(model, prompts, seeds=seeds, batch_size=4, **kwargs)
    second = generate_detailed(model, prompts, seeds=seeds, batch_size=4, **kwargs)
    assert [g.token_ids for g in first] == [g.token_ids for g in second]
    assert [g.seed for g in first] == seeds
    # Per-prompt generators: a prompt's sample does not depend on the batch it ran in.
    singles = [generate_detailed(model, [p], seeds=[s], batch_size=1, **kwargs)[0] for p, s in zip(prompts, seeds)]
    assert [g.token_ids for g in singles] == [g.token_ids for g in first]
    other = generate_detailed(model, prompts, seeds=[21, 22, 23, 24], batch_size=4, **kwargs)
    assert [g.token_ids for g in other] != [g.token_ids for g in first]
    greedy = generate_detailed(model, prompts, max_new_tokens=10, stop_at_eos=False)
    assert [g.token_ids for g in greedy] != [g.token_ids for g in first]  # sampling is really on at T=1.5


def test_single_seed_derives_row_seeds(model, prompts):
    out = generate_detailed(model, prompts[:2], seed=7, temperature=1.0, max_new_tokens=4)
    assert [g.seed for g in out] == [row_seed(7, 0), row_seed(7, 1)]
    assert generate(model, prompts[:2], seed=7, temperature=1.0, max_new_tokens=4) == [g.text for g in out]
    unseeded = generate_detailed(model, prompts[:1], temperature=1.0, max_new_tokens=4)[0]
    assert isinstance(unseeded.seed, int)  # a drawn seed is reported, so the output can be regenerated
    assert generate_detailed(model, prompts[:1], seeds=[unseeded.seed], temperature=1.0,
                             max_new_tokens=4)[0].token_ids == unseeded.token_ids


def test_bridge_hook_changes_generation(model, prompts):
    plain = generate_detailed(model, prompts[:2], max_new_tokens=6, stop_at_eos=False)
    calls = []

    def steer(resid, hook):
        calls.append(resid.shape)
        return resid + 5.0 * torch.randn(resid.shape[-1], generator=torch.Generator().manual_seed(0))

    with model.bridge.hooks(fwd_hooks=[("blocks.1.hook_resid_post", steer)]):
        steered = generate_detailed(model, prompts[:2], max_new_tokens=6, stop_at_eos=False)
    assert [g.token_ids for g in steered] != [g.token_ids for g in plain]
    assert len(calls) == 6  # one forward per generated token (prefill + 5 cached steps)
    after = generate_detailed(model, prompts[:2], max_new_tokens=6, stop_at_eos=False)
    assert [g.token_ids for g in after] == [g.token_ids for g in plain]  # the context removed the hook


def test_hooks_inside_attention_still_fire_and_fused_attention_gives_the_same_tokens(model, prompts):
    fused = generate_detailed(model, prompts, max_new_tokens=8, stop_at_eos=False)  # attention="sdpa", the default
    own = generate_detailed(model, prompts, max_new_tokens=8, stop_at_eos=False, attention="bridge")
    assert [g.token_ids for g in fused] == [g.token_ids for g in own]
    seen = []

    def record(pattern, hook):  # the fused kernel has no pattern: this fires only on the bridge's attention
        seen.append(tuple(pattern.shape[-2:]))
        return pattern

    with model.bridge.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", record)]):
        generate_detailed(model, prompts, max_new_tokens=8, stop_at_eos=False)
    assert len(seen) == 8 and seen[1][0] == 1  # the prompt, then one query per cached step


def test_batched_prompt_logits_for_the_last_position_only(model, prompts):
    shapes = []
    with model.bridge.hooks(fwd_hooks=[("unembed.hook_out", lambda x, hook: shapes.append(x.shape) or x)]):
        generate_detailed(model, prompts, max_new_tokens=3, stop_at_eos=False)
    assert [s[1] for s in shapes] == [1, 1, 1]  # never (batch, prompt, vocabulary) logits


def test_sampling_keeps_user_hooks(model, prompts):
    def kill_all_but(token_id):
        def hook(logits, hook):
            logits = logits.clone()
            logits[..., :] = -1e4
            logits[..., token_id] = 0
            return logits
        return hook

    target = model.tokenizer.get_vocab()["Veth"] if "Veth" in model.tokenizer.get_vocab() else 100
    with model.bridge.hooks(fwd_hooks=[("blocks.2.hook_resid_post", lambda x, hook: x),
                                       ("unembed.hook_out", kill_all_but(target))]):
        out = generate_detailed(model, prompts[:2], seeds=[1, 2], temperature=1.0, max_new_tokens=3,
                                stop_at_eos=False)
    assert all(g.token_ids == [target] * 3 for g in out)


def test_stops_at_end_of_turn_and_strips_chat_specials_but_keeps_think(model):
    tok = model.tokenizer
    vocab = tok.get_vocab()
    assert vocab["<|im_end|>"] in stop_token_ids(model) and tok.eos_token_id in stop_token_ids(model)
    ids = [vocab["<think>"], *tok("Step 1", add_special_tokens=False)["input_ids"], vocab["</think>"],
           *tok("Final verdict", add_special_tokens=False)["input_ids"], vocab["<|im_start|>"]]
    text = decode_new_tokens(model, ids)
    assert text == "<think>Step 1</think>Final verdict"

    # Force the model to say "<think>" then end its turn: generation stops and drops the stop token.
    script = [vocab["<think>"], vocab["<|im_end|>"]]
    step = {"i": 0}

    def force(logits, hook):
        logits = logits.clone()
        logits[:, -1, :] = -1e4
        logits[:, -1, script[min(step["i"], 1)]] = 0
        step["i"] += 1
        return logits

    with model.bridge.hooks(fwd_hooks=[("unembed.hook_out", force)]):
        gen = generate_detailed(model, ["<s>hello"], max_new_tokens=8)[0]
    assert gen.finished and gen.token_ids == [vocab["<think>"]] and gen.text == "<think>"


def test_length_cut_is_reported(model, prompts):
    gen = generate_detailed(model, prompts[:1], max_new_tokens=3, stop_at_eos=False)[0]
    assert isinstance(gen, Generation) and not gen.finished and len(gen.token_ids) == 3


def test_top_p_filter_matches_definition():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    probs = _filtered_probs(logits, 1.0, 0.8)
    # Nucleus of mass >= 0.8: {0.5, 0.3}; renormalised.
    assert torch.allclose(probs, torch.tensor([[0.625, 0.375, 0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(_filtered_probs(logits, 1.0, 1.0), torch.tensor([[0.5, 0.3, 0.15, 0.05]]), atol=1e-6)
    hot = _filtered_probs(logits, 2.0, 1.0)
    assert hot[0, 3] > 0.05  # a higher temperature flattens the distribution


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(temperature=-1), "temperature"),
    (dict(top_p=0), "top_p"),
    (dict(batch_size=0), "batch_size"),
    (dict(seeds=[1, 2, 3]), "one seed per prompt"),
    (dict(max_new_tokens=10_000), "context"),
])
def test_bad_arguments_raise_config_error(model, prompts, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate(model, prompts[:2], **kwargs)


def test_string_instead_of_list_is_rejected(model):
    with pytest.raises(ConfigError, match="sequence of prompts"):
        generate(model, "hello")  # type: ignore[arg-type]
    assert generate(model, []) == []


def test_vocab_ids_agree_with_the_whole_vocabulary(model):
    from activations.generation import END_OF_TURN_TOKENS, KEPT_SPECIAL_TOKENS, vocab_ids

    tokens = [*END_OF_TURN_TOKENS, *KEPT_SPECIAL_TOKENS, "Veth", "not-a-token-anywhere"]
    vocab = model.tokenizer.get_vocab()
    assert vocab_ids(model.tokenizer, tokens) == [vocab[t] for t in tokens if t in vocab]
    assert len(vocab_ids(model.tokenizer, tokens)) >= 3  # the tiny tokenizer has some of them
