"""The model registry, the memory plan and the caches: ``python -m experiments.models [list|plan|cache] ...``.

- ``list`` (the default; ``--json`` prints every field): one row per registry name: base or instruct, thinking mode,
  where its weights come from, and its base checkpoint, or why none is published and which is nearest.
- ``plan --model NAME [--gpus 2x80GB] [--dtype bfloat16] [--batch N]``: memory per step, the device map, the largest
  batch that fits and the activation store's size, each with its formula (docs/models-and-scale.md).
- ``cache [list] | cache remove NAME... [--yes] | cache --older-than YYYY-MM-DD [--yes]``: the converted-weights cache
  and the activation stores, with sizes and last use; removal is a dry run unless ``--yes``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from activations.plan import BYTES
from activations.registry import load_registry
from experiments.cli import format_model_list, run_main


def _list(args: argparse.Namespace) -> int:
    registry = load_registry()
    if args.json:
        print(json.dumps({name: dataclasses.asdict(spec) for name, spec in registry.items()}, indent=2))
    else:
        print(format_model_list(registry))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from experiments.jobs.plan import plan_model

    result = plan_model(args.model, gpus=args.gpus, dtype=args.dtype, batch_size=args.batch,
                        new_tokens=args.new_tokens, n_prompt_tokens=args.prompt_tokens,
                        cpu_memory=int(args.cpu_memory * 1024**3) if args.cpu_memory else None, n_texts=args.n_texts)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render())
    return 0


def _cache(args: argparse.Namespace) -> int:
    from experiments.jobs.cache import cache_command

    return cache_command(action=args.action, names=args.names, older_than=args.older_than, yes=args.yes,
                         roots=args.root)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.models", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print every field as JSON (list and plan)")
    sub = parser.add_subparsers(dest="command")
    lister = sub.add_parser("list", help="list the registry (the default)")
    lister.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    planner = sub.add_parser("plan", help="memory and disk plan of a model's steps, from its registry shape")
    planner.add_argument("--model", required=True, help="registry name (see `python -m experiments.models`)")
    planner.add_argument("--gpus", default=None, help="GPUs as COUNTxSIZE, e.g. 2x80GB, or 80GB,24GB "
                         "(default: none, plan for this machine's CPU memory)")
    planner.add_argument("--dtype", default="bfloat16", choices=sorted(BYTES))
    planner.add_argument("--batch", type=_positive, default=8, help="batch size (default 8, as the trials)")
    planner.add_argument("--new-tokens", type=int, default=None,
                         help="tokens generated per trial (default: the trials' limit, 8192 for thinking models)")
    planner.add_argument("--prompt-tokens", type=_positive, default=None,
                         help="prompt length (default: the scenario counted with the model's tokenizer if cached)")
    planner.add_argument("--n-texts", type=_positive, default=None,
                         help="texts the probe job stores (default: the concept datasets' distinct texts)")
    planner.add_argument("--cpu-memory", type=float, default=None, metavar="GIB",
                         help="CPU memory to plan for when no --gpus (default: this machine's)")
    planner.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    cache = sub.add_parser("cache", help="list or prune the converted-weights cache and the activation stores")
    cache.add_argument("action", nargs="?", choices=("list", "remove"), default="list")
    cache.add_argument("names", nargs="*", help="entries to remove, as `cache list` names them")
    cache.add_argument("--older-than", default=None, metavar="YYYY-MM-DD",
                       help="remove every entry last used before this date")
    cache.add_argument("--yes", action="store_true", help="really remove (without it, removal only says what it "
                       "would remove)")
    cache.add_argument("--root", type=Path, action="append", default=None,
                       help="cache root(s) to look in (default: the converted-weights cache and the store root)")

    args = parser.parse_args(argv)
    if args.command == "plan":
        return _plan(args)
    if args.command == "cache":
        return _cache(args)
    return _list(args)


if __name__ == "__main__":
    run_main(main)
