"""Activation patching on one clean/corrupted pair: where is the verdict decided?

    python -m experiments.patch --trials RUN_DIR --trial ID --noise "Step 2"            # noise one reasoning step
    python -m experiments.patch --trials RUN_DIR --trial ID --corrupted-trial ID2         # two trials, same prompt
    python -m experiments.patch --clean TEXT --corrupted TEXT
    python -m experiments.patch --clean-condition baseline --corrupted-condition threat --response "Step 1: ..."
    python -m experiments.patch --clean TEXT --replace " sentient= mobile"               # symmetric token replacement

Writes a run directory with heatmaps, results/effects.json, results/agreement.json and report.md
(see experiments.jobs.patch). The verdict is read after the text's last token (end it with "Final verdict:").
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

from common.errors import ConfigError
from common.rundir import RunDir
from experiments.cli import add_model_args, add_run_args, format_model_list, load_from_args, parse_run_args, run_main
from experiments.jobs.patch import PairSource, PatchConfig, build_pair, run_patch, validate
from interventions.patching import COMPONENTS
from interventions.segments import DIRECTIONS

log = logging.getLogger("experiments.patch")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.patch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    g = parser.add_argument_group("pair (one clean source, one corruption)")
    g.add_argument("--trials", default=None, help="trials run directory (its transcripts.jsonl)")
    g.add_argument("--trial", default=None, help="clean trial id: prompt + response up to 'Final verdict:'")
    g.add_argument("--corrupted-trial", default=None, help="corrupted trial id from the same run")
    g.add_argument("--clean", default=None, help="clean text (ending where the verdict token comes)")
    g.add_argument("--corrupted", default=None, help="corrupted text")
    g.add_argument("--clean-condition", default=None, help="scenario condition rendered as the clean prompt")
    g.add_argument("--corrupted-condition", default=None, help="scenario condition rendered as the corrupted prompt")
    g.add_argument("--response", default="Final verdict:",
                   help="response prefix appended to rendered conditions (default: 'Final verdict:')")
    g.add_argument("--corrupted-response", default=None,
                   help="with --clean-condition: the same prompt with this response prefix as the corrupted text")
    g.add_argument("--scenario", default=None, help="scenario YAML (default: configs/scenario/veth.yaml)")
    g.add_argument("--replace", action="append", default=[], metavar="OLD=NEW",
                   help="symmetric token replacement on the clean text (repeatable)")
    g.add_argument("--noise", action="append", default=[], metavar="SEGMENT",
                   help="Gaussian-noise the embeddings of this segment of the clean text (repeatable)")
    g.add_argument("--noise-scale", type=float, default=3.0, help="noise std in embedding stds (default 3, ROME)")
    g.add_argument("--noise-samples", type=int, default=8, help="noise draws (intervals come from these)")
    g.add_argument("--seed", type=int, default=0)
    g = parser.add_argument_group("patching")
    g.add_argument("--components", default=",".join(COMPONENTS), help=f"comma-separated of {', '.join(COMPONENTS)}"
                   " (z = attention heads)")
    g.add_argument("--directions", default="denoising", help=f"comma-separated of {', '.join(DIRECTIONS)}")
    g.add_argument("--positions", default="auto", choices=("auto", "tokens", "segments"))
    g.add_argument("--window", type=int, default=None, help="per-token: only the last N positions")
    g.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    g.add_argument("--heads", default=None, help="comma-separated heads (default: all)")
    g.add_argument("--against", default=None, help="comma-separated 'against' verdict tokens (default ' No')")
    g.add_argument("--proceed", default=None, help="comma-separated 'proceed' verdict tokens (default ' Yes')")
    g.add_argument("--no-attribution", action="store_true", help="skip attribution patching")
    add_run_args(parser)
    return parse_run_args(parser, argv)


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--{what} {text!r}: give comma-separated integers, e.g. 0,3,7") from None


def _words(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return default if text is None else tuple(text.split(","))


def config_from_args(args: argparse.Namespace) -> PatchConfig:
    base = PatchConfig()
    return PatchConfig(components=tuple(c.strip() for c in args.components.split(",") if c.strip()),
                       directions=tuple(d.strip() for d in args.directions.split(",") if d.strip()),
                       positions=args.positions, window=args.window, layers=_ints(args.layers, "layers"),
                       heads=_ints(args.heads, "heads"), against=_words(args.against, base.against),
                       proceed=_words(args.proceed, base.proceed), attribution=not args.no_attribution)


def check_sources(args: argparse.Namespace) -> None:
    """One clean source and one corruption, before the model is loaded."""
    clean = [args.trial is not None, args.clean is not None, args.clean_condition is not None]
    if sum(clean) != 1:
        raise ConfigError("give exactly one clean source: --trials/--trial, --clean or --clean-condition")
    if args.trial is not None and args.trials is None:
        raise ConfigError("--trial needs --trials RUN_DIR")
    corruptions = [args.corrupted_trial is not None, args.corrupted is not None, args.corrupted_response is not None,
                   args.corrupted_condition is not None, bool(args.replace), bool(args.noise)]
    if sum(corruptions) != 1:
        raise ConfigError("give exactly one corruption: --corrupted-trial, --corrupted, --corrupted-condition, "
                          "--corrupted-response, "
                          "--replace OLD=NEW or --noise SEGMENT")
    if args.corrupted_trial is not None and args.trials is None:
        raise ConfigError("--corrupted-trial needs --trials RUN_DIR")
    if args.corrupted_response is not None and args.clean_condition is None:
        raise ConfigError("--corrupted-response needs --clean-condition (the prompt both responses follow)")
    from interventions.pairs import load_trial_text

    for trial in (args.trial, args.corrupted_trial):  # cheap: a missing trial fails before the model loads
        if trial is not None:
            load_trial_text(args.trials, trial)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print(format_model_list())
        return 0
    check_sources(args)
    cfg = config_from_args(args)
    start = time.perf_counter()
    model = load_from_args(args)
    validate(cfg, model)
    pair = build_pair(model, PairSource(**{k: getattr(args, k) for k in PairSource.__dataclass_fields__}))
    run = RunDir.create("patch", args.model, {"pair_args": {k: getattr(args, k) for k in (
        "trials", "trial", "corrupted_trial", "clean", "corrupted", "clean_condition", "corrupted_condition",
        "response", "corrupted_response", "replace", "noise", "noise_scale", "noise_samples", "seed")},
        **cfg.to_dict()},
        root=args.runs, model_identity=model.identity.to_dict())
    log.info("run directory: %s", run.path)
    try:
        run_patch(model, pair, cfg, run)
    except Exception as exc:
        (run.path / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        raise
    log.info("done in %.0f s: %s", time.perf_counter() - start, run.path / "report.md")
    return 0


if __name__ == "__main__":
    run_main(main)
