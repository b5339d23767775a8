"""Steered trials: the steering spec is part of each trial's identity, so steered and unsteered never mix."""

from __future__ import annotations

import pytest

from activations.tiny import tiny_model
from behaviour.scenario import load_scenario
from behaviour.trials import run_trials
from common.errors import ConfigError
from common.jsonl import read_jsonl
from experiments.jobs.backends import LocalBackend, SteeredBackend
from interventions.steered_trials import SteeringSpec, resolve_steering


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=0)


def test_steered_trials_get_their_own_ids_and_record_the_steering(model, tmp_path):
    scenario = load_scenario()
    out = tmp_path / "trials.jsonl"
    kw = dict(out_path=out, max_new_tokens=4, batch_size=2, progress=False)
    plain = run_trials(LocalBackend(model), scenario, ["baseline"], 2, **kw)
    spec = SteeringSpec.from_dict({"concept": "interest-recognition", "layer": 1, "alpha": 0.5, "max_pairs": 2})
    steered_backend = SteeredBackend(model, resolve_steering(model, spec))
    steered = run_trials(steered_backend, scenario, ["baseline"], 2, **kw)
    assert {r.id for r in plain}.isdisjoint({r.id for r in steered})  # a resume never takes one for the other
    rows = read_jsonl(out)
    assert len(rows) == 4
    rec = [r for r in rows if "steering" in r["model_identity"]]
    assert len(rec) == 2 and rec[0]["model_identity"]["steering"]["alpha"] == 0.5
    assert rec[0]["model_identity"]["model_key"] == model.identity.key
    from behaviour.table import convergence_table

    scored = [{**r, "label": "ambiguous"} for r in rows]
    assert len(convergence_table(scored).cells) == 2  # steered and unsteered in separate rows
    # the same steering again resumes (nothing new); another alpha is another identity
    again = run_trials(steered_backend, scenario, ["baseline"], 2, **kw)
    assert [r.id for r in again] == [r.id for r in steered] and len(read_jsonl(out)) == 4
    other = SteeredBackend(model, resolve_steering(model, SteeringSpec.from_dict(
        {"concept": "interest_recognition", "layer": 1, "alpha": 1.0, "max_pairs": 2})))
    assert other.identity["key"] != steered_backend.identity["key"]


def test_spec_errors(model, tmp_path):
    for raw, needle in [({"concept": "x", "layer": 1, "alpha": 1}, "unknown concept"),
                        ({"concept": "interest_recognition", "layer": 1}, "missing keys"),
                        ({"concept": "interest_recognition", "layer": 1, "alpha": float("inf")}, "finite"),
                        ({"concept": "interest_recognition", "layer": 1, "alpha": 1, "positions": "x"}, "position"),
                        ({"concept": "interest_recognition", "layer": 1, "alpha": 1, "colour": 1}, "unknown keys")]:
        with pytest.raises(ConfigError, match=needle):
            SteeringSpec.from_dict(raw)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_steering(model, SteeringSpec.from_dict({"concept": "interest_recognition", "layer": 9, "alpha": 1}))
    path = tmp_path / "spec.yaml"
    path.write_text("concept: perspective_taking\nlayer: 2\nalpha: 0.25\npositions: generated\n")
    assert SteeringSpec.from_file(path).positions == "generated"


def test_trials_command_takes_a_steering_spec(save_tiny, tmp_path):
    """``python -m experiments.trials --steering SPEC``: steered records carry the steering; a resume with another
    spec is refused; a spec for a server backend is refused before anything runs."""
    from experiments.trials import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("concept: interest-recognition\nlayer: 1\nalpha: 0.5\nmax_pairs: 2\n")
    weights = save_tiny("llama")
    common = ["--model", str(weights), "--conditions", "baseline", "--n", "2", "--max-new-tokens", "4",
              "--runs", str(tmp_path / "runs")]
    assert main([*common, "--steering", str(spec)]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    rows = read_jsonl(run / "transcripts.jsonl")
    assert len(rows) == 2 and all(r["model_identity"]["steering"]["alpha"] == 0.5 for r in rows)
    other = tmp_path / "other.yaml"
    other.write_text("concept: interest-recognition\nlayer: 1\nalpha: 1.0\nmax_pairs: 2\n")
    with pytest.raises(ConfigError, match="steering"):
        main(["--resume", str(run), "--steering", str(other)])
    with pytest.raises(ConfigError, match="local backend"):
        main([*common, "--steering", str(spec), "--backend", "openai", "--base-url", "http://127.0.0.1:9"])
