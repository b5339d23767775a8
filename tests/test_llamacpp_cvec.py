"""Our GGUF control-vector export inside llama.cpp's own server (slow; skipped when llama-server is not built).

llama.cpp is the independent implementation: its next-token distribution under our exported vector must match our
``resid_post`` steering at the same layer (not the neighbouring ones), and move the verdict the same way.
See bench/bench_llamacpp_cvec.py (the figures) and docs/llamacpp.md (the convention).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_llamacpp_cvec.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_llamacpp_cvec", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_llamacpp_steers_our_export_at_our_layer_and_moves_the_verdict_the_same_way(tmp_path):
    bench = _bench()
    binary = bench.find_llama_server()
    if binary is None:
        pytest.skip("llama-server not built: set LLAMA_CPP_BIN to llama.cpp's build/bin folder")
    from activations.models import load_model

    check = bench.run_check(load_model("smollm2-135m-instruct"), binary, layer=10, scale=0.5, workdir=tmp_path,
                            log=lambda *_: None)
    assert check.unsteered_kl < 0.02  # the Q4_1 kernels vs the dequantised fp32 weights: the quantisation gap
    for name in ("random", "verdict"):
        rmse = np.asarray(check.rmse[name])
        assert check.diagonal_wins(name), (name, rmse)
        for k in range(3):  # the same layer matches within 0.3 nats, and at least 3x better than a neighbour
            off = np.delete(rmse[k], k)
            assert rmse[k, k] < 0.3 and rmse[k, k] * 3 < off.min(), (name, rmse)
    for scale, (ours, llama) in check.verdict_shift.items():
        assert np.sign(ours) == np.sign(llama) == np.sign(scale) and abs(ours) > 0.5, check.verdict_shift
        assert abs(ours - llama) < 0.25 * abs(ours), check.verdict_shift


def test_trials_against_a_steered_llama_server_record_the_vector(tmp_path, monkeypatch):
    """The docs' serving example, shortened: llama-server with a control vector, trials declaring it."""
    import hashlib

    import common.rundir
    from activations.models import load_model, packaged_file
    from common.jsonl import read_jsonl
    from experiments.trials import main
    from interventions.gguf_export import export_control_vector

    bench = _bench()
    binary = bench.find_llama_server()
    if binary is None:
        pytest.skip("llama-server not built: set LLAMA_CPP_BIN to llama.cpp's build/bin folder")
    model = load_model("smollm2-135m-instruct")
    vector = export_control_vector(tmp_path / "v.gguf", {10: np.random.default_rng(0).standard_normal(model.d_model)},
                                   hook="resid_post", model_hint="llama", n_layers=model.n_layers,
                                   d_model=model.d_model)
    monkeypatch.setattr(common.rundir, "RUNS_ROOT", tmp_path / "runs")
    with bench.LlamaServer(binary, packaged_file(model.spec), [(vector, 2.0)]) as server:
        served = server.post({"prompt": "Hi", "n_predict": 1})["model"]
        assert main(["--model", "smollm2-135m-instruct", "--backend", "openai", "--base-url", server.url,
                     "--served-model", served, "--served-control-vector", str(vector),
                     "--served-control-scale", "2.0", "--conditions", "baseline", "--n", "1",
                     "--max-new-tokens", "8", "--judge", "rules"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    (row,) = read_jsonl(run / "transcripts.jsonl")
    assert row["model_identity"]["control_vector"] == {"sha256": hashlib.sha256(vector.read_bytes()).hexdigest(),
                                                       "scale": 2.0}
    assert row["response"].strip()
