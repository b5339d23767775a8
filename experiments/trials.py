"""Behavioural trials: ``python -m experiments.trials --model M --conditions baseline,threat --n 20``.

Runs N sampled trials per condition (and, with ``--paraphrases``, per paraphrase of each condition), scores each
with a judge, and writes a run directory ``runs/<time>-trials-<model>/`` (``transcripts.jsonl``, the convergence
table and chart, ``review.csv``, ``report.md``: see :mod:`experiments.jobs.trials`).

Generation goes through the local TransformerLens bridge by default; ``--backend openai --base-url URL`` uses an
OpenAI-compatible server (vLLM, llama.cpp, TGI) instead; a server steered with a llama.cpp control vector is declared
with ``--served-control-vector FILE --served-control-scale S`` (docs/llamacpp.md). ``--resume RUN_DIR`` finishes an
interrupted run with its stored settings (passing a different setting is an error); trials already stored are never
redone or duplicated.
The work is done by :func:`experiments.jobs.trials.run_trials_job`.
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Sequence
from typing import Any

from activations.models import LoadedModel
from behaviour.scenario import load_scenario
from behaviour.judges.factory import SPEC_HELP
from common.errors import ConfigError
from common.rundir import RunDir
from experiments.cli import add_model_args, add_run_args, format_model_list, load_from_args, parse_run_args, run_main
from interventions.gguf_export import served_control_vector
from interventions.steered_trials import SteeringSpec
from experiments.jobs.trials import DEFAULTS, STORE, format_conditions, resume_settings, run_trials_job


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.trials", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    add_run_args(parser)
    trials = parser.add_argument_group("trials")
    trials.add_argument("--conditions", default=",".join(DEFAULTS["conditions"]),
                        help="comma-separated scenario conditions (see --list-conditions; default: baseline,threat)")
    trials.add_argument("--paraphrases", action="store_true",
                        help="also run each condition's paraphrases (<condition>_p1, _p2, ...)")
    trials.add_argument("--n", type=int, default=DEFAULTS["n"], help="trials per condition (default: %(default)s)")
    trials.add_argument("--scenario", default=None, help="scenario YAML (default: configs/scenario/veth.yaml)")
    trials.add_argument("--list-conditions", action="store_true", help="list the scenario's conditions and exit")
    trials.add_argument("--judge", default=DEFAULTS["judge"],
                        help=f"{SPEC_HELP} (default: {DEFAULTS['judge']})")
    trials.add_argument("--steering", default=None, metavar="SPEC.yaml",
                        help="steer every trial with this spec (concept, layer, alpha, hook, positions, directions; "
                             "see configs/steering/trial_spec.yaml); the steering is part of each trial's identity")
    trials.add_argument("--resume", default=None, metavar="RUN_DIR", help="finish an interrupted run in RUN_DIR")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float, default=DEFAULTS["temperature"],
                          help="0 = greedy (default: %(default)s)")
    sampling.add_argument("--top-p", type=float, default=DEFAULTS["top_p"],
                          help="nucleus sampling mass (default: %(default)s)")
    sampling.add_argument("--max-new-tokens", type=int, default=None,
                          help="response length limit in tokens (default: follows the model: 8192 for a registry "
                               "'thinking' model, else 1024, within a local model's context)")
    sampling.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                          help="base seed; each trial's seed derives from it and the trial id (default: %(default)s)")
    sampling.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                          help="trials generated together (default: %(default)s)")
    sampling.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                          help="switch a hybrid model's thinking mode on or off (default: the template's default)")
    backend = parser.add_argument_group("backend")
    backend.add_argument("--backend", choices=("local", "openai"), default="local",
                         help="local: the bridged model (default); openai: an OpenAI-compatible server")
    backend.add_argument("--base-url", default=None, help="server URL for --backend openai, e.g. http://node:8000")
    backend.add_argument("--served-model", default=None,
                         help="model name on the server (default: the registry hub id, else --model)")
    backend.add_argument("--prompt-format", choices=("chat", "document"), default=None,
                         help="openai backend: chat messages or a base-model document (default: from the registry)")
    backend.add_argument("--served-control-vector", default=None, metavar="FILE.gguf",
                         help="openai backend: the control vector the server steers with (llama.cpp's "
                              "--control-vector-scaled FILE:SCALE); its sha256 and the scale join the trial identity")
    backend.add_argument("--served-control-scale", type=float, default=None, metavar="SCALE",
                         help="the SCALE the server applies to --served-control-vector (default: 1.0, as llama.cpp's "
                              "--control-vector)")
    backend.add_argument("--api-key-env", default="OPENAI_API_KEY",
                         help="environment variable holding the server's API key (default: OPENAI_API_KEY)")
    return parser


def explicit_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The destinations the user actually passed (parsing again with every default suppressed)."""
    probe = copy.deepcopy(parser)
    for action in probe._actions:  # argparse has no public API for "was this given?"
        action.default = argparse.SUPPRESS
        action.required = False
    return set(vars(probe.parse_args(argv)))


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    return {
        "model": args.model, "weights": args.weights, "revision": args.revision, "dtype": args.dtype,
        "scenario": args.scenario, "conditions": conditions, "paraphrases": args.paraphrases, "n": args.n,
        "temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
        "seed": args.seed, "batch_size": args.batch_size, "thinking": args.thinking, "backend": args.backend,
        "base_url": args.base_url, "served_model": args.served_model, "prompt_format": args.prompt_format,
        "judge": args.judge,
        # Parsed now, so a malformed spec fails before a model loads; stored resolved for resumes and the manifest.
        "steering": SteeringSpec.from_file(args.steering).to_dict() if args.steering else None,
        "served_control_vector": served_steering(args),
    }


def served_steering(args: argparse.Namespace) -> dict[str, Any] | None:
    """The steered server's control vector as the trials identify it (its sha256 and scale), or None."""
    if args.served_control_vector is None:
        if args.served_control_scale is not None:
            raise ConfigError("--served-control-scale needs --served-control-vector (the file the server steers with)")
        return None
    return served_control_vector(args.served_control_vector, args.served_control_scale)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_run_args(parser, argv)
    if args.list_models:
        print(format_model_list())
        return 0
    requested = settings_from_args(args)
    run = RunDir.open(args.resume) if args.resume else None
    settings = resume_settings(run, requested, explicit_options(parser, argv)) if run else requested
    if args.list_conditions:
        print(format_conditions(load_scenario(settings["scenario"])))
        return 0

    def load_local() -> LoadedModel:  # a resumed run loads the weights it was started with
        for key in ("model", "weights", "revision", "dtype"):
            setattr(args, key, settings[key])
        return load_from_args(args)

    outcome = run_trials_job(settings, run=run, api_key=os.environ.get(args.api_key_env), load_local=load_local,
                             runs_root=args.runs)
    print(f"{len(outcome.records)} trials in {outcome.run.path}: {STORE}, results/table.json, figures/convergence.png, "
          "results/rates.json, review.csv, report.md")
    return 0


if __name__ == "__main__":
    run_main(main)
