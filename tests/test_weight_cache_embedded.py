"""The converted-weights cache on the real embedded SmolLM2 GGUF: a cached load is the direct GGUF load, exactly.

Slow: loads SmolLM2 four times (direct with the cache off, first load building the cache, cached load, and a load
after the cache is garbled), all with the cache in a temporary directory and the hub switched off; then Gemma 3
three times (direct, building, cached).
"""

from __future__ import annotations

import logging

import pytest
import torch

import activations.models as models
from activations import weight_cache
from activations.models import load_model
from activations.prompts import render_prompt
from activations.registry import get_spec
from common.prompts import PromptSource

pytestmark = pytest.mark.slow

NAME = "smollm2-135m-instruct"
TEXTS = [
    "The Veth show distress when separated, so staying together matters to them.",
    "Final verdict: do not proceed.  Tabs\tand\nnewlines, émigré, 日本語, 🙂",
    "<|im_start|>user\nIs it right?<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    """Direct, first (building) and cached loads of SmolLM2, and the spy's record of which loads read the cache."""
    from huggingface_hub import constants

    cache = tmp_path_factory.mktemp("veth-cache")
    read_from_cache = []
    real_load_entry = weight_cache.load_entry

    def spy(path, dtype):
        read_from_cache.append(path)
        return real_load_entry(path, dtype)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        patch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hf-cache")))
        patch.setattr(models, "CACHE_DIR", cache)
        patch.setattr(weight_cache, "load_entry", spy)
        patch.setenv(weight_cache.OPT_OUT_ENV, "1")
        direct = load_model(NAME)
        assert not (cache / "converted").exists()
        patch.delenv(weight_cache.OPT_OUT_ENV)
        first = load_model(NAME)
        assert read_from_cache == []
        cached = load_model(NAME)
        assert len(read_from_cache) == 1
    return {"direct": direct, "first": first, "cached": cached, "cache": cache, "spy": read_from_cache}


def entry(cache):
    return weight_cache.entry_dir(cache, get_spec(NAME).sha256, "float32")


def assert_same_weights(a, b) -> None:
    for module_a, module_b in ((a.bridge.original_model, b.bridge.original_model), (a.bridge, b.bridge)):
        sa, sb = module_a.state_dict(), module_b.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def test_cached_load_has_every_parameter_equal(loads):
    assert_same_weights(loads["direct"], loads["cached"])
    assert_same_weights(loads["direct"], loads["first"])


def test_cached_tokenizer_behaves_identically(loads):
    direct, cached = loads["direct"], loads["cached"]
    for a, b in ((direct.tokenizer, cached.tokenizer), (direct.bridge.tokenizer, cached.bridge.tokenizer)):
        assert len(a) == len(b) and a.get_vocab() == b.get_vocab() and a.name_or_path == b.name_or_path
        assert a.add_bos_token == b.add_bos_token and a.padding_side == b.padding_side
        assert a.all_special_tokens == b.all_special_tokens
        assert (a.bos_token_id, a.eos_token_id, a.pad_token_id, a.unk_token_id) == \
            (b.bos_token_id, b.eos_token_id, b.pad_token_id, b.unk_token_id)
        assert a.chat_template == b.chat_template
        for text in TEXTS:
            assert a(text)["input_ids"] == b(text)["input_ids"], text
            assert a(text, add_special_tokens=False)["input_ids"] == b(text, add_special_tokens=False)["input_ids"]
            ids = a(text)["input_ids"]
            assert a.decode(ids) == b.decode(ids)
            assert a.decode(ids, skip_special_tokens=True) == b.decode(ids, skip_special_tokens=True)
    for text in TEXTS:
        assert direct.encode(text) == cached.encode(text)
        assert direct.bridge.to_tokens(text).tolist() == cached.bridge.to_tokens(text).tolist()
    source = PromptSource(system="You are careful.", user="Should the Veth be separated?")
    rendered = render_prompt(source, direct.tokenizer, direct.spec)
    assert rendered == render_prompt(source, cached.tokenizer, cached.spec) and "<|im_start|>" in rendered
    assert direct.encode(rendered) == cached.encode(rendered)


def test_cached_load_gives_identical_logits(loads):
    direct, cached = loads["direct"], loads["cached"]
    tokens = direct.bridge.to_tokens(
        render_prompt(PromptSource(user="Is it right to separate them?"), direct.tokenizer, direct.spec))
    with torch.no_grad():
        expected = direct.bridge(tokens)
        got = cached.bridge(tokens)
        assert torch.equal(expected, got)
        assert torch.equal(direct.bridge.original_model(tokens).logits, cached.bridge.original_model(tokens).logits)


def test_identity_is_unchanged_by_the_cache(loads):
    direct, first, cached = loads["direct"], loads["first"], loads["cached"]
    assert direct.identity == first.identity == cached.identity
    assert cached.identity.sha256 == get_spec(NAME).sha256
    assert cached.identity.location == f"{get_spec(NAME).package}/{get_spec(NAME).file}"
    assert cached.identity.key == direct.identity.key and cached.spec == direct.spec


def test_garbled_cache_file_is_detected_and_rebuilt(loads, monkeypatch, caplog):
    path = entry(loads["cache"])
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # inside the tensor data: would still load, wrongly
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(models, "CACHE_DIR", loads["cache"])
    monkeypatch.delenv(weight_cache.OPT_OUT_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger=weight_cache.__name__):
        rebuilt = load_model(NAME)
    assert any("damaged" in r.message and "model.safetensors" in r.message for r in caplog.records)
    assert weight_cache.check_entry(path, get_spec(NAME).sha256).usable
    assert_same_weights(loads["direct"], rebuilt)
    assert rebuilt.identity == loads["direct"].identity


def test_gemma_cached_load_equals_direct_load(tmp_path, monkeypatch):
    """Gemma 3 (a second architecture and tokenizer): weights, tokens, logits and identity, direct vs cached."""
    real = weight_cache.load_or_convert
    # The Gemma GGUF is assembled into CACHE_DIR, so redirect only the converted-weights cache to tmp_path.
    monkeypatch.setattr(weight_cache, "load_or_convert", lambda root, *args, **kw: real(tmp_path, *args, **kw))
    monkeypatch.setenv(weight_cache.OPT_OUT_ENV, "1")
    direct = load_model("gemma-3-270m")
    monkeypatch.delenv(weight_cache.OPT_OUT_ENV)
    load_model("gemma-3-270m")  # builds the entry
    cached = load_model("gemma-3-270m")
    assert weight_cache.check_entry(weight_cache.entry_dir(tmp_path, get_spec("gemma-3-270m").sha256, "float32"),
                                    get_spec("gemma-3-270m").sha256).usable
    assert_same_weights(direct, cached)
    assert direct.identity == cached.identity
    for text in TEXTS:
        assert direct.encode(text) == cached.encode(text)
        assert direct.bridge.to_tokens(text).tolist() == cached.bridge.to_tokens(text).tolist()
    tokens = direct.bridge.to_tokens(TEXTS[0])
    with torch.no_grad():
        assert torch.equal(direct.bridge(tokens), cached.bridge(tokens))
