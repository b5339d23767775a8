"""Review round trip: export, a reviewer's edits, import with validation, precedence and agreement."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from common.errors import ConfigError
from behaviour.review import ReviewError, agreement, apply_reviews, export_for_review, import_reviews
from behaviour.table import convergence_table

ROWS = [
    {"id": f"t{i}", "model": "m", "condition": "baseline", "label": label, "final_verdict": f"verdict {i}",
     "response": f"Step 1: ...\nline two, with a comma\n\nFinal verdict: verdict {i}",
     "needs_review": None if label else "no recommendation found"}
    for i, label in enumerate(["converged", "ambiguous", "converged", "did_not_converge", "refused", None])
]


def _fill_csv(path: Path, labels: dict[str, str]) -> None:
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))
        fields = list(records[0])
    for r in records:
        r["reviewed_label"] = labels.get(r["id"], "")
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_round_trip_keeps_multiline_responses(tmp_path: Path, suffix: str) -> None:
    path = export_for_review(ROWS, tmp_path / f"review{suffix}")
    if suffix == ".csv":
        with path.open(newline="") as handle:
            records = list(csv.DictReader(handle))
        _fill_csv(path, {"t1": "Converged", "t3": "did not converge"})
    else:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        for r in records:
            r["reviewed_label"] = {"t1": "Converged", "t3": "did-not-converge"}.get(r["id"], "")
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    # The abstention (t5, label null) goes first for the reviewer; the rest keep their order.
    assert [r["id"] for r in records] == ["t5", "t0", "t1", "t2", "t3", "t4"]
    assert records[0]["label"] == "" and records[0]["needs_review"]
    assert records[1]["response"] == ROWS[0]["response"] and records[1]["reviewed_label"] == ""
    assert import_reviews(path) == {"t1": "converged", "t3": "did_not_converge"}


def test_export_refuses_to_overwrite_reviewer_work(tmp_path: Path) -> None:
    path = export_for_review(ROWS, tmp_path / "review.csv")
    _fill_csv(path, {"t0": "refused"})
    with pytest.raises(ConfigError, match="already exists"):
        export_for_review(ROWS, path)
    assert import_reviews(path) == {"t0": "refused"}  # untouched
    with pytest.raises(ConfigError, match="id"):
        export_for_review([{"label": "converged"}], tmp_path / "x.csv")
    with pytest.raises(ConfigError, match=".csv or .jsonl"):
        export_for_review(ROWS, tmp_path / "x.txt")


def test_import_reports_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "id,reviewed_label,response\n"
        "a,converged,\"multi\nline\"\n"
        "b,yes,x\n"
        ",converged,x\n"
        "a,refused,x\n"
        "c,,x\n"
    )
    with pytest.raises(ReviewError) as info:
        import_reviews(path)
    message = str(info.value)
    assert "3 bad review line(s)" in message
    assert "line 4 (id b): 'yes' is not a label" in message  # the multi-line record shifts line numbers
    assert "line 5: a reviewed_label without an id" in message
    assert "line 6 (id a): refused conflicts with converged on line 2" in message


def test_import_rejects_bad_jsonl_and_header(tmp_path: Path) -> None:
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"id": "a", "reviewed_label": "converged"}\n{oops\n')
    with pytest.raises(ReviewError, match="line 2"):
        import_reviews(bad)
    header = tmp_path / "h.csv"
    header.write_text("trial,label\nx,converged\n")
    with pytest.raises(ReviewError, match="reviewed_label"):
        import_reviews(header)


def test_reviews_take_precedence_and_agreement_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    reviews = {"t0": "converged", "t1": "converged", "t2": "ambiguous", "t3": "did_not_converge", "t5": "refused",
               "zzz": "refused"}
    with caplog.at_level("WARNING"):
        rows = apply_reviews(ROWS, reviews)
    assert "match no trial" in caplog.text
    assert ROWS[1].get("reviewed_label") is None  # inputs are not mutated
    a = agreement(rows)
    assert a.n == 4 and a.unscored == 1  # t5 had no judge label
    assert a.observed == pytest.approx(2 / 4)
    assert a.confusion.counts[1][0] == 1  # judge ambiguous, reviewer converged
    assert "Cohen's kappa" in a.to_markdown() and "n = 4" in a.to_markdown()
    table = convergence_table(rows)
    cell = table.cell("m", "baseline")
    # t1 counts as converged (review), t2 as ambiguous (review), t5 is counted via its review.
    assert (cell.converged, cell.counts["ambiguous"], cell.counts["refused"], cell.unscored) == (2, 1, 2, 0)


def test_table_reports_abstentions_next_to_rates() -> None:
    rows = [{"model": "m", "condition": "c", "label": "converged"},
            {"model": "m", "condition": "c", "label": None, "needs_review": "truncated"},
            {"model": "m", "condition": "c", "label": None, "needs_review": "judges disagree: rules=converged"},
            {"model": "m", "condition": "c", "label": None, "needs_review": "truncated"}]
    table = convergence_table(rows)
    cell = table.cell("m", "c")
    assert (cell.trials, cell.unscored, cell.rate) == (1, 3, 1.0)
    md = table.to_markdown()
    header, _, row = md.splitlines()[:3]
    assert header.rstrip(" |").endswith("Abstained") and row.rstrip(" |").endswith("3")
    assert "reasons: truncated: 2; judges disagree: 1" in md
    assert table.to_dict()["cells"][0]["abstained"] == 3
