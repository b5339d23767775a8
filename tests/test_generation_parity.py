"""Regression test: generation through the bridge equals plain Hugging Face greedy generation, token for token.

transformers 5.24 + transformer-lens 4.3 broke bridged generation with the KV cache from the second token on
(/work/shared/notes/models.md); pyproject pins transformers<5.24. These tests fail if that comes back, on every tiny
architecture we support and on the embedded SmolLM2 with its chat template.
"""

from __future__ import annotations

import copy

import pytest
import torch

from activations.generation import generate_detailed
from activations.models import bridge_hf_model
from common.prompts import PromptSource
from activations.prompts import render_prompt
from activations.tiny import ARCHITECTURES, tiny_config, tiny_tokenizer

N_NEW = 24  # longer than the tiny Gemma 3 / GPT-OSS sliding window (16), so windowed attention is exercised
QUESTIONS = ["The Veth show distress when separated.", "Step 1: list the facts. Step 2: infer interests."]


def hf_greedy(hf_model, ids: list[int], n_new: int, eos: list[int] | None = None) -> list[int]:
    """Plain HF greedy continuation of one unpadded prompt."""
    with torch.no_grad():
        out = hf_model.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), do_sample=False,
            max_new_tokens=n_new, min_new_tokens=0 if eos else n_new, eos_token_id=eos, pad_token_id=0,
        )
    new = out[0, len(ids):].tolist()
    if eos:  # HF pads finished rows and keeps the EOS; compare the text before it
        cut = next((i for i, t in enumerate(new) if t in eos), len(new))
        new = new[:cut]
    return new


def plain_and_bridged(arch: str):
    """Two copies of the same random tiny model: one left plain, one bridged (bridging wraps modules in place)."""
    from transformers import AutoModelForCausalLM

    tokenizer = tiny_tokenizer(True)
    torch.manual_seed(0)
    hf_model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tokenizer)), attn_implementation="eager")
    plain = copy.deepcopy(hf_model).eval()
    return plain, bridge_hf_model(hf_model, tokenizer, name=f"tiny-{arch}")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_bridged_greedy_equals_hf_greedy(arch):
    plain, model = plain_and_bridged(arch)
    prompts = [render_prompt(PromptSource(q, system="Be brief."), model.tokenizer, model.spec) for q in QUESTIONS]
    ids = [model.encode(p) for p in prompts]
    assert len(ids[0]) != len(ids[1])  # so the batch below is really padded
    expected = [hf_greedy(plain, i, N_NEW) for i in ids]

    ours = generate_detailed(model, prompts, max_new_tokens=N_NEW, batch_size=2, stop_at_eos=False)
    assert [g.token_ids for g in ours] == expected

    for prompt_ids, want in zip(ids, expected):  # the bridge's own generate, with its KV cache, unbatched
        out = model.bridge.generate(torch.tensor([prompt_ids]), max_new_tokens=N_NEW, do_sample=False,
                                    stop_at_eos=False, use_past_kv_cache=True, verbose=False)
        assert out[0, len(prompt_ids):].tolist() == want


@pytest.mark.slow
def test_smollm2_chat_greedy_equals_hf_and_is_coherent():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from activations.models import packaged_file
    from activations.registry import get_spec

    spec = get_spec("smollm2-135m-instruct")
    path = packaged_file(spec)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    hf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    plain = copy.deepcopy(hf_model).eval()
    model = bridge_hf_model(hf_model, tokenizer, name=spec.hub_id)

    prompts = [
        render_prompt(PromptSource("What is the capital of France?"), tokenizer, model.spec),
        render_prompt(PromptSource("Name one colour of the sky on a clear day.", system="Answer in one sentence."),
                      tokenizer, model.spec),
    ]
    ours = generate_detailed(model, prompts, max_new_tokens=32, batch_size=2)
    eos = [tokenizer.eos_token_id]
    for prompt, got in zip(prompts, ours):
        assert got.token_ids == hf_greedy(plain, model.encode(prompt), 32, eos=eos)
    assert "Paris" in ours[0].text
    assert "<|im_end|>" not in ours[0].text and "<|im_start|>" not in ours[0].text
