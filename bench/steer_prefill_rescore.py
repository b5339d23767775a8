"""A steering run's confirmation generations scored the old way and the new way, side by side.

    python bench/steer_prefill_rescore.py RUN_DIR [--judge rules/embedding]

Old (before issue 17): ``judge.judge(prefill + continuation)``, the cut-off flag ignored, and the rate
converged / labelled (refusals in the denominator). New: :func:`behaviour.judges.scoring.judge_row` on the row (the
verdict must be the model's own; cut-off rules of trials) and the table's converged / (trials - refused). Prints, per
cell, the label counts and rate with its Wilson 95% interval under each, and how many rows the old path labelled that
the new one abstains on (and why). Reads ``results/generations.jsonl``; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's packages, not an installed copy

from behaviour.judges.labels import LABELS
from behaviour.judges.scoring import judge_row
from behaviour.table import abstention_reason
from common.stats import wilson_interval
from experiments.jobs.backends import get_judge


def _rate(k: int, n: int) -> str:
    if not n:
        return "-"
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--judge", default=None, help="judge spec (default: the run's config)")
    parser.add_argument("--show-rows", action="store_true", help="also print each row's old and new label")
    args = parser.parse_args()
    config = json.loads((args.run_dir / "config.json").read_text())
    judge = get_judge(args.judge or config.get("judge") or config.get("settings", {}).get("judge"))
    rows = [json.loads(line) for line in (args.run_dir / "results" / "generations.jsonl").read_text().splitlines()]
    cells: dict[tuple[str, str], list[tuple[str | None, str | None, str]]] = {}
    for row in rows:
        old = judge.judge(row["prefill"] + row["response"]) if (row["prefill"] + row["response"]).strip() else None
        new = judge_row(row, judge)
        reason = "" if new.label is not None else abstention_reason(new.to_dict())
        if args.show_rows:
            print(f"{row.get('id')}: old {None if old is None else old.label}, new {new.label or reason}")
        cells.setdefault((row["condition"], row["setting"]), []).append(
            (None if old is None else old.label, new.label, reason))
    print(f"judge {judge.name}; {len(rows)} generations; run {args.run_dir}\n")
    print("| condition | setting | n | old labels | old rate: converged / labelled | new labels | new abstained "
          "(why) | new rate: converged / (trials - refused) | labelled by old, abstained by new |")
    print("|---|---|---|---|---|---|---|---|---|")
    total_lost = Counter()
    for (condition, setting), got in cells.items():
        old = Counter(o for o, _, _ in got)
        new = Counter(n for _, n, _ in got)
        why = Counter(r for _, n, r in got if n is None)
        lost = Counter(r for o, n, r in got if o is not None and n is None)
        total_lost.update(lost)
        old_labelled = sum(old[label] for label in LABELS)
        engaged = sum(new[label] for label in LABELS) - new["refused"]
        show = lambda c: ", ".join(f"{lab} {c[lab]}" for lab in LABELS if c[lab]) or "-"  # noqa: E731
        print(f"| {condition} | {setting} | {len(got)} | {show(old)}; abstained {old[None]} | "
              f"{_rate(old['converged'], old_labelled)} | {show(new)} | {new[None]} "
              f"({', '.join(f'{r} {k}' for r, k in why.items()) or '-'}) | {_rate(new['converged'], engaged)} | "
              f"{sum(lost.values())} |")
    print(f"\nlabelled by the old path, abstained by the new: {sum(total_lost.values())} "
          f"({', '.join(f'{r} {k}' for r, k in total_lost.items()) or '-'})")


if __name__ == "__main__":
    main()
