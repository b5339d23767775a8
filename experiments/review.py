"""Manual review of scored trials.

    python -m experiments.review export --input SCORED.jsonl --output review.csv
    (fill the reviewed_label column: converged, ambiguous, did_not_converge or refused; leave blank to skip)
    python -m experiments.review agreement --input SCORED.jsonl --reviews review.csv

``agreement`` prints Cohen's kappa and the confusion matrix (judge rows, reviewer columns). To use the reviewed
labels in the statistics, pass ``--reviews`` to ``experiments.score`` (or to the trials command).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from common.jsonl import read_jsonl
from behaviour.review import agreement, apply_reviews, export_for_review, import_reviews
from experiments.cli import run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.review", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write scored trials to a CSV/JSONL file for manual labelling")
    export.add_argument("--input", required=True, type=Path, help="scored JSONL (experiments.score output)")
    export.add_argument("--output", required=True, type=Path, help="review file to create (.csv or .jsonl)")
    agree = sub.add_parser("agreement", help="Cohen's kappa and confusion matrix of judge vs reviewed labels")
    agree.add_argument("--input", required=True, type=Path, help="scored JSONL")
    agree.add_argument("--reviews", required=True, type=Path, help="filled-in review file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = read_jsonl(args.input)
    if args.command == "export":
        path = export_for_review(rows, args.output)
        print(f"wrote {len(rows)} trial(s) to {path}; fill in reviewed_label and run "
              f"'python -m experiments.review agreement --input {args.input} --reviews {path}'")
        return 0
    reviewed = apply_reviews(rows, import_reviews(args.reviews))
    print(agreement(reviewed).to_markdown())
    return 0


if __name__ == "__main__":
    run_main(main)
