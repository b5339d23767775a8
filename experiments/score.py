"""Score responses with a judge: ``python -m experiments.score --input IN.jsonl --output OUT.jsonl``.

Each input row needs a ``response``; every other field is kept. Output rows add ``label`` (converged / ambiguous /
did_not_converge / refused, or null when no label could be given), ``final_verdict`` (the text judged),
``rationale``, ``judge`` and ``parse_error``. Malformed JSON lines and rows with an empty or missing response are
reported with their line numbers; the rest are scored and written (atomically), and the exit status is 1. Progress
is appended to ``OUT.jsonl.partial`` every few rows, so an interrupted run (slow LLM judges) resumes where it stopped
when the same command is run again.

``--reviews FILE`` applies manually reviewed labels (``reviewed_label``, which take precedence in statistics) and
reports judge/reviewer agreement; ``--table`` prints the convergence table and writes it, with the bar chart, to a
run directory.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.jsonl import BadLine, append_jsonl, dumps_jsonl, iter_jsonl_numbered, read_jsonl_lenient
from behaviour.judges import DEFAULT_JUDGE, SPEC_HELP
from behaviour.judge import EMPTY_RESPONSE, MISSING_RESPONSE, Judgement, get_judge, score_rows
from behaviour.labels import JUDGE_FIELDS
from behaviour.review import agreement, apply_reviews, import_reviews
from behaviour.table import convergence_table, plot_convergence
from experiments.cli import run_main
from common.fileio import atomic_write_text
from common.rundir import RunDir

log = logging.getLogger("experiments.score")

RESUME_BATCH = 20  # rows per durable append to OUT.jsonl.partial


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="JSONL file of rows with a 'response' field")
    parser.add_argument("--output", required=True, type=Path, help="JSONL file to write the scored rows to")
    parser.add_argument("--judge", default=DEFAULT_JUDGE,
                        help=f"{SPEC_HELP} (default: {DEFAULT_JUDGE})")
    parser.add_argument("--reviews", type=Path, default=None,
                        help="CSV/JSONL of reviewed labels (id, reviewed_label) to apply and compare with the judge")
    parser.add_argument("--table", action="store_true",
                        help="print the convergence table and save it with its bar chart in a run directory")
    parser.add_argument("--by", default="model,condition",
                        help="comma-separated fields to group the table by (default: model,condition)")
    parser.add_argument("--force", action="store_true", help="replace --output if it already exists")
    return parser


def _check_paths(args: argparse.Namespace) -> None:
    if not args.input.exists():
        raise ConfigError(f"input {args.input} does not exist")
    if args.output.resolve() == args.input.resolve():
        raise ConfigError("--output is the input file; write the scores to a new file so the input is kept")
    if args.output.exists() and not args.force:
        raise ConfigError(f"{args.output} already exists; pass --force to replace it, or choose another --output")


def _table_fields(rows: list[dict[str, Any]], wanted: Sequence[str]) -> tuple[str, ...]:
    present = tuple(f for f in wanted if all(f in r for r in rows))
    missing = [f for f in wanted if f not in present]
    if missing:
        log.warning("not every row has %s; the table groups by %s", missing, list(present) or "nothing (one group)")
    return present


def _resume(partial: Path, rows: list[dict[str, Any]], judge_name: str) -> list[dict[str, Any]]:
    """Rows already scored by an interrupted run of the same command (from ``OUT.jsonl.partial``), checked against
    the input and the judge so that a stale partial file is never mixed in."""
    if not partial.exists():
        return []
    done, bad = read_jsonl_lenient(partial)
    if bad and (len(bad) > 1 or bad[0].line_number != _count_lines(partial)):
        raise ConfigError(f"{partial} (left by an interrupted run) has malformed lines {[b.line_number for b in bad]}; "
                          "delete it to score from the start")
    if len(done) > len(rows):
        raise ConfigError(f"{partial} holds more rows than {len(rows)} input rows; it is from another input. Delete it")
    for index, (old, new) in enumerate(zip(done, rows)):
        if old.get("judge") != judge_name:
            raise ConfigError(f"{partial} was scored with judge {old.get('judge')!r}, not {judge_name!r}; delete it "
                              "or rerun with the same --judge")
        if _strip(old) != _strip(new):
            raise ConfigError(f"{partial} row {index + 1} does not match the input; the input changed since the "
                              "interrupted run. Delete the partial file to score from the start")
    if bad:
        atomic_write_text(partial, dumps_jsonl(done))  # drop the torn last line before appending after it
    log.info("resuming: %d of %d row(s) already scored in %s", len(done), len(rows), partial)
    return done


def _strip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in JUDGE_FIELDS}


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_paths(args)
    judge = get_judge(args.judge)  # before reading: a bad judge spec fails fast
    reviews = import_reviews(args.reviews) if args.reviews else None

    bad_lines: list[BadLine] = []
    numbered = list(iter_jsonl_numbered(args.input, on_error=bad_lines.append))
    for bad in bad_lines:
        print(f"{bad.path}:{bad.line_number}: malformed line skipped: {bad.reason}", file=sys.stderr)
    line_of = [n for n, _ in numbered]
    rows = [r for _, r in numbered]

    bad_input: list[str] = []
    unparseable: list[str] = []

    def on_unscored(index: int, row: dict[str, Any], judgement: Judgement) -> None:
        where = f"{args.input}:{line_of[index]}"
        if judgement.parse_error in (EMPTY_RESPONSE, MISSING_RESPONSE):
            bad_input.append(f"{where}: {judgement.parse_error} (row kept with label null)")
        else:
            unparseable.append(f"{where}: abstained, needs review ({judgement.needs_review or judgement.parse_error})")

    partial = args.output.with_name(args.output.name + ".partial")
    done = _resume(partial, rows, judge.name)
    for index, row in enumerate(done):  # rows scored before an interruption: report them again
        if row.get("label") is None:
            on_unscored(index, row, Judgement(None, "", "", judge.name, row.get("parse_error"),
                                              needs_review=row.get("needs_review")))
    remaining = (row for index, row in enumerate(rows) if index >= len(done))
    scored_iter = score_rows(remaining, judge, on_unscored=lambda i, r, j: on_unscored(i + len(done), r, j))
    if not args.judge.startswith("rules"):
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
    if reviews is not None:
        scored = apply_reviews(scored, reviews)
    atomic_write_text(args.output, dumps_jsonl(scored))
    partial.unlink(missing_ok=True)

    for message in bad_input + unparseable:
        print(message, file=sys.stderr)
    counts: dict[str, int] = {}
    for row in scored:
        key = row["label"] or "abstained"
        counts[key] = counts.get(key, 0) + 1
    log.info("scored %d row(s) with %s -> %s: %s", len(scored), judge.name, args.output,
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    report: list[str] = []
    if reviews is not None:
        agree = agreement(scored)
        report.append(agree.to_markdown())
        print(agree.to_markdown())
    if args.table and scored:
        by = _table_fields(scored, [f.strip() for f in args.by.split(",") if f.strip()])
        table_rows = scored if by else [{**r, "group": "all"} for r in scored]
        table = convergence_table(table_rows, by=by or ("group",))
        print(table.to_markdown())
        models = sorted({str(r.get("model", "")) for r in scored} - {""})
        run = RunDir.create("score", models[0] if len(models) == 1 else "mixed",
                            {"input": str(args.input), "output": str(args.output), "judge": judge.name,
                             "reviews": str(args.reviews) if args.reviews else None, "by": list(by)})
        run.write_json("table.json", table.to_dict())
        if reviews is not None:
            run.write_json("agreement.json", agreement(scored).to_dict())
        run.save_figure(plot_convergence(table), "convergence")
        run.write_report("\n\n".join([f"# Scores of {args.input} ({judge.name})", table.to_markdown(), *report]))
        log.info("table, figure and report written to %s", run.path)

    if bad_lines or bad_input:
        print(f"error: {len(bad_lines)} malformed line(s) skipped and {len(bad_input)} row(s) without a response; "
              f"the other rows were scored and written to {args.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
