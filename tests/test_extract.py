"""Extraction into the store with tiny random models: exact values, padding, reuse, resume and bad input."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from activations.dataset import ActivationView, load_activations
from common.errors import ConfigError, ToolkitError
from activations.extract import InputTextError, extract, extract_and_load, resolve_items
from activations.models import LoadedModel
from activations.selection import HOOKS, Item, Selection, SelectionError
from activations.store import ActivationStore, MissingActivationsError, StoreMismatchError, StoreWriteError
from activations.tiny import ARCHITECTURES, tiny_model

TEXTS = [
    "The Veth show distress when separated, so staying together matters to them.",
    "Step 1: list the facts.",
    "Using the Veth as unpaid labour is unjustifiable; the extraction quota can wait. Final verdict: do not proceed.",
    "Step 2: infer interests. Step 3: weigh them.",
    "No.",
]
VERDICT = Item.find(TEXTS[2], "do not proceed")
EVERY_RULE = ("last", "mean", "all", "marked:last", "marked:mean", "marked:all")


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return tiny_model("llama")


class ForwardCounter:
    """Counts bridge forward passes and the texts they carried, independently of the extractor's own stats."""

    def __init__(self, model: LoadedModel) -> None:
        self.calls, self.rows = 0, 0
        self.handle = model.bridge.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        self.calls += 1
        self.rows += int(args[0].shape[0])

    def close(self) -> None:
        self.handle.remove()


@pytest.fixture
def counter(model: LoadedModel):
    count = ForwardCounter(model)
    yield count
    count.close()


def reference(model: LoadedModel, text: str) -> dict[str, torch.Tensor]:
    """Full-sequence activations of one unpadded text from the bridge's own run_with_cache."""
    ids = torch.tensor([model.encode(text)])
    with torch.inference_mode():
        _, cache = model.bridge.run_with_cache(ids, names_filter=lambda name: name.endswith(
            tuple(f"hook_{h}" for h in HOOKS)))
    return {name: cache[name][0].float() for name in cache.keys()}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("attention", ["sdpa", "bridge"])
def test_stored_rows_equal_run_with_cache(model: LoadedModel, tmp_path: Path, attention: str) -> None:
    items = [TEXTS[0], VERDICT, TEXTS[4]]
    marked = [Item(TEXTS[0], (4, 8)), VERDICT, Item(TEXTS[4], (0, 2))]
    sel = Selection(hooks=HOOKS, layers="all", positions=EVERY_RULE)
    view = extract_and_load(model, marked, sel, tmp_path, batch_size=3, attention=attention, progress=False)
    resolved = resolve_items(model, items + marked)
    for i, item in enumerate(marked):
        ref = reference(model, item.text)
        start, end = resolved[i].scope
        span_start, span_end = resolved[len(items) + i].span
        for hook in HOOKS:
            for layer in range(model.n_layers):
                full = ref[f"blocks.{layer}.hook_{hook}"]
                expected = {"last": full[end - 1:end], "mean": full[start:end].mean(0, keepdim=True),
                            "all": full[start:end], "marked:last": full[span_end - 1:span_end],
                            "marked:mean": full[span_start:span_end].mean(0, keepdim=True),
                            "marked:all": full[span_start:span_end]}
                for rule, want in expected.items():
                    got = view.matrix(hook, layer, rule)
                    rows = got.X[got.groups == i]
                    np.testing.assert_allclose(rows, want.numpy(), atol=1e-5, rtol=1e-5,
                                               err_msg=f"{hook} L{layer} {rule} item {i}")


def test_marked_span_maps_to_the_right_tokens(model: LoadedModel) -> None:
    ids = model.encode(VERDICT.text)
    (resolved,) = resolve_items(model, [VERDICT])
    start, end = resolved.span
    inside = model.tokenizer.decode(ids[start:end])
    assert inside.strip() == "do not proceed"
    assert "proceed" not in model.tokenizer.decode(ids[:start])
    assert model.tokenizer.decode(ids[end:]) == "."
    # Markers give the same span as finding the substring.
    marked = Item.from_markers(VERDICT.text.replace("do not proceed", "[[do not proceed]]"))
    assert resolve_items(model, [marked])[0] == resolved


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_padded_batch_equals_single_text(arch: str, tmp_path: Path) -> None:
    model = tiny_model(arch)
    sel = Selection(hooks=HOOKS, positions=("last", "mean", "all"))
    short = TEXTS[1]
    alone = extract_and_load(model, [short], sel, tmp_path / "alone", batch_size=1, progress=False)
    # Two longer texts force right padding of the short one in the same batch.
    batched = extract_and_load(model, [TEXTS[2], short, TEXTS[0]], sel, tmp_path / "batched", batch_size=3,
                               progress=False)
    assert batched.stats.n_forward == 1
    for hook in HOOKS:
        for layer in range(model.n_layers):
            for rule in ("last", "mean", "all"):
                a = alone.matrix(hook, layer, rule).X
                b = batched.matrix(hook, layer, rule)
                np.testing.assert_allclose(b.X[b.groups == 1], a, atol=1e-4, rtol=1e-4,
                                           err_msg=f"{arch} {hook} L{layer} {rule}")


def test_second_run_does_no_forward_pass(model: LoadedModel, tmp_path: Path, counter: ForwardCounter) -> None:
    sel = Selection(hooks=("resid_post", "mlp_out"), positions=("last", "mean"))
    first = extract_and_load(model, TEXTS, sel, tmp_path, batch_size=2, progress=False)
    assert (counter.calls, counter.rows) == (3, 5)
    assert first.stats.n_cells_computed == 5 * 2 * 2 * model.n_layers
    before = snapshot(tmp_path)
    second = extract_and_load(model, TEXTS, sel, tmp_path, batch_size=2, progress=False)
    assert (counter.calls, counter.rows) == (3, 5)
    assert first.stats.attention == "sdpa" and second.stats.attention is None
    assert second.stats.n_forward == 0 and second.stats.n_cells_computed == 0
    assert second.stats.n_cells_cached == first.stats.n_cells_computed
    assert snapshot(tmp_path) == before  # not even an index line
    np.testing.assert_array_equal(first.matrix("mlp_out", 1, "mean").X, second.matrix("mlp_out", 1, "mean").X)


def test_new_texts_and_layers_compute_only_what_is_missing(model: LoadedModel, tmp_path: Path,
                                                          counter: ForwardCounter) -> None:
    sel = Selection(layers=[0, 1])
    extract(model, TEXTS[:2], sel, tmp_path, batch_size=8, progress=False)
    assert counter.rows == 2
    stats = extract(model, TEXTS, sel, tmp_path, batch_size=8, progress=False)
    assert counter.rows == 5 and stats.n_texts_computed == 3
    assert (stats.n_cells_cached, stats.n_cells_computed) == (4, 6)
    # A new layer for the same texts: every text runs once more, but only layer 2 is written.
    stats = extract(model, TEXTS, Selection(layers="all"), tmp_path, batch_size=8, progress=False)
    assert counter.rows == 10 and (stats.n_cells_cached, stats.n_cells_computed) == (10, 5)
    store = ActivationStore.open(tmp_path)
    assert store.stats().n_cells == 15  # no row stored twice
    view = ActivationView(store, TEXTS)
    fresh = extract_and_load(model, TEXTS, Selection(layers="all"), tmp_path / "fresh", progress=False)
    for layer in range(3):
        np.testing.assert_allclose(view.matrix("resid_post", layer).X, fresh.matrix("resid_post", layer).X,
                                   atol=1e-5)


def test_duplicate_texts_are_computed_once(model: LoadedModel, tmp_path: Path, counter: ForwardCounter) -> None:
    view = extract_and_load(model, [TEXTS[0], TEXTS[1], TEXTS[0]], Selection(), tmp_path, labels=[1, 0, 1],
                            progress=False)
    assert counter.rows == 2 and view.stats.n_texts == 2
    m = view.matrix("resid_post", 2, "last")
    assert m.X.shape == (3, model.d_model)
    np.testing.assert_array_equal(m.X[0], m.X[2])
    np.testing.assert_array_equal(m.y, [1, 0, 1])


def test_forward_stops_after_the_last_requested_layer(model: LoadedModel, tmp_path: Path) -> None:
    reached = []
    handle = model.bridge.blocks[model.n_layers - 1].register_forward_pre_hook(lambda *a: reached.append(1))
    try:
        extract(model, TEXTS, Selection(layers=[0, 1]), tmp_path, progress=False)
        assert reached == []
        extract(model, TEXTS, Selection(hooks="resid_pre", layers=[model.n_layers - 1]), tmp_path, progress=False)
        assert reached == [1]
    finally:
        handle.remove()


@pytest.mark.parametrize("dtype, tol", [("float16", 2e-3), ("bfloat16", 2e-2)])
def test_half_precision_round_trip(model: LoadedModel, tmp_path: Path, dtype: str, tol: float) -> None:
    sel = Selection(positions=("last", "all"))
    full = extract_and_load(model, TEXTS, sel, tmp_path, progress=False)
    half = extract_and_load(model, TEXTS, sel, tmp_path, storage_dtype=dtype, progress=False)
    assert half.stats.n_forward > 0  # the storage dtype is part of the key
    for rule in ("last", "all"):
        a, b = full.matrix("resid_post", 1, rule).X, half.matrix("resid_post", 1, rule).X
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max())
    assert half.stats.n_bytes_written < 0.6 * full.stats.n_bytes_written


def test_float16_overflow_is_an_error(tmp_path: Path) -> None:
    model = tiny_model("llama", seed=3)
    with torch.no_grad():
        model.bridge.original_model.model.embed_tokens.weight.mul_(1e7)
    with pytest.raises(ToolkitError, match="float16's range.*bfloat16"):
        extract(model, TEXTS[:1], Selection(hooks="resid_pre", layers=[0]), tmp_path, storage_dtype="float16",
                progress=False)


def test_reading_without_the_model(model: LoadedModel, tmp_path: Path) -> None:
    items = [TEXTS[0], VERDICT]
    view = extract_and_load(model, items, Selection(positions="last", layers=[1]), tmp_path, labels=["a", "b"],
                            progress=False)
    marked = extract_and_load(model, [VERDICT], Selection(positions="marked:mean", layers=[1]), tmp_path,
                              progress=False)
    cold = load_activations(tmp_path, items, labels=["a", "b"])
    got, want = cold.matrix("resid_post", 1, "last"), view.matrix("resid_post", 1, "last")
    np.testing.assert_array_equal(got.X, want.X)
    assert list(got.y) == ["a", "b"] and got.model["key"] == model.identity.key
    assert cold.available_layers("resid_post", "last") == [1]
    with pytest.raises(MissingActivationsError, match="never extracted"):
        load_activations(tmp_path, ["a text nobody ran"])
    with pytest.raises(MissingActivationsError, match="resid_post layer 0"):
        cold.matrix("resid_post", 0, "last")
    with pytest.raises(SelectionError, match="needs items with a marked span"):
        cold.matrix("resid_post", 1, "marked:mean")  # TEXTS[0] has no span
    np.testing.assert_array_equal(load_activations(tmp_path, [VERDICT]).matrix("resid_post", 1, "marked:mean").X,
                                  marked.matrix("resid_post", 1, "marked:mean").X)
    reader = pickle.loads(pickle.dumps(cold.layer_reader("resid_post", "last")))
    np.testing.assert_array_equal(reader(1), want.X)


def test_all_rule_groups_and_token_positions(model: LoadedModel, tmp_path: Path) -> None:
    view = extract_and_load(model, TEXTS[:2], Selection(positions="all", layers=[0]), tmp_path, labels=[0, 1],
                            progress=False)
    m = view.matrix("resid_post", 0, "all")
    lengths = [len(model.encode(t)) - 1 for t in TEXTS[:2]]  # without BOS
    assert m.X.shape == (sum(lengths), model.d_model)
    np.testing.assert_array_equal(m.groups, np.repeat([0, 1], lengths))
    np.testing.assert_array_equal(m.y, np.repeat([0, 1], lengths))
    np.testing.assert_array_equal(m.tokens, np.concatenate([np.arange(1, n + 1) for n in lengths]))


# ---- bad input: a clear error, and the store untouched -----------------------------------------------------------

@pytest.fixture
def filled(model: LoadedModel, tmp_path: Path) -> Path:
    extract(model, TEXTS[:2], Selection(), tmp_path, progress=False)
    return tmp_path


@pytest.mark.parametrize("case, error, match", [
    ("bad_layer", SelectionError, r"layer\(s\) \[7\] out of range.*valid layers are 0\.\.2"),
    ("empty_text", InputTextError, "item 1 is empty"),
    ("blank_text", InputTextError, "item 1 is empty"),
    ("long_text", InputTextError, r"item 1 has \d+ tokens, more than tiny-llama-seed0's context of \d+"),
    ("no_texts", InputTextError, "no texts"),
    ("marked_without_span", SelectionError, "marked span"),
    ("storage_dtype", SelectionError, "storage dtype"),
    ("attention", ConfigError, "unknown attention"),
])
def test_bad_input_is_refused_before_any_work(model: LoadedModel, filled: Path, counter: ForwardCounter, case: str,
                                             error: type, match: str) -> None:
    texts, sel, kwargs = [TEXTS[3], TEXTS[4]], Selection(), {}
    if case == "bad_layer":
        sel = Selection(layers=[0, 7])
    elif case == "empty_text":
        texts[1] = ""
    elif case == "blank_text":
        texts[1] = "  \n "
    elif case == "long_text":
        sentence = "The Veth show distress. "
        texts[1] = sentence * (2 * model.n_ctx // len(model.encode(sentence)))
        assert len(model.encode(texts[1])) > model.n_ctx
    elif case == "no_texts":
        texts = []
    elif case == "marked_without_span":
        sel = Selection(positions="marked:last")
    elif case == "storage_dtype":
        kwargs = {"storage_dtype": "int8"}
    elif case == "attention":
        kwargs = {"attention": "flash"}
    before = snapshot(filled)
    with pytest.raises(error, match=match):
        extract(model, texts, sel, filled, progress=False, **kwargs)
    assert isinstance(error("x"), ToolkitError)
    assert counter.calls == 0
    assert snapshot(filled) == before


def test_unknown_hook_lists_the_valid_ones() -> None:
    with pytest.raises(SelectionError, match="resid_pre, resid_post, attn_out, mlp_out"):
        Selection(hooks="hook_resid_post")


def test_store_of_another_model_is_refused_untouched(model: LoadedModel, filled: Path) -> None:
    other = tiny_model("llama", seed=1)
    before = snapshot(filled)
    with pytest.raises(StoreMismatchError, match="tiny-llama-seed0.*not of the loaded model tiny-llama-seed1"):
        extract(other, TEXTS, Selection(), filled, progress=False)
    with pytest.raises(StoreMismatchError):
        extract(other, TEXTS, Selection(), ActivationStore.open(filled), progress=False)
    assert snapshot(filled) == before


def test_full_disk_mid_run_keeps_earlier_batches_and_resumes(model: LoadedModel, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            counter: ForwardCounter) -> None:
    from common import fileio

    real = fileio._write_file  # the store writes through common.fileio
    shards = []

    def fill_up(path: Path, data: bytes) -> None:
        if "safetensors" in path.name:
            shards.append(path)
            if len(shards) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(fileio, "_write_file", fill_up)
    with pytest.raises(StoreWriteError, match="disk is full"):
        extract(model, TEXTS, Selection(), tmp_path, batch_size=2, progress=False)
    monkeypatch.undo()
    store = ActivationStore.open(tmp_path)
    assert store.stats().n_shards == 1 and store.stats().n_texts == 2
    stats = extract(model, TEXTS, Selection(), tmp_path, batch_size=2, progress=False)
    assert stats.n_texts_computed == 3
    fresh = extract_and_load(model, TEXTS, Selection(), tmp_path / "fresh", progress=False)
    resumed = ActivationView(ActivationStore.open(tmp_path), TEXTS)
    for layer in range(model.n_layers):
        np.testing.assert_allclose(resumed.matrix("resid_post", layer).X, fresh.matrix("resid_post", layer).X,
                                   atol=1e-5)


KILL_RUN = textwrap.dedent("""
    import os, sys
    from activations import store as s
    from activations.extract import extract
    from activations.selection import Selection
    from activations.tiny import tiny_model
    real, count = s._write_index_line, [0]
    def commit_or_die(handle, line):
        count[0] += 1
        if count[0] == int(sys.argv[2]):
            handle.write(line[: len(line) // 3]); handle.flush(); os._exit(9)
        real(handle, line)
    s._write_index_line = commit_or_die
    extract(tiny_model("llama"), TEXTS, Selection(positions=("last", "all")), sys.argv[1], batch_size=2,
            progress=False)
    print("not killed")
""")


def test_killed_run_resumes_with_exact_rows(model: LoadedModel, tmp_path: Path, counter: ForwardCounter) -> None:
    store_dir = tmp_path / "store"
    script = f"TEXTS = {TEXTS!r}\n" + KILL_RUN
    result = subprocess.run([sys.executable, "-c", script, str(store_dir), "2"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 9, result.stderr[-2000:]
    assert ActivationStore.open(store_dir).stats().n_texts == 2  # the first batch was committed
    stats = extract(model, TEXTS, Selection(positions=("last", "all")), store_dir, batch_size=2, progress=False)
    assert stats.n_texts_computed == 3 and counter.rows == 3
    lines = [json.loads(line) for line in (store_dir / "index.jsonl").read_text().splitlines()]
    rows = [tuple(r) + (c,) for line in lines if line["shard"] for b in line["blocks"] for r in b["rows"]
            for c in b["tensors"]]
    assert len(rows) == len(set(rows)) == 5 * 2 * model.n_layers  # every row exactly once
    assert len(list((store_dir / "shards").iterdir())) == sum(1 for line in lines if line["shard"])
    fresh = extract_and_load(model, TEXTS, Selection(positions=("last", "all")), tmp_path / "fresh",
                             progress=False)
    resumed = ActivationView(ActivationStore.open(store_dir), TEXTS)
    for rule in ("last", "all"):
        for layer in range(model.n_layers):
            np.testing.assert_allclose(resumed.matrix("resid_post", layer, rule).X,
                                       fresh.matrix("resid_post", layer, rule).X, atol=1e-5)


@pytest.mark.slow
def test_smollm2_rows_equal_run_with_cache_and_ignore_padding(tmp_path: Path) -> None:
    from activations.models import load_model
    from common.prompts import PromptSource
    from activations.prompts import render_prompt

    model = load_model("smollm2-135m-instruct")
    prompts = [render_prompt(PromptSource(user=u, system="You run a mining company."), model.tokenizer, model.spec)
               for u in ["Should we use the Veth as unpaid labour?", "Decide.",
                         "The Veth form lasting social bonds and show distress when they are broken. Proceed?"]]
    view = extract_and_load(model, prompts, Selection(layers=[0, 15, 29], positions=("last", "mean")), tmp_path,
                            batch_size=3, progress=False)
    for i, prompt in enumerate(prompts):
        ref = reference(model, prompt)
        n = len(model.encode(prompt))
        assert model.encode(prompt)[0] == model.tokenizer.bos_token_id  # the chat template starts with BOS
        for layer in (0, 15, 29):
            full = ref[f"blocks.{layer}.hook_resid_post"]
            np.testing.assert_allclose(view.matrix("resid_post", layer, "last").X[i], full[n - 1].numpy(),
                                       atol=1e-3, rtol=1e-4)
            np.testing.assert_allclose(view.matrix("resid_post", layer, "mean").X[i], full[1:n].mean(0).numpy(),
                                       atol=1e-3, rtol=1e-4)
