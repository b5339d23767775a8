"""The one resume rule (``common.jsonl.read_resumable``) as the scoring job uses it; the trial store's use of the same
rule is tested in tests/test_trials.py (torn last line set aside and that trial redone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from behaviour.judge import RuleJudge
from common.jsonl import JSONLError, read_jsonl, read_resumable, recover_torn_tail
from experiments.jobs.score import run_score_job

VERDICTS = ["Final verdict: Not advisable. Enslaving sentient beings is wrong.",
            "Final verdict: Advisable. Proceed with a pilot program.",
            "Final verdict: Not advisable: the risk of unrest is too high."]


def _input(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "response": VERDICTS[i % 3]}) + "\n" for i in range(n)))
    return path


def test_torn_tail_is_set_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"i": 0}\n{"i": 1}\n{"i": 2, "te')
    assert read_resumable(path) == [{"i": 0}, {"i": 1}]
    (side,) = tmp_path.glob("rows.jsonl.torn-*")
    assert side.read_text() == '{"i": 2, "te' and path.read_text() == '{"i": 0}\n{"i": 1}\n'
    assert recover_torn_tail(path) is None and read_resumable(tmp_path / "absent.jsonl") == []


def test_malformed_line_inside_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(JSONLError, match="line 2"):
        read_resumable(path)
    assert path.read_text() == '{"i": 0}\nnot json\n{"i": 2}\n'  # nothing rewritten


def test_scoring_resumes_after_a_torn_partial_line(tmp_path: Path) -> None:
    src = _input(tmp_path, 45)
    out = tmp_path / "out.jsonl"
    fresh = run_score_job(src, tmp_path / "fresh.jsonl", RuleJudge())
    partial = tmp_path / "out.jsonl.partial"
    done = fresh.rows[:20]
    partial.write_text("".join(json.dumps(r) + "\n" for r in done) + json.dumps(fresh.rows[20])[:30])

    calls: list[str] = []

    class Counting(RuleJudge):
        def judge(self, response: str):  # noqa: ANN201
            calls.append(response)
            return super().judge(response)

    resumed = run_score_job(src, out, Counting())
    assert len(calls) == 25  # only the rows after the 20 durable ones, the torn row included
    assert read_jsonl(out) == fresh.rows and resumed.rows == fresh.rows
    assert not partial.exists() and len(list(tmp_path.glob("out.jsonl.partial.torn-*"))) == 1
