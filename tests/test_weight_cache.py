"""The converted-weights cache (activations.weight_cache) on tiny random models: entry keys, reuse, atomic writes,
damage detection and rebuild, opt-out. The real GGUF path is checked in tests/test_weight_cache_embedded.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from activations import weight_cache
from activations.tiny import tiny_hf_model, tiny_tokenizer

SHA = "ab" * 32
TEXTS = ["The Veth show distress when separated.", "Final verdict: do not proceed.", "<|im_start|>user\nhi<|im_end|>"]


class Converter:
    """Stands for the GGUF conversion: builds a fresh tiny model each call and counts the calls."""

    def __init__(self, seed: int = 0) -> None:
        self.calls = 0
        self.seed = seed

    def __call__(self):
        self.calls += 1
        return tiny_hf_model("llama", seed=self.seed), tiny_tokenizer(True)


def load(root: Path, convert: Converter, sha: str = SHA, dtype: str = "float32"):
    return weight_cache.load_or_convert(root, sha, dtype, getattr(torch, dtype), convert, label="tiny")


def assert_same_model(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(autouse=True)
def cache_on(monkeypatch):
    monkeypatch.delenv(weight_cache.OPT_OUT_ENV, raising=False)


def test_first_load_converts_and_caches_later_loads_read_the_cache(tmp_path):
    convert = Converter()
    model1, tok1 = load(tmp_path, convert)
    entry = weight_cache.entry_dir(tmp_path, SHA, "float32")
    manifest = json.loads((entry / weight_cache.MANIFEST).read_text())
    assert manifest["source_sha256"] == SHA and "model.safetensors" in manifest["files"]
    assert weight_cache.check_entry(entry, SHA).usable
    model2, tok2 = load(tmp_path, convert)
    assert convert.calls == 1
    assert_same_model(model1, model2)
    assert [tok1.encode(t) for t in TEXTS] == [tok2.encode(t) for t in TEXTS]
    # Loaded objects name their source, not the cache (TransformerLens re-reads a tokenizer from that path).
    assert tok2.name_or_path == tok2.init_kwargs["name_or_path"] == tok1.name_or_path == "tiny-bpe"
    assert model2.config.name_or_path == model1.config.name_or_path
    messages = [{"role": "user", "content": "Is it right?"}]
    assert tok1.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        tok2.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # The tiny reference is built with eager attention; a load picks transformers' default (as the GGUF load does).
    assert model1.config._attn_implementation == "eager"
    model2.set_attn_implementation("eager")
    ids = torch.tensor([tok1.encode(TEXTS[0])])
    assert torch.equal(model1(ids).logits, model2(ids).logits)
    # Nothing but the entry is left in the cache (no temp directory).
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]


def test_entry_is_keyed_by_source_sha_transformers_version_and_dtype(tmp_path, monkeypatch):
    import transformers

    base = weight_cache.entry_dir(tmp_path, SHA, "float32")
    assert weight_cache.entry_dir(tmp_path, "cd" * 32, "float32") != base
    assert weight_cache.entry_dir(tmp_path, SHA, "bfloat16") != base
    monkeypatch.setattr(transformers, "__version__", "0.0.1")
    assert weight_cache.entry_dir(tmp_path, SHA, "float32") != base
    # A different source file is never served another file's entry.
    convert_a, convert_b = Converter(seed=0), Converter(seed=1)
    model_a, _ = load(tmp_path, convert_a, sha="aa" * 32)
    model_b, _ = load(tmp_path, convert_b, sha="bb" * 32)
    assert convert_b.calls == 1
    assert not torch.equal(model_a.lm_head.weight, model_b.lm_head.weight)


@pytest.mark.parametrize("damage", ["garble", "truncate", "delete", "extra", "manifest", "no-manifest"])
def test_a_damaged_entry_is_detected_logged_and_rebuilt(tmp_path, caplog, damage):
    convert = Converter()
    reference, _ = load(tmp_path, convert)
    entry = weight_cache.entry_dir(tmp_path, SHA, "float32")
    weights = entry / "model.safetensors"
    if damage == "garble":  # same size, different bytes in the tensor data: loads fine, wrong numbers
        data = bytearray(weights.read_bytes())
        data[-100:-90] = bytes(10)
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "delete":
        weights.unlink()
    elif damage == "extra":
        (entry / "stray.bin").write_bytes(b"x")
    elif damage == "manifest":
        (entry / weight_cache.MANIFEST).write_text("{not json")
    else:  # a directory at the final name without a manifest is never trusted
        (entry / weight_cache.MANIFEST).unlink()
    assert not weight_cache.check_entry(entry, SHA).usable
    with caplog.at_level(logging.WARNING, logger=weight_cache.__name__):
        model, _ = load(tmp_path, convert)
    assert convert.calls == 2
    assert any("damaged" in r.message and "rebuilding" in r.message for r in caplog.records)
    assert weight_cache.check_entry(entry, SHA).usable
    assert_same_model(model, reference)
    assert_same_model(load(tmp_path, convert)[0], reference)
    assert convert.calls == 2


def test_an_entry_that_fails_to_load_is_rebuilt(tmp_path, caplog, monkeypatch):
    convert = Converter()
    load(tmp_path, convert)
    real = weight_cache.load_entry
    calls = []

    def broken(path, dtype):
        calls.append(path)
        if len(calls) == 1:
            raise ValueError("bad config")
        return real(path, dtype)

    monkeypatch.setattr(weight_cache, "load_entry", broken)
    with caplog.at_level(logging.WARNING, logger=weight_cache.__name__):
        load(tmp_path, convert)
    assert convert.calls == 2 and any("load failed" in r.message for r in caplog.records)
    load(tmp_path, convert)
    assert convert.calls == 2 and len(calls) == 2


def test_a_killed_writer_leaves_nothing_that_is_used(tmp_path, monkeypatch):
    convert = Converter()
    model, tok = convert()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the weights, before the tokenizer and manifest

    monkeypatch.setattr(type(tok), "save_pretrained", killed)
    entry = weight_cache.entry_dir(tmp_path, SHA, "float32")
    with pytest.raises(KeyboardInterrupt):
        weight_cache.save_entry(entry, model, tok, source_sha256=SHA, meta={})
    assert not entry.exists()
    assert not any(entry.parent.iterdir())  # the temp directory was removed too
    monkeypatch.undo()
    load(tmp_path, convert)
    assert convert.calls == 2  # converted, not served a half entry


def test_a_cache_that_cannot_be_written_does_not_fail_the_load(tmp_path, caplog, monkeypatch):
    convert = Converter()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(convert()[0]), "save_pretrained", disk_full)
    with caplog.at_level(logging.WARNING, logger=weight_cache.__name__):
        model, _ = load(tmp_path, convert)
    assert model is not None and any("could not write" in r.message for r in caplog.records)
    assert not weight_cache.entry_dir(tmp_path, SHA, "float32").exists()


def test_opt_out_converts_every_time_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(weight_cache.OPT_OUT_ENV, "1")
    convert = Converter()
    load(tmp_path, convert)
    load(tmp_path, convert)
    assert convert.calls == 2
    assert not (tmp_path / "converted").exists()


def test_quantised_weights_are_not_cached(tmp_path):
    class Quantised(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("blocks", torch.zeros(4, dtype=torch.uint8))

    entry = weight_cache.entry_dir(tmp_path, SHA, "float32")
    assert not weight_cache.save_entry(entry, Quantised(), tiny_tokenizer(True), source_sha256=SHA, meta={})
    assert not entry.exists()


def test_an_entry_written_meanwhile_by_another_process_is_kept(tmp_path):
    convert = Converter()
    entry = weight_cache.entry_dir(tmp_path, SHA, "float32")
    model, tok = convert()
    assert weight_cache.save_entry(entry, model, tok, source_sha256=SHA, meta={"writer": "first"})
    other, _ = Converter(seed=1)()
    assert weight_cache.save_entry(entry, other, tok, source_sha256=SHA, meta={"writer": "second"})
    assert json.loads((entry / weight_cache.MANIFEST).read_text())["writer"] == "first"
    assert weight_cache.check_entry(entry, SHA).usable
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]
