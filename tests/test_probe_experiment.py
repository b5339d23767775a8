"""End to end: python -m experiments.probe on a tiny local model (fast) and on the embedded SmolLM2 (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.probe import main
from probes.concepts import load_concept
from probes.directions import DirectionMismatchError, load_directions


def _run(tmp_path: Path, model: str, *extra: str) -> Path:
    """The command as the command line runs it (run_main: exit status, and the run's end recorded)."""
    from experiments.cli import run_main

    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, ["--model", model, "--runs", str(runs), "--store", str(tmp_path / "store"), "--jobs", "1",
                        "--folds", "3", *extra])
    assert exit_info.value.code == 0
    (run,) = sorted(runs.iterdir())[-1:]
    return run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, save_tiny) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("probe")
    model_dir = save_tiny("llama", seed=0, chat=True)
    return _run(tmp, str(model_dir)), tmp


def test_run_directory_is_complete(tiny_run: tuple[Path, Path]) -> None:
    run, _ = tiny_run
    for name in ("config.json", "manifest.json", "report.md", "figures/overview.png",
                 "figures/sweep_interest_recognition.png", "figures/sweep_perspective_taking.png",
                 "results/sweep_interest_recognition.json", "results/scenario_projection.json",
                 "results/directions_index.json"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    sweep = json.loads((run / "results/sweep_interest_recognition.json").read_text())
    n_layers = manifest["model"]["n_layers"]
    assert sweep["n"] == len(load_concept("interest_recognition"))
    assert [r["layer"] for r in sweep["sweep"]["results"]["logistic"]] == list(range(n_layers))
    for row in sweep["sweep"]["results"]["logistic"]:
        assert row["auroc"]["low"] <= row["auroc"]["value"] <= row["auroc"]["high"]
        assert row["control_accuracy"]["n"] == sweep["n"]
    assert sweep["sweep"]["lexical"]["auroc"]["n"] == sweep["n"]
    assert sweep["sweep"]["scaling"] == "layer" == json.loads((run / "config.json").read_text())["scaling"]
    by_source = sweep["by_source"]
    assert set(by_source) == {"template", "handwritten"}
    assert sum(row["n"] for row in by_source.values()) == sweep["n"]
    report = (run / "report.md").read_text()
    assert "bag-of-words" in report and "Layer selection rule" in report


def test_directions_load_for_this_model_only(tiny_run: tuple[Path, Path]) -> None:
    run, _ = tiny_run
    identity = json.loads((run / "manifest.json").read_text())["model"]
    directions = load_directions(run / "directions", expected_model=identity)
    assert {d.concept for d in directions} == {"interest_recognition", "perspective_taking"}
    assert {d.estimator for d in directions} == {"logistic", "mean_diff"}
    assert all(abs(np.linalg.norm(d.vector) - 1) < 1e-5 and d.dim == identity["d_model"] for d in directions)
    other = dict(identity, key="another-model", location="elsewhere")
    with pytest.raises(DirectionMismatchError, match="trained|model"):
        load_directions(run / "directions", expected_model=other)


def test_second_run_reuses_activations_and_evaluates_outside_file(tiny_run: tuple[Path, Path], save_tiny,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run, tmp = tiny_run
    rows = [{"concept": "interest_recognition", "text": t, "label": int(y)}
            for t, y in zip(*(lambda d: (d.texts[:12], d.labels[:12]))(load_concept("interest_recognition")))]
    eval_file = tmp / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = _run(tmp, str(save_tiny("llama", seed=0, chat=True)), "--eval-file", str(eval_file), "--scaling", "fold")
    printed = json.loads(capsys.readouterr().out)
    # --scaling reaches the sweep (and the run's config) without changing which texts or layers are probed
    sweep = json.loads((second / "results/sweep_interest_recognition.json").read_text())
    assert sweep["sweep"]["scaling"] == "fold" == json.loads((second / "config.json").read_text())["scaling"]
    concept = printed["concepts"]["interest_recognition"]
    assert concept["n"] == len(rows)
    assert len(concept["probes"]) == 2 * json.loads((run / "manifest.json").read_text())["model"]["n_layers"]
    assert concept["lexical_baseline"]["auroc"]["n"] == len(rows)
    assert (second / "results/eval.json").is_file()


def test_another_model_shares_the_store_root(tiny_run: tuple[Path, Path], save_tiny) -> None:
    _, tmp = tiny_run
    other = _run(tmp, str(save_tiny("llama", seed=1, chat=True)), "--concepts", "perspective_taking")
    assert (other / "report.md").is_file()
    assert len([p for p in (tmp / "store").iterdir() if p.is_dir()]) == 2  # one store directory per model


@pytest.mark.parametrize("rows, message", [
    ([{"concept": "honesty", "text": "a", "label": 1}], "unknown concept"),
    ([{"concept": "interest_recognition", "text": "a"}], "label"),
    ([{"concept": "interest_recognition", "text": "a", "label": 1},
      {"concept": "interest_recognition", "text": "b", "label": 1}], "only label 1|both"),
])
def test_bad_eval_file_fails_before_loading(tmp_path: Path, rows: list[dict], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from common.errors import ToolkitError

    with pytest.raises(ToolkitError, match=message):
        main(["--model", "no-such-model-would-fail-later", "--eval-file", str(path), "--runs", str(tmp_path)])
    assert not any(tmp_path.glob("*probe*"))


@pytest.mark.slow
def test_embedded_default_model_end_to_end(tmp_path: Path) -> None:
    run = _run(tmp_path, "smollm2-135m-instruct", "--concepts", "interest_recognition", "--estimators", "mean_diff")
    sweep = json.loads((run / "results/sweep_interest_recognition.json").read_text())
    best = max(r["auroc"]["value"] for r in sweep["sweep"]["results"]["mean_diff"])
    assert best > 0.6, "a real model's residual stream should carry some signal about the concept"
    scenario = json.loads((run / "results/scenario_projection.json").read_text())
    assert "baseline" in scenario["conditions"] and "threat" in scenario["conditions"]


def test_a_failed_run_is_marked_failed_with_its_error(tmp_path: Path, save_tiny) -> None:
    # Regression: a run that failed after creating its directory (here: a store of other weights where this
    # model's store should be) left config.json and manifest.json only, like a run still in progress.
    import os
    import subprocess
    import sys

    from activations.models import load_model
    from activations.store import ActivationStore, store_dir_for
    from common import REPO_ROOT

    model_dir = save_tiny("llama", seed=0, chat=True)
    identity = load_model(str(model_dir)).identity.to_dict()
    store_root = tmp_path / "store"
    ActivationStore.open(store_dir_for(store_root, identity), dict(identity, key="0" * 16, name="other-weights"))
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.probe", "--model", str(model_dir), "--store", str(store_root),
         "--runs", str(runs), "--jobs", "1", "--folds", "3"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: " in result.stderr and "other-weights" in result.stderr and "Traceback" not in result.stderr
    (run,) = runs.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "StoreMismatchError" in manifest["error"]
    error = (run / "error.txt").read_text()
    assert "other-weights" in error and "pass another store directory" in error


def test_a_successful_run_is_marked_completed(tiny_run: tuple[Path, Path]) -> None:
    run, _ = tiny_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and "error" not in manifest and not (run / "error.txt").exists()


def test_unknown_scaling_is_a_config_error() -> None:
    from common.errors import ConfigError
    from experiments.jobs.probe_config import ProbeConfig

    with pytest.raises(ConfigError, match="unknown scaling 'global'; choose from layer, fold"):
        ProbeConfig(scaling="global").validate()
