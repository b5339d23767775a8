"""Run directories: layout, self-description (config, versions, git commit, model identity), atomic writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import common.rundir as rundir
from common.errors import ConfigError
from activations.tiny import tiny_model
from common.rundir import RunDir, atomic_write_text, git_commit, to_json, versions

NAME = re.compile(r"^\d{8}T\d{6}Z-probe-tiny-llama-seed0$")


@dataclass(frozen=True)
class Accuracy:
    layer: int
    value: float
    n: int


@pytest.fixture(scope="module")
def identity():
    return tiny_model("llama", seed=0).identity.to_dict()


@pytest.fixture
def run(tmp_path, identity):
    return RunDir.create("probe", "tiny-llama-seed0", {"layers": [1, 2], "seed": 0}, root=tmp_path,
                         model_identity=identity)


def test_layout_and_name(run, tmp_path):
    assert run.path.parent == tmp_path and NAME.match(run.path.name)
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "manifest.json"]
    results = run.write_json("accuracy.json", {"layer": 1})
    report = run.write_report("# Probe\n\nnothing yet\n\n\n")
    assert results == run.path / "results" / "accuracy.json"
    assert report.read_text() == "# Probe\n\nnothing yet\n"
    assert run.subdir("activations").is_dir() and run.subdir("activations") == run.path / "activations"


def test_config_is_the_resolved_configuration(run):
    assert run.config == {"experiment": "probe", "model": "tiny-llama-seed0", "layers": [1, 2], "seed": 0}
    assert json.loads((run.path / "config.json").read_text()) == run.config


def test_manifest_records_versions_commit_and_model(run, identity):
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["model"] == identity and manifest["model"]["key"] == identity["key"]
    assert manifest["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    for package in ("torch", "transformers", "transformer-lens"):
        assert manifest["versions"][package], package
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(rundir.__file__).parent).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", manifest["git_commit"])
    assert manifest["git_commit"].split("-")[0] == head
    assert datetime.fromisoformat(manifest["created"]).tzinfo is not None
    assert manifest["command"] and manifest["host"]


def test_versions_names_the_toolkit_itself():
    assert versions()["veth-probes"] is not None
    assert git_commit() is not None


def test_results_serialise_dataclasses_numpy_and_paths(run):
    target = run.write_json("mixed.json", {"acc": Accuracy(3, 0.75, 40), "scores": np.array([0.5, 1.0]),
                                           "mean": np.float32(0.25), "where": Path("/tmp/x")})
    assert json.loads(target.read_text()) == {"acc": {"layer": 3, "value": 0.75, "n": 40}, "scores": [0.5, 1.0],
                                              "mean": 0.25, "where": "/tmp/x"}


def test_figures_are_png(run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    target = run.save_figure(fig, "accuracy_by_layer.svg")
    assert target == run.path / "figures" / "accuracy_by_layer.png"
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)  # closed, so long sweeps do not leak figures
    assert [p.name for p in target.parent.iterdir()] == ["accuracy_by_layer.png"]


def test_a_failed_write_keeps_the_previous_result(run):
    run.write_json("accuracy.json", {"layer": 1})
    with pytest.raises(TypeError):
        run.write_json("accuracy.json", {"layer": object()})  # unserialisable: fails before touching the file
    assert json.loads((run.path / "results" / "accuracy.json").read_text()) == {"layer": 1}


def test_atomic_write_interrupted_at_rename_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out" / "data.json"
    atomic_write_text(target, "old")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["data.json"]


def test_two_runs_in_the_same_second_get_distinct_directories(tmp_path, monkeypatch):
    frozen = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(rundir, "datetime", FrozenClock)
    runs = [RunDir.create("smoke", "org/Model-1", {"i": i}, root=tmp_path) for i in range(3)]
    names = [r.path.name for r in runs]
    assert names == ["20250102T030405Z-smoke-Model-1", "20250102T030405Z-smoke-Model-1~2",
                     "20250102T030405Z-smoke-Model-1~3"]
    assert [r.config["i"] for r in runs] == [0, 1, 2]  # none overwrote another


def test_model_paths_are_slugged(tmp_path):
    run = RunDir.create("smoke", "/data/weights/my model", {}, root=tmp_path / "nested" / "runs")
    assert run.path.name.endswith("-smoke-my_model") and run.path.parent == tmp_path / "nested" / "runs"


def test_open_resumes_an_existing_run(run):
    run.write_json("partial.json", {"done": 3})
    again = RunDir.open(run.path)
    assert again.config == run.config
    assert json.loads((again.path / "results" / "partial.json").read_text()) == {"done": 3}


def test_open_refuses_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(ConfigError, match="is not a run directory"):
        RunDir.open(tmp_path)
    with pytest.raises(ConfigError, match="is not a run directory"):
        RunDir.open(tmp_path / "missing")
    assert (tmp_path / "results").is_dir()  # nothing touched


def test_to_json_is_indented_and_ends_with_newline():
    assert to_json({"a": 1}) == '{\n  "a": 1\n}\n'


# ---- how a run ended: manifest status and error.txt ---------------------------------------------------------------

def test_a_new_run_is_running_and_a_finished_one_completed(run):
    assert run.status == "running" and not (run.path / "error.txt").exists()
    with run:
        run.write_json("x.json", {"a": 1})
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["status"] == "completed" and "finished" in manifest and "error" not in manifest


def test_a_failed_run_says_why_in_error_txt_and_the_manifest(run):
    with pytest.raises(ConfigError):
        with run:
            raise ConfigError("store of other weights; pass another store")
    assert run.status == "failed"
    assert run.manifest["error"] == "ConfigError: store of other weights; pass another store"
    assert (run.path / "error.txt").read_text() == "ConfigError: store of other weights; pass another store\n"


def test_a_bug_keeps_its_traceback_and_ctrl_c_is_interrupted(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with RunDir.create("probe", "m", {}, root=tmp_path) as run:
            1 / 0
    text = (run.path / "error.txt").read_text()
    assert text.startswith("ZeroDivisionError: division by zero\n") and "Traceback" in text and "1 / 0" in text
    with pytest.raises(KeyboardInterrupt):
        with RunDir.create("probe", "m", {}, root=tmp_path) as other:
            raise KeyboardInterrupt
    assert other.status == "interrupted" and "interrupted" in (other.path / "error.txt").read_text()


def test_track_runs_finishes_every_run_created_inside(tmp_path):
    with pytest.raises(ValueError):
        with rundir.track_runs() as runs:
            first = RunDir.create("a", "m", {}, root=tmp_path)
            with RunDir.create("b", "m", {}, root=tmp_path):  # finished by itself: left alone
                pass
            raise ValueError("boom")
    assert len(runs) == 2 and first.status == "failed" and runs[1].status == "completed"
    untracked = RunDir.create("c", "m", {}, root=tmp_path)  # outside any block: nobody finishes it
    with rundir.track_runs():
        RunDir.open(untracked.path)  # opening to read does not take it over
    assert untracked.status == "running"


def test_a_resumed_run_is_running_again_and_completes(tmp_path):
    with pytest.raises(RuntimeError):
        with rundir.track_runs():
            run = RunDir.create("trials", "m", {}, root=tmp_path)
            raise RuntimeError("killed by the judge")
    assert run.status == "failed" and (run.path / "error.txt").exists()
    with rundir.track_runs():
        RunDir.open(run.path).start()
        assert run.status == "running" and not (run.path / "error.txt").exists()
    manifest = run.manifest
    assert manifest["status"] == "completed"
    assert manifest["earlier_attempts"][0]["status"] == "failed"
    assert "killed by the judge" in manifest["earlier_attempts"][0]["error"]


def test_atomic_writes_respect_the_umask(tmp_path):
    # mkstemp's 0o600 made shared run directories and activation stores unreadable to the rest of a group.
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644


def test_a_run_left_running_by_a_killed_process_is_reaped_as_failed(tmp_path):
    import json
    import subprocess
    import sys

    from common.rundir import COMPLETED, FAILED, RUNNING, RunDir

    # A process that started a run and was killed -9 before recording its end.
    code = ("import os, signal, sys; sys.path.insert(0, '.'); from common.rundir import RunDir; "
            f"r = RunDir.create('x', 'm', {{}}, root={str(tmp_path)!r}); print(r.path, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == -9
    run = RunDir.open(out.stdout.strip())
    (run.path / "results").mkdir()
    (run.path / "results" / "kept.json").write_text("{}")
    assert run.status == RUNNING
    assert run.reap_if_stale()
    assert run.status == FAILED and "stopped without recording an end" in run.manifest["error"]
    assert (run.path / "results" / "kept.json").exists() and (run.path / "error.txt").exists()
    assert not run.reap_if_stale()  # once
    mine = RunDir.create("y", "m", {}, root=tmp_path)  # this live process's own run is never reaped
    assert not mine.reap_if_stale() and mine.status == RUNNING
    mine.finish()
    assert mine.status == COMPLETED and json.loads((mine.path / "manifest.json").read_text())["pid"]
