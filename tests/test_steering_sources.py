"""Direction sources (saved probe runs, difference of means) and the llama.cpp control-vector export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activations.tiny import tiny_hf_model, tiny_model
from common.errors import ConfigError, ToolkitError
from interventions.directions_source import (
    directions_from_run, mean_difference_directions, normalise_concept,
)
from interventions.gguf_export import export_control_vector, llama_cpp_layer, read_control_vector
from probes.directions import Direction, save_directions


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=0)


def _save_run(tmp_path, identity, dim, layers=(0, 1, 2), hook="resid_post"):
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    dirs = [Direction(rng.standard_normal(dim), concept, layer, hook, "mean_diff", identity)
            for concept in ("interest_recognition", "perspective_taking") for layer in layers]
    save_directions(dirs, run / "directions")
    return run, dirs


def test_directions_from_run_reads_this_models_directions(model, tmp_path):
    run, saved = _save_run(tmp_path, model.identity.to_dict(), model.d_model)
    got = directions_from_run(run, model, concepts=["interest-recognition"])
    assert got.hook == "resid_post"
    assert list(got.vectors) == ["interest_recognition"]
    np.testing.assert_allclose(got.get("interest_recognition", 1), saved[1].vector)
    assert got.layers("interest_recognition") == [0, 1, 2]


def test_directions_of_other_weights_are_refused(model, tmp_path):
    other = tiny_model("llama", seed=1)
    run, _ = _save_run(tmp_path, other.identity.to_dict(), model.d_model)
    with pytest.raises(ToolkitError, match="trained for model"):
        directions_from_run(run, model)


def test_directions_of_wrong_width_are_refused(model, tmp_path):
    run, _ = _save_run(tmp_path, model.identity.to_dict(), 32)
    with pytest.raises(ToolkitError, match="dimension 32"):
        directions_from_run(run, model)


def test_missing_run_dir_is_a_clear_error(model, tmp_path):
    with pytest.raises(ConfigError, match="probe run directory"):
        directions_from_run(tmp_path / "nope", model)
    with pytest.raises(ConfigError, match="unknown concept"):
        normalise_concept("empathy")


def test_mean_difference_matches_hf_hidden_states(model):
    hf = tiny_hf_model("llama", seed=0)
    pos = ["The Veth show distress when separated.", "Staying together matters to them."]
    neg = ["Step 1: list the facts.", "The extraction quota can wait, said the board."]
    got = mean_difference_directions(model, pos, neg, [0, 1], batch_size=3)

    def mean_last(texts, layer):
        rows = []
        for t in texts:
            with torch.no_grad():
                hs = hf(input_ids=torch.tensor([model.encode(t)]), output_hidden_states=True).hidden_states
            rows.append(hs[layer + 1][0, -1])
        return torch.stack(rows).mean(0)

    for layer in (0, 1):
        expected = (mean_last(pos, layer) - mean_last(neg, layer)).numpy()
        np.testing.assert_allclose(got[layer], expected, atol=1e-4)
    with pytest.raises(ConfigError, match="out of range"):
        mean_difference_directions(model, pos, neg, [5])


def test_control_vector_reads_back_with_values_and_metadata(tmp_path):
    rng = np.random.default_rng(3)
    vectors = {1: rng.standard_normal(64).astype(np.float32), 2: rng.standard_normal(64).astype(np.float32)}
    path = export_control_vector(tmp_path / "cv.gguf", vectors, hook="resid_post", model_hint="llama", n_layers=3,
                                 d_model=64, metadata={"concept": "interest_recognition"})
    meta, back = read_control_vector(path)
    assert meta["general.architecture"] == "controlvector"
    assert meta["controlvector.model_hint"] == "llama"
    assert meta["controlvector.layer_count"] == 2
    assert meta["controlvector.veth.concept"] == "interest_recognition"
    assert sorted(back) == [1, 2]
    for k in (1, 2):
        np.testing.assert_array_equal(back[k], vectors[k])


def test_control_vector_layer_numbering():
    assert llama_cpp_layer(5, "resid_post") == 5
    assert llama_cpp_layer(5, "resid_pre") == 4
    with pytest.raises(ConfigError, match="cannot steer"):
        llama_cpp_layer(0, "resid_post")
    with pytest.raises(ConfigError, match="cannot steer"):
        llama_cpp_layer(1, "resid_pre")
    with pytest.raises(ConfigError, match="width"):
        export_control_vector("/tmp/x.gguf", {1: np.ones(8)}, hook="resid_post", model_hint="llama", n_layers=3,
                              d_model=64)
