"""The embedded real models (PyPI wheels): SmolLM2-135M-Instruct and gemma-3-270m base, loaded offline.

Slow (each load takes 15-90 s on 2 CPU cores): each model is loaded once per module, with the hub switched off and
an empty hub cache, so nothing can come from anywhere but the installed wheels.
"""

from __future__ import annotations

import pytest
import torch

import activations.models as models
from activations.generation import generate
from activations.models import load_model, packaged_file, sha256_file
from common.prompts import PromptSource, split_response
from activations.prompts import render_prompt
from activations.registry import get_spec

pytestmark = pytest.mark.slow


def load_offline(name: str, tmp_path_factory: pytest.TempPathFactory):
    from huggingface_hub import constants

    empty = tmp_path_factory.mktemp("empty-hf-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        patch.setattr(constants, "HF_HUB_CACHE", str(empty))
        return load_model(name)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    return load_offline("smollm2-135m-instruct", tmp_path_factory)


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    return load_offline("gemma-3-270m", tmp_path_factory)


def test_smollm2_loads_offline_with_its_verified_identity(smollm2):
    spec = get_spec("smollm2-135m-instruct")
    identity = smollm2.identity
    assert (identity.source, identity.sha256, identity.dtype) == ("packaged", spec.sha256, "float32")
    assert identity.location == f"{spec.package}/{spec.file}"
    assert (identity.architecture, smollm2.n_layers, smollm2.d_model) == ("LlamaForCausalLM", 30, 576)
    assert sha256_file(packaged_file(spec)) == spec.sha256
    assert all(f"blocks.{layer}.hook_resid_post" in smollm2.bridge.hook_dict for layer in range(30))


def test_smollm2_answers_a_chat_question(smollm2):
    prompt = render_prompt(PromptSource(user="What is the capital of France?"), smollm2.tokenizer, smollm2.spec)
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    [reply] = generate(smollm2, [prompt], max_new_tokens=16)
    assert "Paris" in split_response(reply).answer, reply


def test_gemma_is_an_assembled_verified_base_model(gemma):
    spec = get_spec("gemma-3-270m")
    assert (gemma.spec.kind, gemma.spec.prompt_format) == ("base", "document")
    assert (gemma.identity.sha256, gemma.identity.architecture) == (spec.sha256, "Gemma3ForCausalLM")
    assert (gemma.n_layers, gemma.d_model) == (18, 640)
    path = packaged_file(spec)  # the wheels ship parts; the joined file lives in the toolkit's cache
    assert path.parent == models.CACHE_DIR and sha256_file(path) == spec.sha256


def test_gemma_continues_a_document(gemma):
    document = "Question: What is the capital of France?\nAnswer:"
    assert render_prompt(PromptSource(user="unused", document=document), gemma.tokenizer, gemma.spec) == document
    assert gemma.encode(document)[0] == gemma.tokenizer.bos_token_id
    [continuation] = generate(gemma, [document], max_new_tokens=6)
    assert "Paris" in continuation, continuation
    with torch.no_grad():  # and the bridge exposes its residual stream like every other architecture
        _, cache = gemma.bridge.run_with_cache(torch.tensor([gemma.encode(document)]),
                                               names_filter=lambda name: name == "blocks.17.hook_resid_post")
    assert cache["blocks.17.hook_resid_post"].shape[-1] == 640
