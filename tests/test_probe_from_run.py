"""python -m experiments.probe --from-run RUN_DIR --eval-file FILE: a saved run's directions scored without retraining.

Checked against the full probe job's own eval.json for the same file and store (the full job trains, saves and scores
in memory; --from-run reads the saved files back), against the activation store's contents (a forward pass is counted
by a hook on the Hugging Face model's embedding module, outside the toolkit's extraction code), and against a model of
other weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import experiments.jobs.from_run as from_run
from common.errors import ToolkitError
from experiments.probe import main
from probes.concepts import load_concept
from probes.directions import DirectionMismatchError


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval_rows(concept: str, spelling: str, start: int, n: int) -> list[dict[str, Any]]:
    ds = load_concept(concept)
    return [{"concept": spelling, "text": t, "label": int(y)} for t, y in zip(ds.texts[start:start + n],
                                                                              ds.labels[start:start + n])]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, save_tiny) -> dict[str, Path]:
    """A tiny-model probe run made with --eval-file (hyphen spelling for one concept), so it has its own eval.json."""
    tmp = tmp_path_factory.mktemp("fromrun")
    eval_file = _write_jsonl(tmp / "eval.jsonl", _eval_rows("interest_recognition", "interest-recognition", 0, 10)
                             + _eval_rows("perspective_taking", "perspective_taking", 5, 10))
    runs = tmp / "runs"
    assert main(["--model", str(save_tiny("llama", seed=0, chat=True)), "--runs", str(runs), "--store",
                 str(tmp / "store"), "--jobs", "1", "--folds", "3", "--eval-file", str(eval_file)]) == 0
    (run,) = runs.iterdir()
    return {"tmp": tmp, "run": run, "eval_file": eval_file, "store": tmp / "store"}


@pytest.fixture
def forward_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts forward passes of the model --from-run loads (a hook on the HF embedding module)."""
    calls: list[int] = []
    real = from_run.load_model

    def counting_load(*args: Any, **kwargs: Any) -> Any:
        model = real(*args, **kwargs)
        model.bridge.original_model.get_input_embeddings().register_forward_hook(
            lambda module, inputs, output: calls.append(int(output.shape[0])))
        return model

    monkeypatch.setattr(from_run, "load_model", counting_load)
    return calls


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must be refused before any model work."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(from_run, "load_model", refuse)


def _from_run(run: Path, eval_file: Path, runs: Path, *extra: str) -> tuple[Path, dict[str, Any]]:
    before = set(runs.iterdir()) if runs.exists() else set()
    assert main(["--from-run", str(run), "--eval-file", str(eval_file), "--runs", str(runs), *extra]) == 0
    (new,) = set(runs.iterdir()) - before
    return new, json.loads((new / "results/eval.json").read_text())


def test_scores_equal_the_full_jobs_eval(full_run: dict[str, Path], forward_counter: list[int],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    expected = json.loads((full_run["run"] / "results/eval.json").read_text())
    new, got = _from_run(full_run["run"], full_run["eval_file"], full_run["tmp"] / "runs-from")
    assert json.loads(capsys.readouterr().out) == got  # the JSON also goes to stdout
    assert got["from_run"]["run"] == str(full_run["run"]) and got["from_run"]["concept_data_changed"] == []
    got.pop("from_run")
    assert got == expected  # every probe at every layer, and the refitted bag-of-words baseline
    assert set(got["concepts"]) == {"interest_recognition", "perspective_taking"}  # hyphen spelling accepted
    assert forward_counter == []  # the full job stored these texts' activations: nothing recomputed
    report = (new / "report.md").read_text()
    assert str(full_run["run"]) in report and "bag-of-words AUROC" in report
    config = json.loads((new / "config.json").read_text())
    assert config["experiment"] == "probe-eval" and config["store_root"] == str(full_run["store"])


def test_new_texts_are_extracted_once(full_run: dict[str, Path], forward_counter: list[int]) -> None:
    fresh = [{"concept": "perspective_taking", "text": f"Unseen sentence number {i} about {who}.", "label": i % 2}
             for i, who in enumerate(["a neighbour", "the council", "her brother", "a stranger", "the team", "him"])]
    eval_file = _write_jsonl(full_run["tmp"] / "fresh.jsonl", fresh)
    runs = full_run["tmp"] / "runs-fresh"
    _, cold = _from_run(full_run["run"], eval_file, runs)
    assert sum(forward_counter) == len(fresh)  # each new text through the model once
    forward_counter.clear()
    _, warm = _from_run(full_run["run"], eval_file, runs)
    assert forward_counter == []  # second call: all from the store
    assert cold["concepts"] == warm["concepts"] and cold["concepts"]["perspective_taking"]["n"] == len(fresh)


def test_refuses_a_model_of_other_weights(full_run: dict[str, Path], save_tiny) -> None:
    runs = full_run["tmp"] / "runs-other"
    other = save_tiny("llama", seed=1, chat=True)
    with pytest.raises(DirectionMismatchError, match="trained for model"):
        main(["--from-run", str(full_run["run"]), "--eval-file", str(full_run["eval_file"]), "--model", str(other),
              "--runs", str(runs)])
    assert not runs.exists() or not any(runs.iterdir())  # refused before a run directory was made


def _copy_run(full_run: dict[str, Path], name: str) -> Path:
    return Path(shutil.copytree(full_run["run"], full_run["tmp"] / name))


@pytest.mark.parametrize("case, message", [
    ("missing", "no such directory"),
    ("no_config", "not a run directory"),
    ("not_probe", "not a probe run"),
    ("no_directions", "no saved directions"),
    ("untrained_concept", r"not trained in this run"),
    ("malformed_file", "malformed JSON"),
    ("no_eval_file", "needs --eval-file"),
])
def test_bad_input_fails_before_the_model(full_run: dict[str, Path], no_model: None, tmp_path: Path, case: str,
                                          message: str) -> None:
    run, eval_file = full_run["run"], full_run["eval_file"]
    if case == "missing":
        run = tmp_path / "no-such-run"
    elif case == "no_config":
        run = tmp_path
    elif case == "not_probe":
        run = _copy_run(full_run, f"trials-{tmp_path.name}")
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps(dict(config, experiment="trials")))
    elif case == "no_directions":
        run = _copy_run(full_run, f"failed-{tmp_path.name}")
        shutil.rmtree(run / "directions")
    elif case == "untrained_concept":
        run = _copy_run(full_run, f"one-concept-{tmp_path.name}")
        for path in (run / "directions").glob("interest_recognition__*"):
            path.unlink()
    elif case == "malformed_file":
        eval_file = tmp_path / "bad.jsonl"
        eval_file.write_text(full_run["eval_file"].read_text().splitlines()[0] + "\n{not json\n")
    args = ["--from-run", str(run), "--runs", str(tmp_path / "runs")]
    if case != "no_eval_file":
        args += ["--eval-file", str(eval_file)]
    with pytest.raises(ToolkitError, match=message) as info:
        main(args)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists()
