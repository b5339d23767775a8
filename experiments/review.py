"""Manual review of scored trials: the review queue, and the blind random sample for judge-aware rates.

    python -m experiments.review export --input SCORED.jsonl --output review.csv
    (fill the reviewed_label column: converged, ambiguous, did_not_converge or refused; leave blank to skip)
    python -m experiments.review agreement --input SCORED.jsonl --reviews review.csv

    python -m experiments.review sample RUN_DIR --n 20 --seed 1
    (fill reviewed_label in RUN_DIR/review_sample.csv: one of the four labels or "no verdict")
    python -m experiments.review rates RUN_DIR

``agreement`` prints Cohen's kappa and the confusion matrix (judge rows, reviewer columns). To use the reviewed
labels in the statistics, pass ``--reviews`` to ``experiments.score`` (or to the trials command). ``sample`` draws a
blind random sample of the run's scored trials (:mod:`behaviour.review_sample`); ``rates`` prints and saves the
judge-only, reviewed-only and prediction-powered rates (:mod:`behaviour.rates`; ``docs/rates.md``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from common.errors import ConfigError
from common.jsonl import read_jsonl
from common.rundir import RunDir
from behaviour.rates import judged_rates
from behaviour.review import agreement, apply_reviews, export_for_review, import_reviews
from behaviour.review_sample import SAMPLE_NAME, draw_sample, read_sample, sidecar_path, write_sample
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
    sample = sub.add_parser("sample", help="draw a blind random sample of a run's scored trials to review")
    sample.add_argument("run_dir", type=Path, help="a trials run directory (its transcripts.jsonl)")
    sample.add_argument("--n", required=True, type=int, help="trials to draw (stratified by condition)")
    sample.add_argument("--seed", required=True, type=int, help="seed of the draw (recorded)")
    sample.add_argument("--input", type=Path, default=None,
                        help="scored JSONL to draw from instead of RUN_DIR/transcripts.jsonl")
    sample.add_argument("--force", action="store_true",
                        help="draw over an existing sample that holds no reviewed label yet (a filled one is kept)")
    rates = sub.add_parser("rates", help="judge-only, reviewed-only and PPI rates of a run with its filled sample")
    rates.add_argument("run_dir", type=Path, help="the run directory the sample was drawn from")
    rates.add_argument("--input", type=Path, default=None,
                       help="scored JSONL instead of RUN_DIR/transcripts.jsonl (the rows the sample was drawn from)")
    rates.add_argument("--sample", type=Path, default=None, help=f"sample file (default: RUN_DIR/{SAMPLE_NAME})")
    rates.add_argument("--by", default="model,condition", help="fields to group by (default: model,condition)")
    return parser


def run_rows(run_dir: Path, input_path: Path | None) -> list[dict]:
    """The scored rows of a run: ``input_path`` when given, else the run's ``transcripts.jsonl``."""
    if input_path is None:
        RunDir.open(run_dir)  # a clear error if it is not a run directory
        input_path = run_dir / "transcripts.jsonl"
    if not input_path.exists():
        raise ConfigError(f"{input_path} does not exist; pass --input SCORED.jsonl")
    return read_jsonl(input_path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sample":
        rows = run_rows(args.run_dir, args.input)
        draw = draw_sample(rows, args.n, args.seed)
        path = write_sample(rows, draw, args.run_dir / SAMPLE_NAME, force=args.force)
        allocation = ", ".join(f"{c} {draw.allocation[c]} of {draw.population[c]}" for c in draw.allocation)
        print(f"drew {len(draw.ids)} trial(s) at random (seed {args.seed}; by condition: {allocation}) into {path}; "
              f"the draw is recorded in {sidecar_path(path)} (ids sha256 {draw.ids_sha256[:12]}).\nFill "
              "reviewed_label with converged, ambiguous, did_not_converge, refused or 'no verdict', reading only the "
              f"response, then run 'python -m experiments.review rates {args.run_dir}'")
        return 0
    if args.command == "rates":
        rows = run_rows(args.run_dir, args.input)
        sample_path = args.sample or args.run_dir / SAMPLE_NAME
        sample = read_sample(sample_path, rows) if sample_path.exists() else None
        table = judged_rates(rows, sample, by=[f.strip() for f in args.by.split(",") if f.strip()])
        if (args.run_dir / "config.json").exists():
            saved = RunDir.open(args.run_dir).write_json("rates.json", table.to_dict())
            print(f"(saved to {saved})")
        print(table.to_markdown())
        return 0
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
