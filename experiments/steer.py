"""The framing-shift steering experiment.

    python -m experiments.steer [--config configs/steering/framing_shift.yaml] [--directions PROBE_RUN_DIR]

Prefills the scenario with reasoning that already recognises the Veth's interests, sweeps layers x alphas x
directions (concepts, negated, random controls) on a one-token verdict metric, measures side effects, picks a
setting by a documented rule and confirms it by generation and the judge. See ``experiments.jobs.steer``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from common.rundir import RunDir
from experiments.cli import add_model_args, add_run_args, format_model_list, load_from_args, parse_run_args, run_main
from behaviour.judges.factory import DEFAULT_JUDGE, SPEC_HELP
from common.errors import ConfigError
from experiments.jobs.steer import (
    DEFAULT_CONFIG, SteerConfig, check_against_model, check_resumable, run_steer_experiment,
)

log = logging.getLogger("experiments.steer")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _strs(text: str) -> tuple[str, ...]:
    return tuple(x for x in text.split(",") if x)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.steer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    g = parser.add_argument_group("steering (each overrides the config file)")
    g.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment config (YAML)")
    g.add_argument("--directions", default=None, help="probe run directory whose directions/ to steer with "
                                                      "(default: difference of means over the concept data)")
    g.add_argument("--estimator", default=None, help="which saved directions to use (mean_diff, logistic)")
    g.add_argument("--concepts", type=_strs, default=None, help="comma-separated concepts")
    g.add_argument("--layers", type=_ints, default=None, help="comma-separated layers (default: automatic)")
    g.add_argument("--alphas", type=_floats, default=None, help="comma-separated alphas (x typical residual norm)")
    g.add_argument("--n-random", type=int, default=None, help="random control directions (>= 5)")
    g.add_argument("--positions", default=None, help="all, prompt or generated")
    g.add_argument("--hook", default=None, help="resid_post or resid_pre")
    g.add_argument("--metric-prompts", type=_strs, default=None, help="plain,after_recognition,after_shift")
    g.add_argument("--kl-threshold", type=float, default=None)
    g.add_argument("--max-pairs", type=int, default=None, help="concept pairs for the difference of means")
    g.add_argument("--n-samples", type=int, default=None, help="confirmation samples per cell (0: none)")
    g.add_argument("--max-new-tokens", type=int, default=None)
    g.add_argument("--judge", default=None, help=f"{SPEC_HELP} (default: {DEFAULT_JUDGE})")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted steering run with its stored config (same model required)")
    add_run_args(parser)
    return parse_run_args(parser, argv)


OVERRIDES = ("directions", "estimator", "concepts", "layers", "alphas", "n_random", "positions", "hook",
             "metric_prompts", "kl_threshold", "max_pairs", "n_samples", "max_new_tokens", "judge", "seed",
             "batch_size")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print(format_model_list())
        return 0
    if args.resume:
        given = [k for k in OVERRIDES if getattr(args, k) is not None]
        if given:
            flags = ", ".join("--" + g.replace("_", "-") for g in given)
            raise ConfigError(f"--resume uses the run's stored config; drop {flags}")
        run = RunDir.open(args.resume)
        cfg = SteerConfig.from_run(run)
    else:
        cfg = SteerConfig.from_yaml(args.config, **{k: getattr(args, k) for k in OVERRIDES})
    cfg.validate()
    start = time.perf_counter()
    model = load_from_args(args)
    log.info("loaded %s (%d layers) in %.0f s", model.identity.name, model.n_layers, time.perf_counter() - start)
    check_against_model(model, cfg)  # verdict tokens, layers, saved directions: before the run directory exists
    if args.resume:
        check_resumable(model, run)
        log.info("resuming %s", run.path)
        run_steer_experiment(model, cfg, run)
        log.info("done in %.0f s: %s", time.perf_counter() - start, run.path / "report.md")
        return 0
    run = RunDir.create("steer", args.model, {"model_args": {k: getattr(args, k) for k in
                                                            ("weights", "revision", "dtype", "device")},
                                             **cfg.to_dict()},
                        root=args.runs, model_identity=model.identity.to_dict())
    log.info("run directory: %s", run.path)
    run_steer_experiment(model, cfg, run)
    log.info("done in %.0f s: %s", time.perf_counter() - start, run.path / "report.md")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
