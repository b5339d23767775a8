"""Every architecture we name boots through the bridge, exposes the canonical hooks, and computes what HF computes.

Tiny random-weight models stand in for the hub checkpoints (which cannot be downloaded here): same model classes,
same bridge adapters, so a broken adapter or a renamed hook shows up here first.
"""

from __future__ import annotations

import pytest
import torch

from activations.tiny import ARCHITECTURES, tiny_hf_model, tiny_model

HOOKS = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post")
TEXT = "The Veth show distress when separated, so staying together matters to them."
EXPECTED_CLASS = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama4": "Llama4ForCausalLM",
                  "gpt_oss": "GptOssForCausalLM", "gemma3": "Gemma3ForCausalLM"}


@pytest.fixture(scope="module", params=ARCHITECTURES)
def arch_model(request):
    return request.param, tiny_model(request.param, seed=0)


@pytest.fixture(scope="module")
def tokens(arch_model):
    _, model = arch_model
    return torch.tensor([model.encode(TEXT)])


def canonical_names(n_layers: int) -> list[str]:
    return [f"blocks.{layer}.{hook}" for layer in range(n_layers) for hook in HOOKS]


def test_the_architecture_list_is_the_issue_list():
    assert set(ARCHITECTURES) == set(EXPECTED_CLASS)


def test_boots_the_right_model_class(arch_model):
    arch, model = arch_model
    assert type(model.bridge.original_model).__name__ == EXPECTED_CLASS[arch]
    assert model.identity.architecture == EXPECTED_CLASS[arch]
    assert model.n_layers >= 2 and model.d_model == 64


def test_canonical_hooks_exist_for_every_layer(arch_model):
    _, model = arch_model
    missing = [name for name in canonical_names(model.n_layers) if name not in model.bridge.hook_dict]
    assert not missing
    assert f"blocks.{model.n_layers}.hook_resid_post" not in model.bridge.hook_dict


def test_run_with_cache_returns_exactly_the_filtered_hooks(arch_model, tokens):
    _, model = arch_model
    wanted = set(canonical_names(model.n_layers))
    with torch.no_grad():
        logits, cache = model.bridge.run_with_cache(tokens, names_filter=lambda name: name in wanted)
    assert set(cache.keys()) == wanted
    for name in wanted:
        assert cache[name].shape == (1, tokens.shape[1], model.d_model), name
        assert torch.isfinite(cache[name]).all(), name
    assert logits.shape == (1, tokens.shape[1], model.bridge.cfg.d_vocab)


def test_bridge_logits_equal_an_unbridged_hf_model(arch_model, tokens):
    arch, model = arch_model
    reference = tiny_hf_model(arch, seed=0)  # same config and seed, never touched by the bridge
    with torch.no_grad():
        expected = reference(tokens).logits
        got = model.bridge(tokens)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_hooks_hold_the_residual_stream_hf_reports(arch_model, tokens):
    """resid_post of layer L is HF's hidden state after layer L, and resid_pre + attn_out + mlp_out = resid_post."""
    arch, model = arch_model
    reference = tiny_hf_model(arch, seed=0)
    with torch.no_grad():
        hidden = reference(tokens, output_hidden_states=True).hidden_states
        _, cache = model.bridge.run_with_cache(tokens)
    last = model.n_layers - 1
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], hidden[0], atol=1e-5, rtol=0)
    for layer in range(last):  # HF's last hidden state has the final norm applied
        torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_post"], hidden[layer + 1], atol=1e-5, rtol=0)
    with torch.no_grad():
        normed = reference.model.norm(cache[f"blocks.{last}.hook_resid_post"])
    torch.testing.assert_close(normed, hidden[-1], atol=1e-5, rtol=0)
    for layer in range(model.n_layers):
        block = {hook: cache[f"blocks.{layer}.{hook}"] for hook in HOOKS}
        torch.testing.assert_close(block["hook_resid_pre"] + block["hook_attn_out"] + block["hook_mlp_out"],
                                   block["hook_resid_post"], atol=1e-5, rtol=0)


def test_seeds_give_different_weights_and_identities():
    a, b, again = tiny_model("qwen3", seed=0), tiny_model("qwen3", seed=1), tiny_model("qwen3", seed=0)
    assert a.identity.key != b.identity.key
    assert a.identity.key == again.identity.key
    tokens = torch.tensor([a.encode(TEXT)])
    with torch.no_grad():
        assert not torch.allclose(a.bridge(tokens), b.bridge(tokens))
