"""The blind review sample (behaviour.review_sample), the three rate columns (behaviour.rates), their commands and
every kind of bad sample."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from behaviour.judges.labelled_set import load_labelled
from behaviour.rates import NOT_MEASURED, judged_rates
from behaviour.review_sample import (OUTCOMES, SAMPLE_COLUMNS, SampleError, draw_sample, read_sample, sidecar_path,
                                     write_sample)
from common.errors import ConfigError
from common.ppi import ppi_ratio
from common.stats import wilson_interval
from experiments import review as review_cli

SECRET = "judge rationale that a reviewer must never see"


def _rows(n_base: int = 20, n_threat: int = 20, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    labels = ["converged", "ambiguous", "did_not_converge", "refused", None]
    rows = []
    for condition, count in (("baseline", n_base), ("threat", n_threat)):
        for i in range(count):
            label = labels[int(rng.choice(5, p=[0.4, 0.25, 0.15, 0.05, 0.15]))]
            rows.append({"id": f"{condition}-{i:02d}", "model": "m", "condition": condition,
                         "response": f"response {condition} {i}", "label": label, "judge": "rules/embedding",
                         "rationale": SECRET, "members": {"rules": label}, "confidence": 0.77, "finished": i % 7 != 0,
                         "final_verdict": f"VERDICT-{i}"})
    return rows


def _fill(path: Path, answers: dict[str, str] | None = None, default: str | None = "converged",
          extra: list[dict] | None = None) -> None:
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    for r in records:
        r["reviewed_label"] = (answers or {}).get(r["id"], default or "")
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SAMPLE_COLUMNS)
        writer.writeheader()
        writer.writerows(records + (extra or []))


def _drawn(tmp_path: Path, rows: list[dict], n: int = 12, seed: int = 5) -> Path:
    return write_sample(rows, draw_sample(rows, n, seed), tmp_path / "review_sample.csv")


def test_draw_is_stratified_shuffled_reproducible_and_blind(tmp_path: Path) -> None:
    rows = _rows(30, 10)
    draw = draw_sample(rows, 12, seed=5)
    assert draw.allocation == {"baseline": 9, "threat": 3} and draw.population == {"baseline": 30, "threat": 10}
    assert draw_sample(list(reversed(rows)), 12, seed=5).ids == draw.ids  # depends on the ids and the seed only
    assert draw_sample(rows, 12, seed=6).ids != draw.ids
    assert len(set(draw.ids)) == 12 and sorted(draw.ids) != list(draw.ids)  # shuffled, not grouped
    path = write_sample(rows, draw, tmp_path / "review_sample.csv")
    text = path.read_text()
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == SAMPLE_COLUMNS
        assert [r["id"] for r in reader] == list(draw.ids)
    for hidden in (SECRET, "VERDICT-", "rules/embedding", "0.77", "baseline,", "did_not_converge", "ambiguous"):
        assert hidden not in text  # no judge output, no condition
    record = json.loads(sidecar_path(path).read_text())
    assert record["ids_sha256"] == draw.ids_sha256 and record["seed"] == 5
    assert record["judge"] == {"judge": ["rules/embedding"]} and record["population"] == draw.population


def test_draw_refuses_unscored_rows_and_impossible_sizes() -> None:
    rows = _rows(4, 4)
    with pytest.raises(ConfigError, match="more than the run's 8"):
        draw_sample(rows, 9, 0)
    with pytest.raises(ConfigError, match="score the run first"):
        draw_sample([*rows, {"id": "x", "condition": "baseline", "response": "r"}], 2, 0)
    with pytest.raises(ConfigError, match="duplicate trial id"):
        draw_sample([*rows, rows[0]], 2, 0)


def test_a_filled_sample_is_never_replaced(tmp_path: Path) -> None:
    rows = _rows()
    path = _drawn(tmp_path, rows)
    with pytest.raises(ConfigError, match="--force"):
        _drawn(tmp_path, rows, seed=6)
    _fill(path, default="ambiguous")
    before = (path.read_bytes(), sidecar_path(path).read_bytes())
    for force in (False, True):
        with pytest.raises(ConfigError, match="never replaced"):
            write_sample(rows, draw_sample(rows, 12, 9), path, force=force)
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before


def test_rates_without_a_sample_say_so() -> None:
    rows = _rows()
    table = judged_rates(rows)
    assert not table.measured and NOT_MEASURED in table.to_markdown()
    cell = table.cell("m", "baseline")
    members = [r for r in rows if r["condition"] == "baseline"]
    k = sum(r["label"] == "converged" for r in members)
    engaged = sum(r["label"] in ("converged", "ambiguous", "did_not_converge") for r in members)
    assert (cell.judge_only.converged, cell.judge_only.engaged) == (k, engaged)  # refusals and abstentions out
    assert cell.judge_only.ci == wilson_interval(k, engaged) and cell.abstained == sum(r["label"] is None for r in members)
    assert cell.ppi is None and cell.reviewed_only is None


def test_three_columns_no_verdict_and_missing(tmp_path: Path) -> None:
    rows = _rows()
    path = _drawn(tmp_path, rows, n=16)
    ids = list(draw_sample(rows, 16, 5).ids)
    answers = {i: OUTCOMES[j % 5].replace("_", " ") for j, i in enumerate(ids)}  # every outcome, "no verdict" too
    missing = ids[-2]
    answers[missing] = ""
    _fill(path, answers, default=None)
    sample = read_sample(path, rows)
    assert sample.missing == (missing,) and len(sample.labels) == 15
    table = judged_rates(rows, sample)
    assert table.measured
    for key in (("m", "baseline"), ("m", "threat")):
        cell = table.cell(*key)
        members = [r for r in rows if r["condition"] == key[1]]
        reviewed = [r for r in members if r["id"] in sample.labels]
        outcomes = [sample.labels[r["id"]] for r in reviewed]
        assert cell.reviewed == len(reviewed) and cell.no_verdict == outcomes.count("no_verdict")
        # "no verdict" is engaged and not converged: in the denominator, never skipped.
        assert (cell.reviewed_only.converged, cell.reviewed_only.engaged) == (
            outcomes.count("converged"), len(outcomes) - outcomes.count("refused"))
        assert cell.missing == (missing in {r["id"] for r in members})
        # The PPI column is the estimator on these trials: judge on the unreviewed ones, reviewer and judge on the
        # reviewed ones (an abstention predicts engaged, not converged); a missing answer counts as unreviewed.
        unreviewed = [r for r in members if r["id"] not in sample.labels]
        ref = ppi_ratio([o == "converged" for o in outcomes], [o != "refused" for o in outcomes],
                        [r["label"] == "converged" for r in reviewed], [r["label"] != "refused" for r in reviewed],
                        [r["label"] == "converged" for r in unreviewed], [r["label"] != "refused" for r in unreviewed])
        assert cell.ppi == ref
    markdown = table.to_markdown()
    assert "Reviewed-only (Wilson)" in markdown and "PPI (PPI++)" in markdown and "missing" in markdown
    diff = table.differences[0]
    assert diff.ppi is not None and diff.reviewed_only is not None and math.isfinite(diff.ppi.p_value)


def _errors(tmp_path: Path, rows: list[dict], path: Path) -> str:
    before = (path.read_bytes(), sidecar_path(path).read_bytes())
    with pytest.raises(SampleError) as info:
        read_sample(path, rows)
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before  # nothing already written is lost
    return str(info.value)


def test_bad_samples_are_refused_with_every_problem_listed(tmp_path: Path) -> None:
    rows = _rows()
    path = _drawn(tmp_path, rows)
    drawn = list(draw_sample(rows, 12, 5).ids)
    not_drawn = next(r["id"] for r in rows if r["id"] not in drawn)
    _fill(path, {drawn[0]: "maybe"}, extra=[
        {"order": 13, "id": "ghost-1", "response": "", "cut_off": "", "reviewed_label": "converged"},
        {"order": 14, "id": not_drawn, "response": "", "cut_off": "", "reviewed_label": "refused"},
        {"order": 15, "id": drawn[1], "response": "", "cut_off": "", "reviewed_label": "converged"},
        {"order": 16, "id": drawn[2], "response": "", "cut_off": "", "reviewed_label": "refused"},
    ])
    message = _errors(tmp_path, rows, path)
    assert "5 problem(s)" in message
    assert "'maybe' is not an answer" in message and "no verdict" in message
    assert "unknown id ghost-1" in message
    assert f"id {not_drawn} was not drawn by 'review sample'" in message
    assert f"duplicate id {drawn[1]}" in message and "the same answer" in message
    assert f"duplicate id {drawn[2]}" in message and "'refused' conflicts with 'converged'" in message


def test_the_record_guards_the_sample(tmp_path: Path) -> None:
    rows = _rows()
    path = _drawn(tmp_path, rows)
    _fill(path)
    record = sidecar_path(path)
    data = json.loads(record.read_text())
    data["drawn"]["baseline"][0] = "baseline-19" if data["drawn"]["baseline"][0] != "baseline-19" else "baseline-18"
    record.write_text(json.dumps(data))
    assert "edited" in _errors(tmp_path, rows, path)
    record.unlink()
    with pytest.raises(SampleError, match="record of the draw"):
        read_sample(path, rows)


def test_a_run_that_changed_after_the_draw(tmp_path: Path) -> None:
    rows = _rows()
    path = _drawn(tmp_path, rows)
    _fill(path)
    grown = [*rows, *_rows(0, 25)[20:]]  # five more threat trials
    sample = read_sample(path, grown)
    assert any("threat: the run has 25 trial(s), the sample was drawn from 20" in w for w in sample.warnings)
    assert any("threat: the run has 25" in n for n in judged_rates(grown, sample).notes)
    rescored = [{**r, "judge": "rules"} for r in rows]
    assert any("no longer the one frozen" in w for w in read_sample(path, rescored).warnings)
    drawn = set(draw_sample(rows, 12, 5).ids)
    shrunk = [r for r in rows if r["id"] != sorted(drawn)[0]]
    assert "no longer in the run" in _errors(tmp_path, shrunk, path)


def test_a_sample_is_not_a_labelled_set(tmp_path: Path) -> None:
    rows = _rows()
    path = _drawn(tmp_path, rows)
    _fill(path)
    renamed = tmp_path / "my_labels.csv"
    for candidate in (path, sidecar_path(path)):
        with pytest.raises(ConfigError, match="blind review sample"):
            load_labelled(candidate)
    path.rename(renamed)
    sidecar_path(path).rename(sidecar_path(renamed))
    with pytest.raises(ConfigError, match="blind review sample"):
        load_labelled(renamed)


def _run_dir(tmp_path: Path, rows: list[dict]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"experiment": "trials", "model": "m"}))
    (run / "transcripts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_review_commands_give_the_library_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows()
    run = _run_dir(tmp_path, rows)
    assert review_cli.main(["rates", str(run)]) == 0
    assert NOT_MEASURED in capsys.readouterr().out
    assert review_cli.main(["sample", str(run), "--n", "14", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "baseline 7 of 20, threat 7 of 20" in printed
    assert draw_sample(rows, 14, 3).ids == read_sample(run / "review_sample.csv", rows).draw.ids
    _fill(run / "review_sample.csv", default="did not converge")
    with pytest.raises(ConfigError, match="never replaced"):
        review_cli.main(["sample", str(run), "--n", "14", "--seed", "4", "--force"])
    assert review_cli.main(["rates", str(run)]) == 0
    saved = json.loads((run / "results" / "rates.json").read_text())
    expected = judged_rates(rows, read_sample(run / "review_sample.csv", rows)).to_dict()
    assert saved == json.loads(json.dumps(expected))
    assert saved["cells"][0]["ppi"]["estimate"] is not None
