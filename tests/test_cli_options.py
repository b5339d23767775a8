"""Options every command that writes a run directory shares (``experiments.cli.add_run_args``), tried on each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import common.rundir as rundir
from test_smoke import SHORT_SCENARIO as SCENARIO  # the smoke tests' short scenario keeps tiny models fast
SCORED = "Step 1: x\n\nFinal verdict: Not advisable. Enslaving sentient beings is wrong."


@pytest.fixture
def default_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where runs would go without --runs: must stay empty when --runs is given."""
    root = tmp_path / "default-runs"
    monkeypatch.setattr(rundir, "RUNS_ROOT", root)
    return root


def command_line(name: str, tmp_path: Path, save_tiny) -> tuple[object, list[str]]:
    """A real, fast invocation of each command (tiny random-weight model, short scenario)."""
    scenario = tmp_path / "short.yaml"
    scenario.write_text(SCENARIO)
    model = str(save_tiny("llama"))
    if name == "smoke":
        from experiments.smoke import main

        return main, ["--model", model, "--scenario", str(scenario), "--max-new-tokens", "3"]
    if name == "trials":
        from experiments.trials import main

        return main, ["--model", model, "--scenario", str(scenario), "--conditions", "baseline", "--n", "2",
                      "--max-new-tokens", "3"]
    if name == "score":
        from experiments.score import main

        rows = tmp_path / "in.jsonl"
        rows.write_text("".join(json.dumps({"id": f"r{i}", "model": "m", "condition": "c", "response": SCORED}) + "\n"
                                for i in range(3)))
        return main, ["--input", str(rows), "--output", str(tmp_path / "out.jsonl"), "--table"]
    if name == "probe":
        from experiments.probe import main

        return main, ["--model", model, "--store", str(tmp_path / "store"), "--concepts", "perspective_taking",
                      "--estimators", "mean_diff", "--folds", "2", "--jobs", "1"]
    raise AssertionError(name)


COMMANDS = ["smoke", "trials", "score", "probe"]


def run(main, argv: list[str]) -> int:
    from experiments.cli import run_main

    with pytest.raises(SystemExit) as exit_info:
        run_main(main, argv)
    return exit_info.value.code


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_writes_its_run_under_runs(name: str, tmp_path: Path, save_tiny, default_runs: Path) -> None:
    main, argv = command_line(name, tmp_path, save_tiny)
    root = tmp_path / "elsewhere" / "my-runs"
    assert run(main, [*argv, "--runs", str(root)]) == 0
    (path,) = root.iterdir()
    assert json.loads((path / "config.json").read_text())["experiment"] == name
    assert json.loads((path / "manifest.json").read_text())["status"] == "completed"
    assert not default_runs.exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_documents_runs(name: str, tmp_path: Path, save_tiny, capsys: pytest.CaptureFixture) -> None:
    main, _ = command_line(name, tmp_path, save_tiny)
    assert run(main, ["--help"]) == 0
    assert "--runs DIR" in capsys.readouterr().out


@pytest.fixture
def restore_threads():
    """--threads changes this process's torch thread pool: put it back for the tests that follow."""
    import torch

    import common.threads

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    common.threads._requested = None


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_applies_threads_and_records_them(name: str, tmp_path: Path, save_tiny, default_runs: Path,
                                                        restore_threads) -> None:
    import torch

    main, argv = command_line(name, tmp_path, save_tiny)
    assert run(main, [*argv, "--threads", "3"]) == 0
    (path,) = default_runs.iterdir()
    threads = json.loads((path / "manifest.json").read_text())["threads"]
    assert threads["requested"] == 3 and threads["torch_threads"] == 3 == torch.get_num_threads()
    assert threads["cpu_count"] >= 1


def test_threads_in_a_fresh_process_set_both_pools_before_work(tmp_path: Path, save_tiny) -> None:
    import os
    import subprocess
    import sys

    from common import REPO_ROOT

    scenario = tmp_path / "short.yaml"
    scenario.write_text(SCENARIO)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch's default would be one per core
    result = subprocess.run(
        [sys.executable, "-m", "experiments.smoke", "--model", str(save_tiny("llama")), "--scenario", str(scenario),
         "--max-new-tokens", "3", "--runs", str(tmp_path / "runs"), "--threads", "1"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = (tmp_path / "runs").iterdir()
    threads = json.loads((path / "manifest.json").read_text())["threads"]
    assert (threads["requested"], threads["torch_threads"], threads["torch_interop_threads"]) == (1, 1, 1)
    assert threads["OMP_NUM_THREADS"] is None


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_thread_counts_are_refused_before_any_work(value: str, tmp_path: Path, save_tiny,
                                                       capsys: pytest.CaptureFixture, default_runs: Path) -> None:
    main, argv = command_line("smoke", tmp_path, save_tiny)
    assert run(main, [*argv, "--threads", value]) == 2
    assert "--threads" in capsys.readouterr().err
    assert not default_runs.exists()


def test_set_threads_refuses_nonsense_and_reports_settings(restore_threads) -> None:
    from common.errors import ConfigError
    from common.threads import set_threads, thread_settings

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="--threads"):
            set_threads(bad)
    assert set_threads(None)["requested"] is None  # None keeps torch's default
    assert set_threads(2)["torch_threads"] == 2 and thread_settings()["requested"] == 2
