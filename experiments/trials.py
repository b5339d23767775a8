"""Behavioural trials: ``python -m experiments.trials --model M --conditions baseline,threat --n 20``.

Runs N sampled trials per condition (and, with ``--paraphrases``, per paraphrase of each condition), scores each
with a judge, and writes a run directory (``runs/<time>-trials-<model>/``):

- ``transcripts.jsonl``      every trial: model identity, prompt text and hash, condition, sampling, seed, raw
                             response, think part, final answer, judge label (see :mod:`behaviour.trials`);
- ``results/table.json``     the convergence table (counts, rates with Wilson intervals, Fisher tests);
- ``figures/convergence.png`` its bar chart;
- ``review.csv``             the trials for manual review (fill ``reviewed_label``; ``python -m experiments.score
                             --reviews``);
- ``report.md``              the table, the prompts (hashes), the sampling settings, the n and the caveats.

Generation goes through the local TransformerLens bridge by default; ``--backend openai --base-url URL`` uses an
OpenAI-compatible server (vLLM, llama.cpp, TGI) instead. ``--resume RUN_DIR`` finishes an interrupted run with its
stored settings (passing a different setting is an error); trials already stored are never redone or duplicated.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common import REPO_ROOT
from behaviour.backends import Backend, LocalBackend, OpenAIBackend
from behaviour.judges import DEFAULT_JUDGE, SPEC_HELP
from behaviour.judge import get_judge
from behaviour.review import export_for_review
from behaviour.scenario import Scenario, load_scenario
from behaviour.table import convergence_table, plot_convergence
from behaviour.trials import TrialRecord, default_max_new_tokens, expand_conditions, run_trials
from experiments.cli import add_model_args, format_model_list, load_from_args, run_main
from common.rundir import RunDir

log = logging.getLogger("experiments.trials")

STORE = "transcripts.jsonl"
#: Settings a resumed run must share with the original (they decide which trials exist and what they contain).
#: Batch size, device and server URL only change how fast the same trials are produced.
ENFORCED = ("model", "weights", "revision", "dtype", "scenario", "conditions", "paraphrases", "n", "temperature",
            "top_p", "max_new_tokens", "seed", "backend", "served_model", "prompt_format", "judge", "thinking")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.trials", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    trials = parser.add_argument_group("trials")
    trials.add_argument("--conditions", default="baseline,threat",
                        help="comma-separated scenario conditions (see --list-conditions; default: baseline,threat)")
    trials.add_argument("--paraphrases", action="store_true",
                        help="also run each condition's paraphrases (<condition>_p1, _p2, ...)")
    trials.add_argument("--n", type=int, default=20, help="trials per condition (default: 20)")
    trials.add_argument("--scenario", default=None, help="scenario YAML (default: configs/scenario/veth.yaml)")
    trials.add_argument("--list-conditions", action="store_true", help="list the scenario's conditions and exit")
    trials.add_argument("--judge", default=DEFAULT_JUDGE,
                        help=f"{SPEC_HELP} (default: {DEFAULT_JUDGE})")
    trials.add_argument("--resume", default=None, metavar="RUN_DIR", help="finish an interrupted run in RUN_DIR")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default: 0.7)")
    sampling.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default: 0.95)")
    sampling.add_argument("--max-new-tokens", type=int, default=None,
                          help="response length limit in tokens (default: follows the model: 8192 for a registry "
                               "'thinking' model, else 1024, within a local model's context)")
    sampling.add_argument("--seed", type=int, default=0, help="base seed; each trial's seed derives from it and "
                                                              "the trial id (default: 0)")
    sampling.add_argument("--batch-size", type=int, default=8, help="trials generated together (default: 8)")
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
    }


def resume_settings(run: RunDir, requested: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """The stored settings of ``run``; an explicitly passed setting that differs from them is an error."""
    stored = run.config
    if stored.get("experiment") != "trials":
        raise ConfigError(f"{run.path} is a '{stored.get('experiment')}' run, not a trials run")
    clashes = [f"--{key.replace('_', '-')} {requested[key]!r} (the run has {stored.get(key)!r})"
               for key in ENFORCED if key in explicit and requested[key] != stored.get(key)]
    if clashes:
        raise ConfigError(f"--resume {run.path}: these settings differ from the run's: {'; '.join(clashes)}. "
                          "Drop them to continue with the stored settings, or start a new run without --resume")
    settings = {key: stored.get(key, requested[key]) for key in requested}
    for key in ("batch_size", "base_url"):  # may change between sessions
        if key in explicit:
            settings[key] = requested[key]
    return settings


def build_backend(settings: dict[str, Any], args: argparse.Namespace) -> Backend:
    if settings["backend"] == "openai":
        if not settings["base_url"]:
            raise ConfigError("--backend openai needs --base-url (e.g. http://localhost:8000)")
        from activations.registry import load_registry

        spec = load_registry().get(settings["model"])
        served = settings["served_model"] or (spec.hub_id if spec and spec.hub_id else settings["model"])
        prompt_format = settings["prompt_format"] or (spec.prompt_format if spec else "chat")
        return OpenAIBackend(settings["base_url"], served, api_key=os.environ.get(args.api_key_env),
                             prompt_format=prompt_format, max_concurrency=settings["batch_size"])
    if settings["base_url"] or settings["served_model"] or settings["prompt_format"]:
        raise ConfigError("--base-url, --served-model and --prompt-format are for --backend openai")
    for key in ("model", "weights", "revision", "dtype"):
        setattr(args, key, settings[key])
    log.info("loading %s ...", settings["model"])
    return LocalBackend(load_from_args(args), batch_size=settings["batch_size"])


def registry_thinking(settings: dict[str, Any]) -> bool | None:
    """Whether a served model thinks, from its registry entry (None for a local model: its loaded spec says)."""
    if settings["backend"] != "openai":
        return None
    from activations.registry import load_registry

    spec = load_registry().get(settings["model"])
    return bool(spec and spec.thinking)


def prompt_summary(scenario: Scenario, conditions: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {c: {"hash": scenario.text_hash(c), "description": scenario.descriptions.get(c, "")} for c in conditions}


def format_conditions(scenario: Scenario) -> str:
    rows = [f"{'condition':14} {'text hash':17} description"]
    for name in scenario.condition_names():
        rows.append(f"{name:14} {scenario.text_hash(name):17} {scenario.descriptions.get(name, '')}")
    return "\n".join(rows)


def write_outputs(run: RunDir, records: list[TrialRecord], settings: dict[str, Any], scenario: Scenario,
                  conditions: Sequence[str], backend: Backend) -> None:
    rows = [r.to_dict() for r in records]
    table = convergence_table(rows, by=("model", "condition"))
    run.write_json("table.json", table.to_dict())
    run.save_figure(plot_convergence(table), "convergence")
    review = run.path / "review.csv"
    if review.exists():  # it may hold a reviewer's labels: never replace it
        log.info("kept the existing %s (it may hold reviews)", review)
    else:
        export_for_review(rows, review)
    run.write_report(report_markdown(records, table.to_markdown(), settings, scenario, conditions, backend))


def report_markdown(records: list[TrialRecord], table_md: str, settings: dict[str, Any], scenario: Scenario,
                    conditions: Sequence[str], backend: Backend) -> str:
    n_total = len(records)
    empty = sum(r.empty_response for r in records)
    cut = sum(r.finished is False for r in records)
    unscored = sum(r.label is None for r in records)
    truncated = sum(r.label is None and (r.needs_review or "").startswith("truncated") for r in records)
    tokens = [r.n_tokens for r in records if r.n_tokens is not None]
    mean_tokens = f"{sum(tokens) / len(tokens):.0f}" if tokens else "unknown"
    identity = backend.identity
    source: Any = scenario.path or "the scenario file"
    if isinstance(source, Path) and source.is_relative_to(REPO_ROOT):
        source = source.relative_to(REPO_ROOT)  # readable, and the same on every checkout
    prompt_rows = "\n".join(
        f"| {c} | `{scenario.text_hash(c)}` | {sum(r.condition == c for r in records)} | "
        f"{scenario.descriptions.get(c, '')} |" for c in conditions)
    thinking = {None: "template default", True: "on", False: "off"}[settings["thinking"]]
    return f"""# Trials: {backend.model_name}, scenario {scenario.name} v{scenario.version}

- Model: `{backend.model_name}` via the {backend.name} backend; identity key `{identity['key']}` (full identity in
  `manifest.json` and in every record).
- Trials: n = {settings['n']} per condition, {n_total} in all; conditions: {', '.join(conditions)}.
- Sampling: temperature {settings['temperature']}, top-p {settings['top_p']}, at most {settings['max_new_tokens']} new
  tokens, thinking {thinking}. Base seed {settings['seed']}; each trial's seed is derived from the base seed and its
  trial id and stored with it, so any trial can be regenerated alone.
- Judge: `{settings['judge']}`.

## Prompts

Full texts: `{source}` (version {scenario.version}). The exact prompt each trial received is its `prompt_text` in
`transcripts.jsonl`.

| condition | text hash | trials | description |
|---|---|---|---|
{prompt_rows}

## Results

{table_md}
![convergence](figures/convergence.png)

Responses: {empty} empty, {cut} of {n_total} cut off at the {settings['max_new_tokens']}-token limit ({truncated} of them
before any verdict: abstained as `truncated`), {unscored} abstained in all (label null, first in `review.csv`); mean
length {mean_tokens} tokens.

## Caveats

- Labels come from the `{settings['judge']}` judge. Check them against a manual review before quoting rates: fill
  `reviewed_label` in `review.csv`, then `python -m experiments.score --input {STORE} --output scored.jsonl
  --reviews review.csv --table` reports judge/reviewer agreement (Cohen's kappa) and the reviewed table.
- At n = {settings['n']} per cell the Wilson 95% intervals are wide; only the Fisher tests above say whether a
  difference between cells is distinguishable from sampling noise.
- The rates describe this model, this scenario version and these sampling settings only. A small model's rates say
  nothing about the large models of the seed experiment.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        print(format_model_list())
        return 0
    requested = settings_from_args(args)
    run = RunDir.open(args.resume) if args.resume else None
    settings = resume_settings(run, requested, explicit_options(parser, argv)) if run else requested

    scenario = load_scenario(settings["scenario"])
    if args.list_conditions:
        print(format_conditions(scenario))
        return 0
    # Validate everything cheap before loading a model.
    conditions = expand_conditions(scenario, settings["conditions"], paraphrases=settings["paraphrases"])
    for key, low in (("n", 1), ("max_new_tokens", 1), ("batch_size", 1)):
        if settings[key] is not None and settings[key] < low:
            raise ConfigError(f"--{key.replace('_', '-')} must be >= {low}, got {settings[key]}")
    judge = get_judge(settings["judge"])
    prompts = prompt_summary(scenario, conditions)
    if run is not None and run.config.get("prompts") != prompts:
        raise ConfigError(f"the scenario texts changed since {run.path} was started (prompt hashes differ); "
                          "resuming would mix wordings. Start a new run")

    backend = build_backend(settings, args)
    identity = backend.identity
    if settings["max_new_tokens"] is None:
        settings = {**settings, "max_new_tokens": default_max_new_tokens(
            backend, [scenario.prompt(c) for c in conditions], thinking_model=registry_thinking(settings),
            enable_thinking=settings["thinking"])}
        log.info("max_new_tokens %d (follows the model; set --max-new-tokens to change)", settings["max_new_tokens"])
    if run is None:
        run = RunDir.create("trials", backend.model_name,
                            {**settings, "expanded_conditions": conditions, "prompts": prompts,
                             "scenario_version": scenario.version, "model_key": identity["key"]},
                            model_identity=identity)
        log.info("run directory: %s", run.path)
    elif run.config.get("model_key") != identity["key"]:
        raise ConfigError(f"{run.path} was run with model identity {run.config.get('model_key')}, but the loaded "
                          f"model is {identity['key']} (different weights or dtype); start a new run")

    records = run_trials(
        backend, scenario, conditions, settings["n"], out_path=run.path / STORE,
        temperature=settings["temperature"], top_p=settings["top_p"], max_new_tokens=settings["max_new_tokens"],
        base_seed=settings["seed"], batch_size=settings["batch_size"], judge=judge,
        enable_thinking=settings["thinking"],
    )
    write_outputs(run, records, settings, scenario, conditions, backend)
    print(f"{len(records)} trials in {run.path}: {STORE}, results/table.json, figures/convergence.png, review.csv, "
          "report.md")
    return 0


if __name__ == "__main__":
    run_main(main)
