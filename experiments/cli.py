"""Shared command-line pieces: model arguments, loading from them, and turning toolkit errors into one clear line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from common.errors import ToolkitError
from common.rundir import track_runs
from common.threads import DEFAULT_THREADS, set_threads
from activations.models import DTYPES, LoadedModel, load_model
from activations.registry import DEFAULT_MODEL, ModelSpec, load_registry


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL,
                       help=f"registry name (see --list-models), hub id or local directory (default: {DEFAULT_MODEL})")
    group.add_argument("--weights", default=None, help="local directory holding the weights of a registry model")
    group.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) to pin")
    group.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu for packaged models)")
    group.add_argument("--device-map", default=None,
                       help="accelerate device map: auto (or balanced, sequential), or a JSON object (inline or a "
                            ".json file) mapping modules to GPUs, cpu or disk; cpu/disk offload runs a model larger "
                            "than memory, slowly")
    group.add_argument("--offload-folder", default=None, metavar="DIR",
                       help="where --device-map writes weights offloaded to disk")
    group.add_argument("--max-memory", default=None, metavar="DEV=SIZE,...",
                       help="per-device budget for --device-map, e.g. cpu=20GiB (the rest goes to disk) or 0=70GiB")
    group.add_argument("--n-devices", type=int, default=None, help="split the model over this many GPUs")
    group.add_argument("--list-models", action="store_true", help="list the registry's models and exit")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The options shared by every command that writes a run directory (parse with :func:`parse_run_args`)."""
    group = parser.add_argument_group("run")
    group.add_argument("--runs", type=Path, default=None, metavar="DIR",
                       help="root of run directories (default: runs/, or $VETH_RUNS)")
    default = "torch's default: one per core, or $OMP_NUM_THREADS" if DEFAULT_THREADS is None else DEFAULT_THREADS
    group.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                       help=f"CPU threads for torch; lower it (1) on a CPU other jobs share (default: {default})")


def parse_run_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse a command line built with :func:`add_run_args` and apply ``--threads`` before any work starts (the
    setting is recorded in every run's manifest)."""
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    set_threads(args.threads)
    return args


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    return load_model(args.model, dtype=args.dtype, device=args.device, device_map=args.device_map,
                      n_devices=args.n_devices, revision=args.revision, weights=args.weights,
                      offload_folder=getattr(args, "offload_folder", None), max_memory=getattr(args, "max_memory", None))


def format_model_list(registry: dict[str, ModelSpec] | None = None) -> str:
    """The registry as a table: name, kind, thinking mode, where the weights come from, and the base (or why none)."""
    registry = load_registry() if registry is None else registry
    rows = [("NAME", "KIND", "THINKING", "SOURCE", "BASE / NOTE")]
    for spec in registry.values():
        if spec.source == "hub":
            where = f"hub {spec.hub_id}" + (" (gated)" if spec.gated else "")
        elif spec.source == "packaged":
            where = f"packaged {spec.package}"
        else:
            where = f"local {spec.path}"
        extra = f"base: {spec.base}" if spec.base else (spec.base_note or "")
        rows.append((spec.name, spec.kind, "yes" if spec.thinking else "no", where, extra))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[4]]).rstrip() for row in rows)


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> None:
    """Run a CLI ``main``; a :class:`ToolkitError` becomes ``error: <message>`` and exit status 2.

    Every run directory the command creates is finished on the way out (:func:`common.rundir.track_runs`):
    ``completed``, or ``failed``/``interrupted`` with an ``error.txt``, so a listing of runs never shows a failed run
    as if it were a finished one.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with track_runs():
            code = main(argv)
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted: work written so far is kept; rerun the same command to resume", file=sys.stderr)
        code = 130
    sys.exit(code)
