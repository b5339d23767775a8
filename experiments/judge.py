"""Train and measure the judges on the hand-labelled set (``configs/judge/labelled.jsonl``).

    python -m experiments.judge train                      # the embedding judge, on the training splits
    python -m experiments.judge evaluate                   # rules, embedding, both combinations, on holdout2
    python -m experiments.judge crossval --split training --by-register   # each register judged by a classifier
                                                                          # trained without it
    python -m experiments.judge crossval --split training --by-register --by-author --authors J --c 10
                                          # a new author's new registers (docs/judging-generalisation.md)
    python -m experiments.judge evaluate --judges rules,rules+openai:http://localhost:8000/v1#qwen3-32b --split dev

``evaluate`` prints, per judge, Cohen's kappa with a 95% interval, accuracy, the abstention rate, the confusion
matrix and (for LLM judges) the share of unparseable answers; beside them, on the holdouts and the real outputs, a
second annotator's blind labels measured the same way (the ceiling). Develop on the training splits (``dev``, ``test``,
``train``; ``training`` names all three); the holdouts and ``real`` are the honest figures (README, "How good is the
judge?").
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from behaviour.judges.embedding import DEFAULT_ENCODER, ENCODERS
from behaviour.judges.embedding_judge import (ABSTAIN_RATE, CALIBRATION, CALIBRATIONS, CLASSIFIER_PATH,
                                                  train_embedding_judge)
from behaviour.judges.judge_eval import (annotator_agreement, cross_validate, evaluate, evaluations_markdown,
                                        folds_markdown)
from behaviour.judges.labelled_set import (LABELLED_SETS, SECOND_ANNOTATION_PATH, SPLIT_GROUPS, SPLITS, TRAINING_SPLITS,
                                    author_of, load_labelled, load_second_annotation)
from common import REPO_ROOT
from common.errors import ConfigError
from experiments.cli import run_main
from behaviour.judges.factory import get_judge as get_behaviour_judge
from experiments.jobs.backends import get_judge, local_judge  # local:<model> members load through the model side


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.judge", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelled", type=Path, action="append", default=None,
                        help="a labelled set (JSONL); repeat for several (default: "
                             f"{', '.join(str(p.relative_to(REPO_ROOT)) for p in LABELLED_SETS)})")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the embedding judge on the training splits and save it")
    train.add_argument("--out", type=Path, default=CLASSIFIER_PATH, help=f"classifier file (default: {CLASSIFIER_PATH})")
    train.add_argument("--abstain-rate", type=float, default=ABSTAIN_RATE,
                       help="abstain on this share of the least confident calibration rows (each scored by a model "
                            f"trained without its author: as on a fresh author; default {ABSTAIN_RATE})")
    train.add_argument("--calibrate", choices=CALIBRATIONS, default=CALIBRATION,
                       help=f"what the temperature and threshold are fitted on (default {CALIBRATION}: each fresh "
                            "author's rows scored by a model trained without that author)")
    cv = sub.add_parser("crossval", help="out-of-fold agreement on training rows (each fold's embedding judge "
                        "trained without it): for choosing a judge before the holdout is measured")
    cv.add_argument("--split", default="test", choices=(*SPLIT_GROUPS, *TRAINING_SPLITS),
                    help="training rows to estimate on (default: test, the round-1 rows the rules were not developed "
                         "on)")
    cv.add_argument("--folds", type=int, default=5, help="folds (default 5)")
    cv.add_argument("--by-author", action="store_true",
                    help="one fold per author (the capital letters ids start with): each author judged by a classifier "
                         "trained on the others")
    cv.add_argument("--by-register", action="store_true",
                    help="one fold per register (the rows' 'register' field): each register judged by a classifier "
                         "trained on the others; with --by-author, one fold per (register, author) cell, trained on "
                         "rows sharing neither")
    cv.add_argument("--authors", default=None,
                    help="judge only these authors' rows (the capital letters ids start with, e.g. J or ZA); every "
                         "training row still trains, less the held-out fold's: with --by-register --by-author, a new "
                         "author's new registers judged by classifiers that saw neither")
    cv.add_argument("--registers", default=None,
                    help="judge only rows in these registers (comma-separated, e.g. essay,harmony); every training "
                         "row still trains, less the held-out fold's (a subset that was not tuned on, reported alone)")
    cv.add_argument("--c", type=float, default=None,
                    help="fix each fold's classifier strength C instead of choosing it by inner cross-validation "
                         "(7 times cheaper; r4 and every fold of the baseline chose C = 10, r5 chose 3)")
    cv.add_argument("--abstain-rate", type=float, default=ABSTAIN_RATE,
                    help="each fold's classifier abstains on this share of its least confident out-of-fold training "
                         f"rows, as `train --abstain-rate` (default {ABSTAIN_RATE}; 0: never for low confidence)")
    cv.add_argument("--calibrate", choices=CALIBRATIONS, default=None,
                    help="what each fold's classifier calibrates its temperature and threshold on: out-of-fold rows, "
                         f"or registers or authors it never saw (default: as `train` does, {CALIBRATION})")
    cv.add_argument("--judges", default="rules,embedding,rules+embedding,rules/embedding",
                    help="comma-separated judge specs")
    for command in (train, cv):
        command.add_argument("--encoder", choices=tuple(ENCODERS), default=DEFAULT_ENCODER,
                             help=f"the sentence encoder (default {DEFAULT_ENCODER}; minilm is about seven times "
                                  "faster and a little less accurate: docs/judging-generalisation.md, round 12)")
    ev = sub.add_parser("evaluate", help="agreement of judges with the hand labels")
    ev.add_argument("--split", default="holdout2", choices=(*SPLITS, *SPLIT_GROUPS),
                    help="rows to measure on (default: holdout2, the newest untouched set; holdout: round 2)")
    ev.add_argument("--judges", default="rules,embedding,rules+embedding,rules/embedding",
                    help="comma-separated judge specs")
    for command in (cv, ev):
        command.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
        command.add_argument("--show-misses", action="store_true", help="list the ids of rows the judges got wrong")
    ev.add_argument("--second", type=Path, default=SECOND_ANNOTATION_PATH,
                    help="a second annotator's blind labels, reported beside the judges as the agreement ceiling")
    ev.add_argument("--limit", type=int, default=None,
                    help="only the first N rows of the split (a quick look at a slow LLM judge; figures describe those)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.labelled = args.labelled or list(LABELLED_SETS)
    if args.command in ("train", "crossval"):
        if not 0 <= args.abstain_rate < 1:
            raise ConfigError(f"--abstain-rate must be in [0, 1), got {args.abstain_rate}")
    if args.command == "train":
        from behaviour.judges.embedding import load_encoder

        rows = load_labelled(args.labelled, "training")
        judge = train_embedding_judge(rows, load_encoder(args.encoder), abstain_rate=args.abstain_rate,
                                      calibration=args.calibrate)
        path = judge.classifier.save(args.out)
        cv = judge.classifier.cv
        print(f"{judge.version}: trained on {judge.classifier.n_train} rows ({', '.join(SPLIT_GROUPS['training'])}); out-of-fold "
              f"accuracy {cv['accuracy']:.2f} ({cv['accuracy_kept']:.2f} on the {1 - cv['abstention']:.0%} above the "
              f"threshold {judge.classifier.threshold:.2f}; confident from p={judge.classifier.confident:.2f}, "
              f"{cv['share_confident']:.0%} of rows); saved {path}")
        return 0
    specs = [s.strip() for s in args.judges.split(",") if s.strip()]
    shared = None
    if args.command == "evaluate" and "embedding" in args.judges:
        # One embedding judge for every spec that has one, its encoder remembering each text: a response is embedded
        # once however many judges read it.
        from behaviour.judges.embedding import MemoEncoder, load_encoder
        from behaviour.judges.embedding_judge import EmbeddingClassifier, load_embedding_judge

        saved_encoder = EmbeddingClassifier.load(CLASSIFIER_PATH).encoder  # a classifier loads with its own encoder
        shared = load_embedding_judge(encoder=MemoEncoder(load_encoder(saved_encoder)))
    # every spec checked (and models loaded) before any judging
    # (crossval trains its own embedding member per fold: the saved classifier is not loaded)
    judges = [] if args.command == "crossval" else \
        [get_judge(s) if shared is None else get_behaviour_judge(s, local=local_judge, embedding=shared) for s in specs]
    rows = load_labelled(args.labelled, args.split)[:getattr(args, "limit", None)]
    if not rows:
        raise ConfigError(f"no rows in the {args.split!r} split of {', '.join(map(str, args.labelled))}")
    if args.command == "crossval":
        from behaviour.judges.embedding import load_encoder

        if args.authors:
            authors = {a.strip() for a in args.authors.split(",") if a.strip()}
            rows = [r for r in rows if author_of(r) in authors]
            if not rows:
                raise ConfigError(f"no rows by authors {sorted(authors)} in the {args.split!r} split")
        if args.registers:
            registers = {r.strip() for r in args.registers.split(",") if r.strip()}
            rows = [r for r in rows if r.get("register") in registers]
            if not rows:
                raise ConfigError(f"no rows in registers {sorted(registers)} among those chosen; registers are "
                                  "listed in configs/judge/DATASHEET.md, section \"Registers\"")

        hold_out = "+".join(unit for unit, chosen in (("register", args.by_register), ("author", args.by_author))
                            if chosen) or None
        result = cross_validate(specs, rows, load_labelled(args.labelled, "training"), load_encoder(args.encoder),
                                folds=args.folds, split=args.split, local=local_judge, hold_out=hold_out,
                                abstain_rate=args.abstain_rate,
                                c_grid=(args.c,) if args.c else None,
                                calibration=args.calibrate)
        if result.folds:
            print(folds_markdown(result))
        print(evaluations_markdown(result.pooled, show_misses=args.show_misses))
        if args.json:
            args.json.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
        return 0
    for judge in judges:  # what a reader needs to know which labels these figures describe
        print(f"`{judge.name}`: {getattr(judge, 'version', judge.name)}")
    evaluations = [evaluate(j, rows, args.split) for j in judges]
    ceiling = annotator_agreement(rows, load_second_annotation(args.second), args.split)
    evaluations += [ceiling] if ceiling is not None else []
    print(evaluations_markdown(evaluations, show_misses=args.show_misses))
    if args.json:
        args.json.write_text(json.dumps([e.to_dict() for e in evaluations], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_main(main)
