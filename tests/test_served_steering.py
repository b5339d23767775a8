"""Trials against a steered server (llama.cpp ``--control-vector-scaled FILE:SCALE``): the declared control vector's
hash and scale are part of the trial identity, and a run never resumes across different ones.

The server is the OpenAI stub (tests/openai_stub_server.py) on loopback; it does not steer, which is the point: the
API cannot say how a server is steered, so the identity must come from what the user declares.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from behaviour.backends import OpenAIBackend
from common.errors import ConfigError
from common.jsonl import read_jsonl
from interventions.gguf_export import export_control_vector, served_control_vector
from openai_stub_server import StubServer
from test_trials import SHORT_SCENARIO, run_cli


@pytest.fixture(scope="module")
def server():
    with StubServer("llama") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    root = tmp_path_factory.mktemp("cvec")
    rng = np.random.default_rng(0)
    return [export_control_vector(root / f"v{i}.gguf", {1: rng.standard_normal(8)}, hook="resid_post",
                                  model_hint="llama", n_layers=2, d_model=8) for i in range(2)]


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    import common.rundir

    root = tmp_path / "runs"
    monkeypatch.setattr(common.rundir, "RUNS_ROOT", root)
    return root


def test_identity_holds_the_control_vector_hash_and_scale(server, vectors):
    plain = OpenAIBackend(server, "tiny-llama", timeout=60).identity
    # Unsteered keys are unchanged (runs started before steered servers existed still resume).
    legacy = hashlib.sha256(json.dumps({"served_model": "tiny-llama", "root": plain["root"]}).encode())
    assert plain["key"] == legacy.hexdigest()[:16] and plain["control_vector"] is None
    keys = {plain["key"]}
    for path, scale in ((vectors[0], 1.0), (vectors[0], 2.0), (vectors[1], 1.0)):
        cv = served_control_vector(path, scale)
        assert cv == {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "scale": scale}
        identity = OpenAIBackend(server, "tiny-llama", timeout=60, control_vector=cv).identity
        assert identity["control_vector"] == cv
        keys.add(identity["key"])
    assert len(keys) == 4  # unsteered, two scales of one vector, another vector: four identities
    assert served_control_vector(vectors[0], None)["scale"] == 1.0  # llama.cpp's --control-vector


def test_bad_control_vector_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        served_control_vector(tmp_path / "missing.gguf", 1.0)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match="not a readable GGUF"):
        served_control_vector(junk, 1.0)


def test_steered_server_trials_refuse_to_resume_across_vectors_or_scales(server, vectors, runs_root, capsys,
                                                                         tmp_path):
    scenario = tmp_path / "short.yaml"
    scenario.write_text(SHORT_SCENARIO)
    common = ["--backend", "openai", "--base-url", server, "--served-model", "tiny-llama", "--scenario",
              str(scenario), "--conditions", "baseline", "--n", "2", "--max-new-tokens", "4", "--batch-size", "1"]
    served = ["--served-control-vector", str(vectors[0]), "--served-control-scale", "2.0"]
    code, _, err = run_cli(common + served, capsys)
    assert code == 0, err
    (run,) = runs_root.iterdir()
    store = run / "transcripts.jsonl"
    rows = read_jsonl(store)
    cv = served_control_vector(vectors[0], 2.0)
    assert len(rows) == 2 and all(r["model_identity"]["control_vector"] == cv for r in rows)
    assert "scale 2.0" in (run / "report.md").read_text()
    store.write_text(store.read_text().splitlines(keepends=True)[0])  # as if killed after the first trial

    for other in (["--served-control-vector", str(vectors[1]), "--served-control-scale", "2.0"],
                  ["--served-control-vector", str(vectors[0]), "--served-control-scale", "1.0"]):
        code, _, err = run_cli(["--resume", str(run), *other], capsys)
        assert code == 2 and "--served-control-vector" in err and "the run has" in err, err
        assert len(read_jsonl(store)) == 1  # nothing written by a refused resume
    code, _, err = run_cli(["--resume", str(run), "--served-control-scale", "2.0"], capsys)
    assert code == 2 and "needs --served-control-vector" in err

    code, _, err = run_cli(["--resume", str(run), *served], capsys)  # the same vector and scale: finishes
    assert code == 0, err
    assert [r["id"] for r in read_jsonl(store)] == [r["id"] for r in rows]

    # The same trials from an unsteered server are other trials (other ids), never mixed into this run.
    code, _, err = run_cli(common, capsys)
    assert code == 0, err
    (plain,) = [p for p in runs_root.iterdir() if p != run]
    assert {r["id"] for r in read_jsonl(plain / "transcripts.jsonl")}.isdisjoint(r["id"] for r in rows)


def test_served_control_vector_needs_the_openai_backend(vectors, runs_root, capsys, tmp_path):
    code, _, err = run_cli(["--served-control-vector", str(vectors[0]), "--n", "1"], capsys)
    assert code == 2 and "--backend openai" in err and not runs_root.exists()
