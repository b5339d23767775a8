"""Bypassing unhooked bridge wrappers: same logits bit for bit, every hook still fires, everything put back."""

from __future__ import annotations

import pytest
import torch

from activations.bypass import Bypass, bypass_unhooked
from activations.fused_attention import hf_attention
from activations.generation import generate_detailed
from activations.tiny import ARCHITECTURES, tiny_model

TEXTS = ["The Veth show distress when separated.", "Final verdict?"]


def hf_tree(model):
    return [(name, id(module)) for name, module in model.bridge.original_model.named_modules()]


def batch(model):
    rows = [model.encode(t) for t in TEXTS]
    width = max(map(len, rows))
    tokens = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return tokens, mask


@pytest.mark.parametrize("attention", ["sdpa", "bridge"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_same_logits_bit_for_bit_and_everything_put_back(arch, attention):
    model = tiny_model(arch)
    tokens, mask = batch(model)
    before = hf_tree(model)
    fused = hf_attention(model.bridge) if attention == "sdpa" else torch.no_grad()
    with torch.no_grad(), fused:
        ref = model.bridge(tokens, attention_mask=mask, return_type="logits")
        with bypass_unhooked(model.bridge) as bypass:
            assert bypass.slots and hf_tree(model) != before  # something was bypassed
            got = model.bridge(tokens, attention_mask=mask, return_type="logits")
    assert torch.equal(got, ref)
    assert hf_tree(model) == before


def test_put_back_after_an_error_inside():
    model = tiny_model("llama")
    before = hf_tree(model)
    with pytest.raises(RuntimeError, match="boom"):
        with bypass_unhooked(model.bridge):
            raise RuntimeError("boom")
    assert hf_tree(model) == before


def perturb(calls):
    def hook(x, hook):
        calls.append(tuple(x.shape))
        return 3.0 * torch.roll(x, 1, dims=-1)
    return hook


# Points inside wrappers the bypass removes when nothing is hooked: a projection, a norm's inner hook, the MLP's
# gate, an alias (hook_mlp_out is mlp.hook_out), the final norm, and a rotary hook inside attention.
INSIDE = ["blocks.1.attn.q.hook_out", "blocks.1.ln2.hook_normalized", "blocks.1.mlp.gate.hook_out",
          "blocks.1.hook_mlp_out", "ln_final.hook_out", "blocks.0.attn.hook_rot_q"]


def generate_logits(model, hooks):
    """Greedy generation with ``hooks``; the logits of every pass (the logits hook is never bypassed)."""
    logits: list[torch.Tensor] = []
    record = ("unembed.hook_out", lambda x, hook: logits.append(x.clone()))
    with model.bridge.hooks(fwd_hooks=[*hooks, record]):
        generate_detailed(model, TEXTS, max_new_tokens=6, stop_at_eos=False)
    return torch.stack(logits)


@pytest.mark.parametrize("point", INSIDE)
def test_a_hook_inside_a_bypassed_region_fires_and_acts(point, monkeypatch):
    model = tiny_model("llama", seed=0)
    plain = generate_logits(model, [])
    calls: list[tuple[int, ...]] = []
    hooked = generate_logits(model, [(point, perturb(calls))])
    with monkeypatch.context() as patch:  # the reference: the same hook with nothing bypassed
        patch.setattr(Bypass, "apply", lambda self: None)
        reference = generate_logits(model, [(point, perturb(calls))])
    assert len(calls) == 2 * 6  # the prompt and 5 cached steps, in each of the two runs
    assert torch.equal(hooked, reference)
    assert not torch.allclose(hooked, plain, atol=1e-3)


def test_a_hook_added_during_generation_fires_from_the_next_pass():
    model = tiny_model("llama", seed=0)
    late: list[tuple[int, ...]] = []
    passes = []

    def add_later(logits, hook):  # on the logits (never bypassed): adds a hook inside block 0 after two passes
        passes.append(1)
        if len(passes) == 2:
            model.bridge.blocks[0].mlp.hook_out.add_hook(perturb(late))
        return logits

    try:
        with model.bridge.hooks(fwd_hooks=[("unembed.hook_out", add_later)]):
            generate_detailed(model, TEXTS, max_new_tokens=6, stop_at_eos=False)
    finally:
        model.bridge.blocks[0].mlp.hook_out.remove_hooks()
    assert len(passes) == 6 and len(late) == 4  # passes 3 to 6


def test_a_hooked_block_keeps_its_wrapper_and_its_unhooked_children_are_bypassed():
    model = tiny_model("llama")
    blocks = model.bridge.blocks
    with model.bridge.hooks(fwd_hooks=[("blocks.1.hook_resid_post", lambda x, hook: x)]):
        with bypass_unhooked(model.bridge) as bypass:
            layers = model.bridge.original_model.model.layers  # what the HF model runs
            assert layers[1] is blocks[1] and layers[0] is blocks[0].original_component
            assert layers[1].original_component.mlp is blocks[1].mlp.original_component
            assert bypass.slots
            # The bridge's own tree is untouched (its blocks list is the HF layers list outside the block).
            assert model.bridge.blocks is blocks and type(blocks[0].mlp).__name__ == "GatedMLPBridge"
    assert model.bridge.original_model.model.layers is blocks


def test_a_global_module_hook_turns_the_bypass_off():
    model = tiny_model("llama")
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
    try:
        with bypass_unhooked(model.bridge) as bypass:
            assert not bypass.slots
    finally:
        handle.remove()
