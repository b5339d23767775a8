"""A model split across CPU memory and disk (accelerate offload, ``--device-map``) runs our hooks as the whole model.

A tiny Llama saved as a local weights directory is loaded twice: whole, and with its second and third blocks and the
unembedding offloaded to disk (accelerate keeps meta placeholders and reads the weights in for each call). Extraction
into the store and steered generation must give what the whole model gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activations.extract import extract_and_load
from activations.models import load_model, parse_device_map, parse_max_memory
from activations.selection import Selection
from common.errors import ConfigError
from interventions.steering import Steer, generate_steered, last_logits, plan_for, steered_forward

TEXTS = ["The Veth show distress when separated.", "Step 1: list the facts. Step 2: infer interests.", "No."]
SPLIT = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
         "model.layers.2": "disk", "model.norm": "cpu", "lm_head": "disk"}


@pytest.fixture(scope="module")
def models(save_tiny, tmp_path_factory):
    path = save_tiny("llama")
    whole = load_model(str(path))
    split = load_model(str(path), device_map=SPLIT, offload_folder=tmp_path_factory.mktemp("offload"))
    return whole, split


def test_the_split_model_really_is_on_disk(models):
    _, split = models
    assert split.bridge.original_model.hf_device_map == SPLIT
    on_meta = [n for n, p in split.bridge.original_model.named_parameters() if p.device.type == "meta"]
    assert any("layers.1." in n for n in on_meta) and any("lm_head" in n for n in on_meta)
    assert split.device.type == "cpu"  # inputs go to the CPU, not to the meta placeholders


@pytest.mark.parametrize("attention", ["sdpa", "bridge"])
def test_extraction_equals_the_whole_model(models, tmp_path, attention):
    whole, split = models
    sel = Selection(hooks=("resid_post", "attn_out"), layers="all", positions=("last", "mean"))
    views = [extract_and_load(m, TEXTS, sel, tmp_path / name, attention=attention, progress=False)
             for m, name in ((whole, "whole"), (split, "split"))]
    for hook in ("resid_post", "attn_out"):
        for layer in range(whole.n_layers):
            for rule in ("last", "mean"):
                a, b = (v.matrix(hook, layer, rule).X for v in views)
                np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6, err_msg=f"{hook} {layer} {rule}")


def test_steering_equals_the_whole_model(models):
    whole, split = models
    rng = np.random.default_rng(0)
    rows = [[Steer(rng.standard_normal(whole.d_model), 4.0, (1, 2), absolute=True)], []]
    prompts = [TEXTS[0], TEXTS[1]]
    results = [generate_steered(m, prompts, plan_for(m, rows), max_new_tokens=8, stop_at_eos=False)
               for m in (whole, split)]
    assert [g.token_ids for g in results[1]] == [g.token_ids for g in results[0]]
    ids = [whole.encode(p) for p in prompts]
    logits = [torch.stack(steered_forward(m, ids, plan_for(m, rows), last_logits)) for m in (whole, split)]
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-5, atol=1e-5)
    unsteered = torch.stack(steered_forward(whole, ids, plan_for(whole, [[], []]), last_logits))
    assert (logits[0][0] - unsteered[0]).abs().max() > 1e-3  # the vector really changed row 0


def test_device_map_forms():
    assert parse_device_map("auto") == "auto"
    assert parse_device_map('{"model.layers.0": "disk", "lm_head": "cpu"}') == {"model.layers.0": "disk",
                                                                                 "lm_head": "cpu"}
    assert parse_max_memory("cpu=20GiB, 0=70GiB") == {"cpu": "20GiB", 0: "70GiB"}
    with pytest.raises(ConfigError, match="mixes a GPU with cpu/disk offload"):
        parse_device_map({"model.layers.0": 0, "model.layers.1": "disk"})
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_device_map('{"model.layers.0": disk}')
    with pytest.raises(ConfigError, match="neither a strategy"):
        parse_device_map("bogus")
    with pytest.raises(ConfigError, match="not a device"):
        parse_device_map({"model.layers.0": "meta"})
    with pytest.raises(ConfigError, match="DEVICE=SIZE"):
        parse_max_memory("cpu20GiB")
