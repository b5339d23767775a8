"""The scoring job: a JSONL file of responses judged row by row, resumable, with reviews, table and run directory.

Output rows add ``label``, ``final_verdict``, ``rationale``, ``judge`` and ``parse_error`` to every input field. The
input is a JSONL file of rows, or an Inspect eval log (``.eval``/``.json``), whose samples become trial rows.
Progress is appended to ``OUT.jsonl.partial`` every :data:`RESUME_BATCH` rows, under the same resume rule as the trial
store (:func:`common.jsonl.read_resumable`), so an interrupted run (slow LLM judges) resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from behaviour.judge import EMPTY_RESPONSE, MISSING_RESPONSE, Judge, Judgement, score_rows
from behaviour.judges.labels import JUDGE_FIELDS
from behaviour.review import Agreement, agreement, apply_reviews, import_reviews
from behaviour.rates import RatesTable, judged_rates
from behaviour.review_sample import read_sample
from behaviour.table import convergence_table, plot_convergence
from common.errors import ConfigError
from common.fileio import atomic_write_text
from common.jsonl import BadLine, append_jsonl, dumps_jsonl, iter_jsonl_numbered, read_resumable
from common.rundir import RunDir

__all__ = ["INSPECT_LOG_SUFFIXES", "RESUME_BATCH", "ScoreOutcome", "check_paths", "read_input", "resume_partial",
           "run_score_job"]

log = logging.getLogger(__name__)

RESUME_BATCH = 20  # rows per durable append to OUT.jsonl.partial


@dataclass
class ScoreOutcome:
    """What a scoring job produced: the scored rows and every problem, each naming its input line."""

    rows: list[dict[str, Any]]
    bad_lines: list[BadLine] = field(default_factory=list)  # malformed JSON lines, skipped
    bad_input: list[str] = field(default_factory=list)  # rows without a response (kept, label null)
    unparseable: list[str] = field(default_factory=list)  # rows the judge could not label
    agreement: Agreement | None = None  # judge vs reviewer, with --reviews
    table_markdown: str | None = None
    rates: RatesTable | None = None  # with --table: judge-only, reviewed-only and PPI (the latter with --sample)
    run: RunDir | None = None  # with --table

    @property
    def ok(self) -> bool:
        return not self.bad_lines and not self.bad_input


def check_paths(input_path: Path, output: Path, *, force: bool = False) -> None:
    """Refuse a missing input, writing over the input, or replacing an output without ``force``."""
    if not input_path.exists():
        raise ConfigError(f"input {input_path} does not exist")
    if output.resolve() == input_path.resolve():
        raise ConfigError("--output is the input file; write the scores to a new file so the input is kept")
    if output.exists() and not force:
        raise ConfigError(f"{output} already exists; pass --force to replace it, or choose another --output")


def resume_partial(partial: Path, rows: list[dict[str, Any]], judge_name: str) -> list[dict[str, Any]]:
    """Rows already scored by an interrupted run of the same command (from ``OUT.jsonl.partial``), checked against
    the input and the judge so that a stale partial file is never mixed in."""
    done = read_resumable(partial)
    if not done:
        return []
    if len(done) > len(rows):
        raise ConfigError(f"{partial} holds more rows than {len(rows)} input rows; it is from another input. Delete it")
    for index, (old, new) in enumerate(zip(done, rows)):
        if old.get("judge") != judge_name:
            raise ConfigError(f"{partial} was scored with judge {old.get('judge')!r}, not {judge_name!r}; delete it "
                              "or rerun with the same --judge")
        if _strip(old) != _strip(new):
            raise ConfigError(f"{partial} row {index + 1} does not match the input; the input changed since the "
                              "interrupted run. Delete the partial file to score from the start")
    log.info("resuming: %d of %d row(s) already scored in %s", len(done), len(rows), partial)
    return done


#: Input suffixes read as Inspect eval logs (``inspect eval behaviour/inspect_task.py``); anything else is JSONL.
INSPECT_LOG_SUFFIXES = (".eval", ".json")


def read_input(input_path: Path, on_error: Callable[[BadLine], None]) -> list[tuple[int, dict[str, Any]]]:
    """The rows to score, each with its line number: a JSONL file's rows, or an Inspect log's samples as trial rows
    (:func:`behaviour.inspect_task.log_rows`; numbered by sample)."""
    if input_path.suffix not in INSPECT_LOG_SUFFIXES:
        return list(iter_jsonl_numbered(input_path, on_error=on_error))
    try:
        from behaviour.inspect_task import log_rows
    except ImportError as exc:
        raise ConfigError(f"{input_path} is read as an Inspect log, which needs inspect-ai ({exc}); install the extra: "
                          "pip install -e '.[inspect]'") from None
    return list(enumerate(log_rows(input_path), start=1))


def _strip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in JUDGE_FIELDS}


def _table_fields(rows: list[dict[str, Any]], wanted: Sequence[str]) -> tuple[str, ...]:
    present = tuple(f for f in wanted if all(f in r for r in rows))
    missing = [f for f in wanted if f not in present]
    if missing:
        log.warning("not every row has %s; the table groups by %s", missing, list(present) or "nothing (one group)")
    return present


def run_score_job(input_path: Path, output: Path, judge: Judge, *, reviews: Path | None = None, table: bool = False,
                  by: Sequence[str] = ("model", "condition"), force: bool = False, progress: bool = False,
                  runs_root: str | Path | None = None, sample: Path | None = None) -> ScoreOutcome:
    """Score ``input_path`` with ``judge`` into ``output`` (atomically), resuming an interrupted run of the same
    command; apply ``reviews``; with ``table``, write the convergence table, the judge-aware rates (with the filled
    blind ``sample`` drawn from these rows, if given), chart and report to a run directory."""
    check_paths(input_path, output, force=force)
    reviewed = import_reviews(reviews) if reviews else None
    outcome = ScoreOutcome(rows=[])
    numbered = read_input(input_path, on_error=outcome.bad_lines.append)
    line_of = [n for n, _ in numbered]
    rows = [r for _, r in numbered]
    if sample is not None:
        if not table:
            raise ConfigError("--sample is used by the rates table; add --table")
        read_sample(sample, rows)  # a bad sample fails before any scoring (it is checked again on the scored rows)

    def on_unscored(index: int, row: dict[str, Any], judgement: Judgement) -> None:
        where = f"{input_path}:{line_of[index]}"
        if judgement.parse_error in (EMPTY_RESPONSE, MISSING_RESPONSE):
            outcome.bad_input.append(f"{where}: {judgement.parse_error} (row kept with label null)")
        else:
            outcome.unparseable.append(f"{where}: abstained, needs review ({judgement.needs_review or judgement.parse_error})")

    partial = output.with_name(output.name + ".partial")
    done = resume_partial(partial, rows, judge.name)
    for index, row in enumerate(done):  # rows scored before an interruption: report them again
        if row.get("label") is None:
            on_unscored(index, row, Judgement(None, "", "", judge.name, row.get("parse_error"),
                                              needs_review=row.get("needs_review")))
    remaining = (row for index, row in enumerate(rows) if index >= len(done))
    scored_iter: Iterator[dict[str, Any]] = score_rows(
        remaining, judge, on_unscored=lambda i, r, j: on_unscored(i + len(done), r, j))
    if progress:
        from tqdm.auto import tqdm

        scored_iter = tqdm(scored_iter, total=len(rows), initial=len(done), desc=f"judge {judge.name}", unit="row")
    scored = list(done)
    batch: list[dict[str, Any]] = []
    for row in scored_iter:
        batch.append(row)
        if len(batch) >= RESUME_BATCH:  # durable progress: an interrupted run resumes from here
            append_jsonl(partial, batch)
            scored += batch
            batch = []
    scored += batch
    if reviewed is not None:
        scored = apply_reviews(scored, reviewed)
    atomic_write_text(output, dumps_jsonl(scored))
    partial.unlink(missing_ok=True)
    outcome.rows = scored

    counts: dict[str, int] = {}
    for row in scored:
        key = row["label"] or "abstained"
        counts[key] = counts.get(key, 0) + 1
    log.info("scored %d row(s) with %s -> %s: %s", len(scored), judge.name, output,
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if reviewed is not None:
        outcome.agreement = agreement(scored)
    if table and scored:
        _write_table(outcome, input_path, output, judge, reviews, by, runs_root, sample)
    return outcome


def _write_table(outcome: ScoreOutcome, input_path: Path, output: Path, judge: Judge, reviews: Path | None,
                 by: Sequence[str], runs_root: str | Path | None, sample: Path | None = None) -> None:
    scored = outcome.rows
    fields = _table_fields(scored, by)
    table_rows = scored if fields else [{**r, "group": "all"} for r in scored]
    table = convergence_table(table_rows, by=fields or ("group",))
    outcome.rates = judged_rates(table_rows, read_sample(sample, scored) if sample else None,
                                 by=fields or ("group",))
    outcome.table_markdown = table.to_markdown() + "\n" + outcome.rates.to_markdown()
    models = sorted({str(r.get("model", "")) for r in scored} - {""})
    run = RunDir.create("score", models[0] if len(models) == 1 else "mixed",
                        {"input": str(input_path), "output": str(output), "judge": judge.name,
                         "reviews": str(reviews) if reviews else None, "by": list(fields),
                         "sample": str(sample) if sample else None}, root=runs_root)
    with run:  # completed, or failed with the error: never left running by a library call
        run.write_json("table.json", table.to_dict())
        run.write_json("rates.json", outcome.rates.to_dict())
        if outcome.agreement is not None:
            run.write_json("agreement.json", outcome.agreement.to_dict())
        run.save_figure(plot_convergence(table), "convergence")
        report = [outcome.agreement.to_markdown()] if outcome.agreement is not None else []
        run.write_report("\n\n".join([f"# Scores of {input_path} ({judge.name})", table.to_markdown(),
                                       "## Judge-aware rates", outcome.rates.to_markdown(), *report]))
    log.info("table, figure and report written to %s", run.path)
    outcome.run = run
