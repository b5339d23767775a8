"""End-to-end smoke check of one model: ``python -m experiments.smoke [--model M] [--max-new-tokens N]``.

Loads the model, renders the Veth scenario prompt in the model's own format (chat template, or document framing for a
base model), greedy-generates one reply, splits its deliberation from its answer, and writes a run directory
(``config.json``, ``manifest.json`` with the model's identity, ``results/smoke.json``, ``report.md``). Run it first on
a new machine or with a new model: it exercises loading, prompting, generation and run directories in about a minute
on CPU for the embedded model. Run directories go under ``runs/`` (or ``$VETH_RUNS``). The work is done by
:func:`experiments.jobs.smoke.run_smoke_job`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from behaviour.scenario import load_scenario
from experiments.cli import add_model_args, add_run_args, format_model_list, load_from_args, parse_run_args, run_main
from experiments.jobs.smoke import run_smoke_job

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.smoke", description=__doc__.splitlines()[0])
    add_model_args(parser)
    add_run_args(parser)
    parser.add_argument("--scenario", type=Path, default=None,
                        help="scenario file (default: configs/scenario/veth.yaml)")
    parser.add_argument("--condition", default="baseline", help="scenario condition (default: baseline)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="length limit of the reply (default 200)")
    parser.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                        help="switch a thinking model's <think> mode on or off (default: the template's default)")
    args = parse_run_args(parser, argv)
    if args.list_models:
        print(format_model_list())
        return 0
    scenario = load_scenario(args.scenario)
    scenario.prompt(args.condition)  # a bad condition fails before the model is loaded
    log.info("loading %s ...", args.model)
    model = load_from_args(args)
    config = {key: value for key, value in vars(args).items() if key != "list_models"}
    _, run = run_smoke_job(model, config, scenario=scenario, condition=args.condition,
                           max_new_tokens=args.max_new_tokens, enable_thinking=args.thinking,
                           runs_root=args.runs)
    print(run.path)
    return 0


if __name__ == "__main__":
    run_main(main)
