"""The main job: linear probes for interest-recognition and perspective-taking.

    python -m experiments.probe --model llama-3.1-8b [--eval-file FILE.jsonl] [--trials RUN_DIR]
    python -m experiments.probe --from-run RUN_DIR --eval-file FILE.jsonl     # score a saved run, no retraining

Runs concept data -> cached activations at every layer -> grouped-CV probes with controls -> saved directions ->
scenario projection -> run directory with report.md, results/*.json and figures/*.png. See ``experiments.jobs.probe``.
With --from-run, only the saved directions of RUN_DIR are scored on the file (``experiments.jobs.from_run``): the
run's model, hook, position and store root apply unless --model/--weights/--dtype/--store are given.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence

from activations.registry import DEFAULT_MODEL
from common.errors import ConfigError
from common.rundir import RunDir
from experiments.cli import add_model_args, add_run_args, format_model_list, load_from_args, parse_run_args, run_main
from experiments.jobs.from_run import MODEL_ARGS, evaluate_saved_run
from experiments.jobs.probe import run_probe_job
from experiments.jobs.probe_config import DEFAULT_STORE_ROOT, ProbeConfig, default_n_jobs
from probes.concepts import CONCEPTS

log = logging.getLogger("experiments.probe")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    group = parser.add_argument_group("probes")
    group.add_argument("--concepts", default=",".join(CONCEPTS),
                       help="comma-separated concepts to probe (hyphens or underscores)")
    group.add_argument("--hook", default="resid_post", choices=("resid_pre", "resid_post", "attn_out", "mlp_out"))
    group.add_argument("--position", default="last", choices=("last", "mean"),
                       help="read each text at its last token or the mean over its tokens")
    group.add_argument("--estimators", default="logistic,mean_diff", help="logistic, mean_diff, mean_diff_iid")
    group.add_argument("--folds", type=int, default=5, help="grouped cross-validation folds")
    group.add_argument("--scaling", default="layer", choices=("layer", "fold"),
                       help="where the logistic probe's standardisation is fitted: once per layer on all its texts "
                            "(labels unused; fast) or on each training fold only (held-out texts never touch it; "
                            "2x slower); see docs/probe-sweep-speed.md")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--jobs", type=int, default=None, help="parallel workers over layers (default: CPUs, max 8)")
    group = parser.add_argument_group("activations")
    group.add_argument("--store", default=str(DEFAULT_STORE_ROOT),
                       help="activation store root: one subdirectory per model, reused across runs")
    group.add_argument("--batch-size", type=int, default=16)
    group.add_argument("--storage-dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    group = parser.add_argument_group("outside data")
    group.add_argument("--eval-file", default=None, help="JSONL rows with concept, text, label: evaluate the probes")
    group.add_argument("--from-run", default=None, metavar="RUN_DIR",
                       help="score this probe run's saved directions on --eval-file instead of training (its model, "
                            "hook, position and store root unless given)")
    group.add_argument("--trials", default=None, help="trials run directory (or transcripts.jsonl) to project")
    group.add_argument("--scenario", default=None, help="scenario YAML (default: configs/scenario/veth.yaml)")
    add_run_args(parser)
    # None marks "not given": --from-run then takes the run's own model, dtype and store root.
    parser.set_defaults(model=None, dtype=None, store=None)
    args = parse_run_args(parser, argv)
    if args.from_run is None:
        args.model, args.dtype = args.model or DEFAULT_MODEL, args.dtype or "float32"
        args.store = args.store or str(DEFAULT_STORE_ROOT)
    elif not args.eval_file:
        raise ConfigError("--from-run needs --eval-file FILE.jsonl (rows concept, text, label) to score the run on")
    elif args.trials:
        raise ConfigError("--from-run scores an --eval-file only; project --trials with a full probe run")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print(format_model_list())
        return 0
    if args.from_run:
        _, result = evaluate_saved_run(args.from_run, args.eval_file, runs_root=args.runs, store_root=args.store,
                                       model=args.model, **{k: getattr(args, k) for k in MODEL_ARGS})
        print(json.dumps(result, indent=2))
        return 0
    cfg = ProbeConfig(
        concepts=tuple(c.strip() for c in args.concepts.split(",") if c.strip()),
        hook=args.hook, position=args.position,
        estimators=tuple(e.strip() for e in args.estimators.split(",") if e.strip()),
        n_splits=args.folds, scaling=args.scaling, seed=args.seed, batch_size=args.batch_size,
        storage_dtype=args.storage_dtype,
        store_root=args.store, n_jobs=args.jobs or default_n_jobs(), eval_file=args.eval_file, trials=args.trials,
        scenario=args.scenario,
    )
    cfg.validate()  # before loading a model, so a typo costs nothing
    start = time.perf_counter()
    model = load_from_args(args)
    log.info("loaded %s (%d layers, d_model %d) in %.0f s", model.identity.name, model.n_layers, model.d_model,
             time.perf_counter() - start)
    run = RunDir.create("probe", args.model, {"model_args": {k: getattr(args, k) for k in MODEL_ARGS}, **cfg.to_dict()},
                        root=args.runs, model_identity=model.identity.to_dict())
    log.info("run directory: %s", run.path)
    summary = run_probe_job(model, cfg, run)
    if "eval" in summary:
        print(json.dumps(summary["eval"], indent=2))
    log.info("done in %.0f s: %s", time.perf_counter() - start, run.path / "report.md")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
