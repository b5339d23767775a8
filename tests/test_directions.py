"""Direction save/load: round trip, model and dimension checks, corrupt and missing files."""

import json

import numpy as np
import pytest

from probes.directions import (
    Direction,
    DirectionFileError,
    DirectionMismatchError,
    data_fingerprint,
    load_direction,
    load_directions,
    save_direction,
    save_directions,
)

SMOL = {"key": "HuggingFaceTB/SmolLM2-135M-Instruct@main", "d_model": 8, "n_layers": 30}
LLAMA = {"key": "meta-llama/Llama-3.1-8B-Instruct@main", "d_model": 4096}


def make(layer=3, concept="interest_recognition", model=SMOL, d=8):
    v = np.random.default_rng(layer).standard_normal(d)
    return Direction(
        vector=v / np.linalg.norm(v),
        concept=concept,
        layer=layer,
        hook=f"blocks.{layer}.hook_resid_post",
        estimator="mean_diff",
        model_identity=model,
        metrics={"auroc": {"value": 0.91, "low": 0.88, "high": 0.94, "n": 800}},
        data_hash=data_fingerprint(np.arange(4), np.array(["a", "b"], dtype=object)),
        bias=-0.25,
        scale={"diff_of_means_norm": np.float64(3.5), "mean_activation_norm": 41.0},
    )


def test_round_trip(tmp_path):
    d = make()
    st, js = save_direction(d, tmp_path / "dir" / "interest")
    assert st.name == "interest.safetensors" and js.name == "interest.json"
    back = load_direction(tmp_path / "dir" / "interest", expected_model=SMOL, expected_dim=8)
    assert back.vector.dtype == np.float32
    np.testing.assert_array_equal(back.vector, d.vector)
    for f in ("concept", "layer", "hook", "estimator", "model_identity", "metrics", "data_hash", "bias"):
        assert getattr(back, f) == getattr(d, f)
    assert back.scale["diff_of_means_norm"] == 3.5
    assert load_direction(js).layer == 3  # either file name works
    assert not [p for p in (tmp_path / "dir").iterdir() if p.name.endswith(".tmp")]  # no temp files left


def test_model_mismatch_is_explained(tmp_path):
    save_direction(make(), tmp_path / "d")
    with pytest.raises(DirectionMismatchError) as e:
        load_direction(tmp_path / "d", expected_model=LLAMA)
    msg = str(e.value)
    assert "SmolLM2-135M" in msg and "Llama-3.1-8B" in msg and "re-run the probe sweep" in msg
    # Same key, other details differ: the key decides.
    load_direction(tmp_path / "d", expected_model={"key": SMOL["key"], "d_model": 8, "dtype": "bf16"})
    # Without keys the whole dict must match.
    save_direction(make(model={"name": "m", "revision": "a"}), tmp_path / "e")
    load_direction(tmp_path / "e", expected_model={"name": "m", "revision": "a"})
    with pytest.raises(DirectionMismatchError):
        load_direction(tmp_path / "e", expected_model={"name": "m", "revision": "b"})


def test_dimension_mismatch(tmp_path):
    save_direction(make(), tmp_path / "d")
    with pytest.raises(DirectionMismatchError, match="dimension 8"):
        load_direction(tmp_path / "d", expected_dim=576)
    with pytest.raises(DirectionMismatchError, match="d_model"):
        load_direction(tmp_path / "d", expected_model={**SMOL, "d_model": 576})


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DirectionFileError, match="missing"):
        load_direction(tmp_path / "nope")
    st, js = save_direction(make(), tmp_path / "d")
    js.write_text('{"concept": "interest", "layer": ')
    with pytest.raises(DirectionFileError, match="corrupt metadata"):
        load_direction(tmp_path / "d")
    js.write_text(json.dumps({"concept": "x"}))
    with pytest.raises(DirectionFileError, match="lacks"):
        load_direction(tmp_path / "d")
    save_direction(make(), tmp_path / "d")
    st.write_bytes(b"garbage")
    with pytest.raises(DirectionFileError, match="corrupt tensor"):
        load_direction(tmp_path / "d")
    # A pair out of sync (vector replaced by another direction's) is caught by the checksum.
    save_direction(make(layer=3), tmp_path / "d")
    save_direction(make(layer=4), tmp_path / "other")
    st.write_bytes((tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(DirectionFileError, match="out of sync"):
        load_direction(tmp_path / "d")


def test_save_rejects_non_finite(tmp_path):
    d = make()
    d.vector[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        save_direction(d, tmp_path / "d")


def test_directory_of_directions(tmp_path):
    ds = [make(layer=L, concept=c) for c in ("perspective taking", "interest_recognition") for L in (5, 2)]
    paths = save_directions(ds, tmp_path / "run")
    assert len(paths) == 4 and all(p.exists() for p in paths)
    back = load_directions(tmp_path / "run", expected_model=SMOL)
    assert [(d.concept, d.layer) for d in back] == [
        ("interest_recognition", 2),
        ("interest_recognition", 5),
        ("perspective taking", 2),
        ("perspective taking", 5),
    ]
    with pytest.raises(DirectionMismatchError):
        load_directions(tmp_path / "run", expected_model=LLAMA)
    with pytest.raises(ValueError, match="same file name"):
        save_directions([make(), make()], tmp_path / "dup")


def test_data_fingerprint_changes_with_data():
    a = data_fingerprint(np.arange(3))
    assert a == data_fingerprint(np.arange(3)) != data_fingerprint(np.arange(4))
    assert data_fingerprint(np.arange(3), extra="layer5") != a
