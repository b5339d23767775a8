#!/usr/bin/env python3
"""Lexical-leakage check for the concept datasets: the toolkit's bag-of-words baseline on held-out groups.

For each concept, fits ``probes.controls.LexicalBaseline`` (TF-IDF unigram+bigram, L2 logistic regression, C by
inner grouped CV) with grouped 5-fold CV over ``group`` and reports out-of-fold AUROC (``roc_auc_score`` on
``decision_function``) and accuracy; ``--seeds`` adds shuffled GroupKFold splits as used by ``probes.sweep``;
``--top K`` prints the n-grams the baseline keys on (fit on all rows).

Usage: ``python configs/concepts/lexical_check.py [--seeds 0 1 2] [--top 30] [--by-source]``
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from probes.concepts import CONCEPTS, load_concept  # noqa: E402
from probes.controls import LexicalBaseline  # noqa: E402


def grouped_oof(texts, y, groups, cv) -> np.ndarray:
    texts = np.asarray(texts, dtype=object)
    scores = np.empty(len(y))
    for tr, te in cv.split(texts, y, groups):
        model = LexicalBaseline().fit(list(texts[tr]), y[tr], groups=groups[tr])
        scores[te] = model.decision_function(list(texts[te]))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="also run shuffled GroupKFold(5) seeds")
    parser.add_argument("--top", type=int, default=0, help="print the top K n-grams per class")
    parser.add_argument("--by-source", action="store_true", help="also report AUROC within template/handwritten")
    args = parser.parse_args(argv)
    for concept in CONCEPTS:
        ds = load_concept(concept)
        y, groups = ds.labels, np.asarray(ds.groups)
        runs = [("GroupKFold(5)", GroupKFold(n_splits=5))]
        runs += [(f"GroupKFold(5, shuffle, seed={s})", GroupKFold(n_splits=5, shuffle=True, random_state=s))
                 for s in args.seeds]
        for name, cv in runs:
            s = grouped_oof(ds.texts, y, groups, cv)
            line = (f"{concept:22s} {name:32s} AUROC {roc_auc_score(y, s):.3f}  "
                    f"accuracy {np.mean((s > 0) == (y == 1)):.3f}")
            if args.by_source:
                src = np.array([i.split("-")[1][0] for i in ds.ids])  # pair ids: ir-t017 / ir-h005
                for tag, label in (("t", "template"), ("h", "handwritten")):
                    m = src == tag
                    line += f"  {label} {roc_auc_score(y[m], s[m]):.3f}"
            print(line, flush=True)
        if args.top:
            top = LexicalBaseline().fit(ds.texts, y, groups=groups).top_ngrams(args.top)
            for side in ("positive", "negative"):
                print(f"  {side}: " + ", ".join(f"{g} {w:+.2f}" for g, w in top[side]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
