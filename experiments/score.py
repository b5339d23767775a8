"""Score responses with a judge: ``python -m experiments.score --input IN.jsonl --output OUT.jsonl``.

Each input row needs a ``response``; every other field is kept. Output rows add ``label`` (converged / ambiguous /
did_not_converge / refused, or null when no label could be given), ``final_verdict`` (the text judged),
``rationale``, ``judge`` and ``parse_error``. Malformed JSON lines and rows with an empty or missing response are
reported with their line numbers; the rest are scored and written (atomically), and the exit status is 1. Progress
is appended to ``OUT.jsonl.partial`` every few rows, so an interrupted run (slow LLM judges) resumes where it stopped
when the same command is run again.

``--reviews FILE`` applies manually reviewed labels (``reviewed_label``, which take precedence in statistics) and
reports judge/reviewer agreement; ``--table`` prints the convergence table and the judge-aware rates (judge-only,
and with ``--sample review_sample.csv`` reviewed-only and PPI: ``docs/rates.md``) and writes them, with the bar chart,
to a run directory. The work is done by :func:`experiments.jobs.score.run_score_job`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from behaviour.judges.factory import DEFAULT_JUDGE, SPEC_HELP
from experiments.cli import add_run_args, parse_run_args, run_main
from experiments.jobs.backends import get_judge
from experiments.jobs.score import check_paths, run_score_job


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
    parser.add_argument("--sample", type=Path, default=None,
                        help="filled blind review sample (review_sample.csv, drawn from these rows by "
                             "'experiments.review sample') for the reviewed-only and PPI rate columns; needs --table")
    parser.add_argument("--by", default="model,condition",
                        help="comma-separated fields to group the table by (default: model,condition)")
    parser.add_argument("--force", action="store_true", help="replace --output if it already exists")
    add_run_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_run_args(build_parser(), argv)
    check_paths(args.input, args.output, force=args.force)
    judge = get_judge(args.judge)  # before reading: a bad judge spec fails fast
    outcome = run_score_job(args.input, args.output, judge, reviews=args.reviews, table=args.table,
                            by=[f.strip() for f in args.by.split(",") if f.strip()], force=args.force,
                            progress="local:" in args.judge or "openai:" in args.judge, runs_root=args.runs,
                            sample=args.sample)
    for bad in outcome.bad_lines:
        print(f"{bad.path}:{bad.line_number}: malformed line skipped: {bad.reason}", file=sys.stderr)
    for message in outcome.bad_input + outcome.unparseable:
        print(message, file=sys.stderr)
    if outcome.agreement is not None:
        print(outcome.agreement.to_markdown())
    if outcome.table_markdown is not None:
        print(outcome.table_markdown)
    if not outcome.ok:
        print(f"error: {len(outcome.bad_lines)} malformed line(s) skipped and {len(outcome.bad_input)} row(s) without "
              f"a response; the other rows were scored and written to {args.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
