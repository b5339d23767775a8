"""The memory planner (activations/plan.py) and `python -m experiments.models plan`: the arithmetic of each figure,
the device map, the largest batch, the store size against a store actually written in its on-disk format, and
one-line errors. Measured against real peak memory by bench/bench_plan.py (not here: timing and memory are benches)."""

from __future__ import annotations

import math

import pytest
import torch

from activations.plan import GIB, Device, ProbeJob, parse_gpus, plan
from activations.registry import ModelSpec, get_spec
from activations.shapes import ModelShape, count_parameters
from activations.store import ActivationStore, RowBlock
from common.errors import ConfigError, UnknownModelError
from experiments.models import main


def test_parse_gpus() -> None:
    assert parse_gpus("2x80GB") == (Device("cuda:0", 80 * GIB), Device("cuda:1", 80 * GIB))
    assert [d.capacity for d in parse_gpus("80GB,24GB")] == [80 * GIB, 24 * GIB]
    for bad in ("2x80", "x80GB", "0x80GB", "two GPUs", "2x-1GB", ""):
        with pytest.raises(ConfigError, match="write COUNTxSIZE"):
            parse_gpus(bad)


def test_70b_on_two_80gb_gpus() -> None:
    spec = get_spec("llama-3.3-70b")
    p = plan(spec, dtype="bfloat16", devices=parse_gpus("2x80GB"), batch_size=8, prompt_tokens=300, new_tokens=1024)
    params = count_parameters(spec.shape, spec.architecture).total
    assert p.weights.bytes == params * 2 and f"{params:,} parameters x 2 B" in p.weights.how
    assert p.device_map.startswith("cuda:0: layers 0-") and "cuda:1: layers" in p.device_map
    assert sum(p.layers_per_device.values()) == 80 and "offload" not in p.layers_per_device
    steps = {s.name: s for s in p.steps}
    kv = 2 * 80 * 8 * 128 * 8 * (300 + 1024) * 2  # the KV cache by hand
    assert f"= {kv / GIB:.2f} GiB" in steps["generate"].extra.how
    assert steps["generate"].extra.bytes > kv
    for step in p.steps:  # the largest batch that fits does fit, one more does not
        at = lambda B, name=step.name: next(s for s in plan(spec, dtype="bfloat16", devices=parse_gpus("2x80GB"),
                                                            batch_size=B, prompt_tokens=300,
                                                            new_tokens=1024).steps if s.name == name)
        assert (step.max_batch == 0 or at(step.max_batch).fits) and not at(step.max_batch + 1).fits
        assert step.fits == (step.max_batch >= 8)


def test_too_large_for_the_gpus_offloads_and_says_how_many_gpus_it_needs() -> None:
    p = plan(get_spec("gpt-oss-120b"), dtype="bfloat16", devices=parse_gpus("1x80GB"), batch_size=8,
             prompt_tokens=300, new_tokens=1024)
    assert "offload" in p.device_map and p.layers_per_device["offload"] > 0
    assert not p.fits and all(s.max_batch == 0 for s in p.steps)
    assert all(s.min_gpus and s.min_gpus >= 3 for s in p.steps)  # 218 GiB of bfloat16 weights
    assert any("MXFP4" in n for n in p.notes)


def test_weights_scale_with_the_dtype_and_memory_with_the_batch() -> None:
    spec, cpu = get_spec("llama-3.1-8b"), (Device("cpu", 512 * GIB),)
    f32 = plan(spec, dtype="float32", devices=cpu, batch_size=4, prompt_tokens=300)
    bf16 = plan(spec, dtype="bfloat16", devices=cpu, batch_size=4, prompt_tokens=300)
    assert f32.weights.bytes == 2 * bf16.weights.bytes
    twice = plan(spec, dtype="bfloat16", devices=cpu, batch_size=8, prompt_tokens=300)
    for one, two in zip(bf16.steps, twice.steps):
        assert two.extra.bytes == pytest.approx(2 * one.extra.bytes, rel=1e-6)  # every term is linear in B


def test_the_tokenizer_counts_in_a_cpu_plan_and_not_on_the_gpus() -> None:
    """The tokenizer lives in process RAM (measured 0.26 GiB for Gemma 3's 262,144 tokens): a CPU plan's peak holds it
    on top of the weights and the step; a GPU plan states it but does not put it on a GPU."""
    spec = get_spec("gemma-3-270m")
    cpu = plan(spec, dtype="float32", devices=(Device("cpu", 64 * GIB),), batch_size=8, prompt_tokens=272)
    assert cpu.host.bytes == 262_144 * 1024 and "V 262,144" in cpu.host.how
    for step in cpu.steps:
        # (a per-layer share of the step is rounded down to whole bytes per layer)
        assert step.peak_per_device["cpu"] == pytest.approx(cpu.weights.bytes + cpu.host.bytes + step.extra.bytes, abs=18)
    gpu = plan(spec, dtype="float32", devices=parse_gpus("1x80GB"), batch_size=8, prompt_tokens=272)
    assert gpu.host.bytes == cpu.host.bytes and "not on the GPUs" in gpu.host.how
    for step in gpu.steps:
        assert step.peak_per_device["cuda:0"] == pytest.approx(gpu.weights.bytes + step.extra.bytes, abs=18)
    assert "host memory beside the weights: 0.25 GiB = tokenizer" in cpu.render()


def test_store_size_matches_a_store_written_in_the_real_format(tmp_path) -> None:
    shape = ModelShape(n_layers=4, d_model=256, n_heads=4, n_kv_heads=2, head_dim=64, d_mlp=512, vocab_size=100,
                       tied_embeddings=True, max_position=128, dtype="float32", source="test")
    spec = ModelSpec(name="t", source="local", kind="base", prompt_format="document", architecture="llama",
                     shape=shape)
    n_texts, batch = 64, 16
    identity = {"name": "t", "key": "k" * 16, "d_model": 256, "dtype": "float32", "location": "x"}
    store = ActivationStore.open(tmp_path / "store", identity)
    with store.writer() as writer:
        for start in range(0, n_texts, batch):
            rows = [(f"{i:032x}", "last@9") for i in range(start, start + batch)]
            tensors = {("resid_post", layer): torch.randn(batch, 256) for layer in range(4)}
            writer.write([RowBlock(rows=rows, tensors=tensors)], dtype="float32")
    on_disk = sum(f.stat().st_size for f in (tmp_path / "store").rglob("*") if f.name not in ("store.lock",
                                                                                                "manifest.json"))
    planned = plan(spec, dtype="float32", devices=(Device("cpu", GIB),),
                   probe=ProbeJob(n_texts=n_texts, batch_size=batch)).store
    assert planned.bytes == pytest.approx(on_disk, rel=0.05), planned.how
    assert f"{n_texts} texts x 4 layers x 256 x 4 B" in planned.how


def test_a_model_without_shape_cannot_be_planned() -> None:
    spec = ModelSpec(name="adhoc", source="hub", hub_id="org/adhoc", kind="instruct", prompt_format="chat")
    with pytest.raises(ConfigError, match="no shape in the registry"):
        plan(spec, devices=(Device("cpu", GIB),))


def test_cli_prints_every_figure_with_its_formula(capsys) -> None:
    assert main(["plan", "--model", "llama-3.3-70b", "--gpus", "2x80GB", "--prompt-tokens", "300"]) == 0
    out = capsys.readouterr().out
    assert "weights: 131.42 GiB = 70,553,706,496 parameters x 2 B (bfloat16)" in out
    for line in ("step extract: +", "step generate: +", "step attribution: +", "activation store (probe job): ",
                 "device map: cuda:0: layers 0-"):
        assert line in out
    assert "prompt 300 tokens (given)" in out and "1024 new tokens" in out


def test_cli_errors_are_toolkit_errors() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'llama-3.3-7b'. Did you mean: llama-3.3-70b"):
        main(["plan", "--model", "llama-3.3-7b", "--prompt-tokens", "10"])
    with pytest.raises(ConfigError, match="cannot read --gpus '2x80'"):
        main(["plan", "--model", "llama-3.3-70b", "--gpus", "2x80", "--prompt-tokens", "10"])


def test_thinking_models_plan_the_thinking_budget(capsys) -> None:
    assert main(["plan", "--model", "qwen3-32b", "--gpus", "2x80GB", "--prompt-tokens", "300", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["new_tokens"] == 8192 and math.isclose(data["prompt_tokens"], 300)
