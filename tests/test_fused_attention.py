"""Fused attention for extraction: same block-level activations as the bridge's own attention, always restored."""

from __future__ import annotations

import pytest
import torch

from activations.fused_attention import hf_attention
from activations.tiny import ARCHITECTURES, tiny_model

TEXT = "The Veth show distress when separated, so staying together matters to them. Final verdict: do not proceed."


def block_hooks(name: str) -> bool:
    return name.endswith(("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out"))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_block_activations_match_and_everything_is_restored(arch: str) -> None:
    model = tiny_model(arch)
    hf = model.bridge.original_model
    ids = torch.tensor([model.encode(TEXT)])
    with torch.inference_mode():
        _, ref = model.bridge.run_with_cache(ids, names_filter=block_hooks)
        with hf_attention(model.bridge) as used:
            inside = hf.config._attn_implementation
            _, fused = model.bridge.run_with_cache(ids, names_filter=block_hooks)
        _, after = model.bridge.run_with_cache(ids, names_filter=lambda n: n.endswith("attn.hook_pattern"))
    # GPT-OSS's attention sinks have no SDPA path in transformers: it keeps the bridge's attention.
    assert used == ("bridge" if arch == "gpt_oss" else "sdpa")
    assert inside == ("eager" if arch == "gpt_oss" else "sdpa")
    assert set(fused.keys()) == set(ref.keys()) and len(ref.keys()) == 4 * model.n_layers
    for name in ref.keys():
        torch.testing.assert_close(fused[name], ref[name], atol=2e-5, rtol=1e-5, msg=name)
    assert hf.config._attn_implementation == "eager"
    assert not any("forward" in m.__dict__ for m in model.bridge.modules())
    assert len(after.keys()) == model.n_layers  # the bridge's own attention (and its pattern hook) is back


def test_restored_after_an_error_inside() -> None:
    model = tiny_model("llama")
    with pytest.raises(RuntimeError, match="boom"):
        with hf_attention(model.bridge):
            assert any("forward" in m.__dict__ for m in model.bridge.modules())
            raise RuntimeError("boom")
    assert model.bridge.original_model.config._attn_implementation == "eager"
    assert not any("forward" in m.__dict__ for m in model.bridge.modules())


def test_fused_attention_is_used_by_the_forward_pass() -> None:
    model = tiny_model("llama")
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    ids = torch.tensor([model.encode(TEXT)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
        with torch.inference_mode():
            model.bridge(ids)
            assert calls == []  # the bridge's step-by-step attention
            with hf_attention(model.bridge):
                model.bridge(ids)
    assert len(calls) == model.n_layers
