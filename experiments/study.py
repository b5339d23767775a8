"""The study: does this model converge, does it see the Veth's interests, can a direction reverse the framing shift,
where is the verdict decided, what did post-training change? One command, one report.

    python -m experiments.study --model llama-3.1-8b --device cuda --dtype bfloat16   # configs/study/veth.yaml
    python -m experiments.study --quick                                              # embedded SmolLM2 on a CPU
    python -m experiments.study --model llama-3.1-8b --plan-only                     # what it will cost, then stop
    python -m experiments.study --quick --status                                     # the study's run directories

Rerun the same command to resume: finished steps are reused, the interrupted one continues. See docs/study.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from activations.models import load_model
from activations.registry import get_spec, load_registry
from common.errors import ConfigError
from common.rundir import RUNS_ROOT
from experiments.cli import add_run_args, load_from_args, parse_run_args, run_main
from experiments.jobs.study import find_study_run, run_study, study_status
from experiments.jobs.study_config import DEFAULT_STUDY_CONFIG, load_study_config
from experiments.jobs.study_plan import add_estimates, analytic_plan, calibrate, format_plan

log = logging.getLogger("experiments.study")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_STUDY_CONFIG), help="study config (YAML)")
    parser.add_argument("--model", default=None, help="model to study (default: the config's; --quick: SmolLM2)")
    parser.add_argument("--base", default=None, help="base checkpoint to compare with (default: the registry's)")
    parser.add_argument("--quick", action="store_true", help="the config's quick overrides: embedded model, CPU, "
                        "about 20 minutes")
    parser.add_argument("--plan-only", action="store_true", help="print the plan (no weights loaded) and stop")
    parser.add_argument("--status", action="store_true", help="list the study's run directories and stop")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--gpus", default=None, help="GPUs for the memory plan, e.g. 1x80GB (default: the CPU)")
    parser.add_argument("--store", default=None, help="activation store root (default: the probe job's)")
    add_run_args(parser)
    return parse_run_args(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_study_config(args.config, quick=args.quick, model=args.model, base=args.base)
    if not cfg.model:
        raise ConfigError(f"{args.config}: no model; pass --model or set 'model:'")
    get_spec(cfg.model) if cfg.model in load_registry() or "/" not in cfg.model else None  # unknown name: one line
    plan = analytic_plan(cfg, cfg.model, dtype=args.dtype, gpus=args.gpus)
    print(format_plan(plan))
    if args.plan_only:
        return 0
    root = args.runs or RUNS_ROOT
    if args.status:  # found by settings and model name: no weights loaded
        study = find_study_run(Path(root), cfg=cfg)
        if study is None:
            print(f"no study run of {cfg.model} with these settings under {root} yet")
            return 0
        for row in study_status(study):
            print(f"{row['status']:10} {row['run']}" + (f"  ({row['error']})" if row["error"] else ""))
        return 0
    args.model, args.weights, args.revision, args.device_map, args.n_devices = cfg.model, None, None, None, None
    model = load_from_args(args)
    plan = add_estimates(plan, calibrate(model))
    print(format_plan(plan))

    def load_base(name: str):
        return load_model(name, dtype=args.dtype, device=args.device)

    result = run_study(model, cfg, runs_root=root, store_root=args.store, load_base=load_base, plan=plan)
    for answer in result.answers:
        print(f"- {answer['question']} {answer['verdict']} ({answer['why']})")
    print(f"report: {result.run.path / 'report.html'}")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
