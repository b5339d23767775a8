"""Score responses with a judge: ``python -m experiments.score --input IN.jsonl --output OUT.jsonl``.

Each input row needs a ``response``; every other field is kept. Output rows add ``label`` (converged / ambiguous /
did_not_converge / refused, or null when no label could be given), ``final_verdict`` (the text judged),
``rationale``, ``judge`` and ``parse_error``. Malformed JSON lines and rows with an empty or missing response are
reported with their line numbers; the rest are scored and written (atomically), and the exit status is 1.

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

from activations.errors import ConfigError
from behaviour.jsonl import BadLine, dumps_jsonl, iter_jsonl_numbered
from behaviour.judge import EMPTY_RESPONSE, MISSING_RESPONSE, Judgement, get_judge, score_rows
from behaviour.review import agreement, apply_reviews, import_reviews
from behaviour.table import convergence_table, plot_convergence
from experiments.cli import run_main
from experiments.rundir import RunDir, atomic_write_text

log = logging.getLogger("experiments.score")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="JSONL file of rows with a 'response' field")
    parser.add_argument("--output", required=True, type=Path, help="JSONL file to write the scored rows to")
    parser.add_argument("--judge", default="rules",
                        help="rules (default, offline, deterministic), local:<model name>, or openai:<base_url>#<model>")
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
            unparseable.append(f"{where}: {judgement.parse_error}")

    scored_iter = score_rows(rows, judge, on_unscored=on_unscored)
    if not args.judge.startswith("rules"):
        from tqdm.auto import tqdm

        scored_iter = tqdm(scored_iter, total=len(rows), desc=f"judge {judge.name}", unit="row")
    scored = list(scored_iter)
    if reviews is not None:
        scored = apply_reviews(scored, reviews)
    atomic_write_text(args.output, dumps_jsonl(scored))

    for message in bad_input + unparseable:
        print(message, file=sys.stderr)
    counts: dict[str, int] = {}
    for row in scored:
        key = row["label"] or "unscored"
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
