"""Base vs instruct: does post-training create the concept features or only use them?

    python -m experiments.compare --base llama-3.1-8b-base --instruct llama-3.1-8b --device cuda --dtype bfloat16
    python -m experiments.compare --model llama-3.1-8b --with-base ...     # the base from the registry's pairing

Reuses probe runs and trials runs of either model found under --runs (by model identity) and computes only the
missing probe runs; with ``--trials-n N`` also the missing trials runs (N trials per ``--trials-conditions``
condition). See ``experiments.jobs.compare``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from activations.models import DTYPES, load_model, resolve_spec
from common.errors import ConfigError
from common.rundir import RunDir
from experiments.cli import add_run_args, format_model_list, parse_run_args, run_main
from experiments.jobs.compare import (ANALYSES, CompareConfig, check_roles, check_shapes_before_loading, plan,
                                      run_compare, validate_config)
from probes.concepts import CONCEPTS

log = logging.getLogger("experiments.compare")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_argument_group("models")
    group.add_argument("--base", default=None, help="the base (pretrained) checkpoint: registry name, hub id or dir")
    group.add_argument("--instruct", default=None, help="the instruct (post-trained) checkpoint")
    group.add_argument("--model", default=None, help="with --with-base: an instruct model whose registry entry names "
                                                     "its base")
    group.add_argument("--with-base", action="store_true", help="compare --model with its registered base")
    group.add_argument("--base-weights", default=None, help="local directory of the base model's weights")
    group.add_argument("--instruct-weights", default=None, help="local directory of the instruct model's weights")
    group.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    group.add_argument("--device", default=None)
    group.add_argument("--device-map", default=None)
    group.add_argument("--n-devices", type=int, default=None)
    group.add_argument("--list-models", action="store_true")
    group = parser.add_argument_group("analyses")
    group.add_argument("--analyses", default="", help=f"comma-separated subset of {','.join(ANALYSES)} "
                                                      "(default: all that apply; asking for one that cannot run is "
                                                      "an error)")
    group.add_argument("--concepts", default=",".join(CONCEPTS))
    group.add_argument("--hook", default="resid_post", choices=("resid_pre", "resid_post", "attn_out", "mlp_out"))
    group.add_argument("--position", default="last", choices=("last", "mean"))
    group.add_argument("--estimators", default="logistic,mean_diff", help="probe estimators for new probe runs")
    group.add_argument("--transfer-estimator", default="mean_diff", choices=("mean_diff", "logistic"))
    group.add_argument("--folds", type=int, default=5)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--condition", default="baseline", help="scenario condition for patching and KL")
    group.add_argument("--patch-hook", default="resid_post", choices=("resid_pre", "resid_post"))
    group.add_argument("--against", default=",".join(CompareConfig.against),
                       help="verdict tokens against the proposal (each one token)")
    group.add_argument("--proceed", default=",".join(CompareConfig.proceed), help="verdict tokens for it")
    group.add_argument("--kl-response", default=None, help="response text for the KL strip (default: the "
                                                           "instruct model's first trial, else a greedy continuation)")
    group.add_argument("--kl-new-tokens", type=int, default=48)
    group = parser.add_argument_group("earlier runs and storage")
    group.add_argument("--store", default=None, help="activation store root (default: the probe job's)")
    group.add_argument("--base-probe-run", default=None)
    group.add_argument("--instruct-probe-run", default=None)
    group.add_argument("--base-trials", default=None, help="comma-separated trials run directories of the base")
    group.add_argument("--instruct-trials", default=None, help="the same for the instruct model")
    group.add_argument("--trials-n", type=int, default=0, help="run N trials per condition for a model with no "
                                                               "trials run (default 0: the report says how instead)")
    group.add_argument("--trials-conditions", default="baseline", help="conditions for --trials-n (default: baseline)")
    group.add_argument("--trials-max-new-tokens", type=int, default=None,
                       help="response length for --trials-n (default: follows the model, as in experiments.trials)")
    group.add_argument("--scenario", default=None)
    group.add_argument("--batch-size", type=int, default=16)
    add_run_args(parser)  # --runs is also where probe and trials runs are looked for
    return parse_run_args(parser, argv)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def resolve_pair(args: argparse.Namespace) -> tuple[str, str]:
    """(base, instruct) names from --base/--instruct or --model --with-base."""
    if args.with_base:
        if not args.model or args.base or args.instruct:
            raise ConfigError("--with-base goes with --model NAME only (not --base/--instruct)")
        spec = resolve_spec(args.model)
        if not spec.base:
            why = spec.base_note or "the registry names no base checkpoint for it"
            raise ConfigError(f"'{args.model}' has no registered base: {why}; pass --base NAME --instruct NAME")
        return spec.base, args.model
    if args.model:
        raise ConfigError("--model needs --with-base; or pass --base NAME --instruct NAME")
    if not args.base or not args.instruct:
        raise ConfigError("pass --base NAME --instruct NAME, or --model NAME --with-base")
    return args.base, args.instruct


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print(format_model_list())
        return 0
    base_name, instruct_name = resolve_pair(args)
    cfg = CompareConfig(
        concepts=_split(args.concepts), analyses=_split(args.analyses), hook=args.hook, position=args.position,
        estimators=_split(args.estimators), transfer_estimator=args.transfer_estimator, n_splits=args.folds,
        seed=args.seed, store_root=args.store, runs_root=str(args.runs) if args.runs else None, batch_size=args.batch_size,
        probe_runs={r: p for r, p in (("base", args.base_probe_run), ("instruct", args.instruct_probe_run)) if p},
        trials_runs={r: list(_split(p)) for r, p in (("base", args.base_trials),
                                                    ("instruct", args.instruct_trials)) if p},
        scenario=args.scenario, condition=args.condition, patch_hook=args.patch_hook, against=_split(args.against),
        proceed=_split(args.proceed), kl_response=args.kl_response, kl_new_tokens=args.kl_new_tokens,
        trials_n=args.trials_n, trials_conditions=_split(args.trials_conditions),
        trials_max_new_tokens=args.trials_max_new_tokens)
    validate_config(cfg)
    specs = resolve_spec(base_name, args.base_weights), resolve_spec(instruct_name, args.instruct_weights)
    warnings = check_roles(*specs, base_name, instruct_name)
    check_shapes_before_loading(*specs, cfg)
    for w in warnings:
        log.warning("warning: %s", w)
    start = time.perf_counter()
    load = dict(dtype=args.dtype, device=args.device, device_map=args.device_map, n_devices=args.n_devices)
    base = load_model(base_name, weights=args.base_weights, **load)
    instruct = load_model(instruct_name, weights=args.instruct_weights, **load)
    log.info("loaded %s and %s in %.0f s", base.identity.name, instruct.identity.name, time.perf_counter() - start)
    plan({"base": base, "instruct": instruct}, cfg)  # same checkpoint, or same-width analyses asked of other widths
    run = RunDir.create("compare", f"{base.identity.name}-vs-{instruct.identity.name}",
                        {"base": base_name, "instruct": instruct_name, "model_args": load, **cfg.to_dict()},
                        root=args.runs, model_identity={"base": base.identity.to_dict(),
                                                        "instruct": instruct.identity.to_dict()})
    log.info("run directory: %s", run.path)
    result = run_compare(base, instruct, cfg, run, warnings)
    for name, why in result.skipped.items():
        log.info("skipped %s: %s", name, why)
    log.info("done in %.0f s: %s", time.perf_counter() - start, run.path / "report.md")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
