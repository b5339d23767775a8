"""The trials job: sampled trials per condition through a backend, judged, with the convergence table and report.

Writes a run directory (``runs/<time>-trials-<model>/``):

- ``transcripts.jsonl``      every trial: model identity, prompt text and hash, condition, sampling, seed, raw
                             response, think part, final answer, judge label (see :mod:`behaviour.trials`);
- ``results/table.json``     the convergence table (counts, rates with Wilson intervals, Fisher tests);
- ``figures/convergence.png`` its bar chart;
- ``review.csv``             the trials for manual review (fill ``reviewed_label``; ``python -m experiments.score
                             --reviews``);
- ``results/rates.json``     the rates in three columns (judge-only, reviewed-only, PPI) once a blind sample
                             (``review_sample.csv``, ``python -m experiments.review sample``) is filled; judge-only
                             until then (:func:`run_rates`);
- ``report.md``              the table, the prompts (hashes), the sampling settings, the n and the caveats.

A resumed run keeps its stored settings (:func:`resume_settings`); trials already stored are never redone or
duplicated (:func:`behaviour.trials.run_trials`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activations.models import LoadedModel
from activations.registry import load_registry
from behaviour.backends import Backend, OpenAIBackend
from behaviour.judges.factory import DEFAULT_JUDGE
from behaviour.rates import RatesTable, judged_rates
from behaviour.review import export_for_review
from behaviour.review_sample import SAMPLE_NAME, SampleError, read_sample
from behaviour.scenario import Scenario, load_scenario
from behaviour.table import convergence_table, plot_convergence
from behaviour.trials import TrialRecord, default_max_new_tokens, expand_conditions, run_trials
from common import REPO_ROOT
from common.errors import ConfigError
from common.rundir import RunDir
from experiments.jobs.backends import LocalBackend, SteeredBackend, get_judge
from interventions.steered_trials import SteeringSpec, resolve_steering

__all__ = ["DEFAULTS", "ENFORCED", "STORE", "TrialsOutcome", "build_backend", "default_trials_settings",
           "format_conditions", "prompt_summary", "report_markdown", "resume_settings", "run_rates", "run_trials_job",
           "write_outputs"]

log = logging.getLogger(__name__)

STORE = "transcripts.jsonl"
#: Settings a resumed run must share with the original (they decide which trials exist and what they contain).
#: Batch size, device and server URL only change how fast the same trials are produced.
ENFORCED = ("model", "weights", "revision", "dtype", "scenario", "conditions", "paraphrases", "n", "temperature",
            "top_p", "max_new_tokens", "seed", "backend", "served_model", "prompt_format", "judge", "thinking",
            "steering", "served_control_vector")


#: The settings of a trials run when nothing else is asked for (the trials CLI's defaults, used by compare too).
DEFAULTS: dict[str, Any] = {
    "weights": None, "revision": None, "dtype": "float32", "scenario": None, "conditions": ["baseline", "threat"],
    "paraphrases": False, "n": 20, "temperature": 0.7, "top_p": 0.95, "max_new_tokens": None, "seed": 0,
    "batch_size": 8, "thinking": None, "backend": "local", "base_url": None, "served_model": None,
    "prompt_format": None, "judge": DEFAULT_JUDGE, "steering": None, "served_control_vector": None,
}


def default_trials_settings(model_name: str, **overrides: Any) -> dict[str, Any]:
    """The settings dict :func:`run_trials_job` takes: :data:`DEFAULTS` for ``model_name``, with ``overrides``."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown trials setting(s) {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    return {"model": model_name, **DEFAULTS, **overrides}


@dataclass(frozen=True)
class TrialsOutcome:
    """What a trials job produced: its run directory and every requested trial's record."""

    run: RunDir
    records: list[TrialRecord]


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


def build_backend(settings: dict[str, Any], *, api_key: str | None,
                  load_local: Callable[[], LoadedModel]) -> Backend:
    """The backend ``settings`` ask for; ``load_local`` loads the model for the local backend (only called then)."""
    if settings["backend"] == "openai":
        if settings.get("steering"):
            raise ConfigError("--steering needs the local backend: a server cannot be steered through its API. "
                              "Start a steered server instead (llama.cpp: --control-vector-scaled FILE:SCALE) and "
                              "declare it with --served-control-vector FILE --served-control-scale SCALE")
        if not settings["base_url"]:
            raise ConfigError("--backend openai needs --base-url (e.g. http://localhost:8000)")
        spec = load_registry().get(settings["model"])
        served = settings["served_model"] or (spec.hub_id if spec and spec.hub_id else settings["model"])
        prompt_format = settings["prompt_format"] or (spec.prompt_format if spec else "chat")
        return OpenAIBackend(settings["base_url"], served, api_key=api_key, prompt_format=prompt_format,
                             max_concurrency=settings["batch_size"],
                             control_vector=settings.get("served_control_vector"))
    if settings["base_url"] or settings["served_model"] or settings["prompt_format"]:
        raise ConfigError("--base-url, --served-model and --prompt-format are for --backend openai")
    if settings.get("served_control_vector"):
        raise ConfigError("--served-control-vector describes a steered server (--backend openai); steer the local "
                          "model with --steering SPEC.yaml")
    log.info("loading %s ...", settings["model"])
    model = load_local()
    if settings.get("steering"):
        steering = resolve_steering(model, SteeringSpec.from_dict(settings["steering"]))
        return SteeredBackend(model, steering, batch_size=settings["batch_size"])
    return LocalBackend(model, batch_size=settings["batch_size"])


def run_trials_job(settings: dict[str, Any], *, run: RunDir | None, api_key: str | None,
                   load_local: Callable[[], LoadedModel], runs_root: str | Path | None = None) -> TrialsOutcome:
    """Run (or, with ``run``, finish) the trials ``settings`` describe and write the run directory's outputs.

    Everything cheap is validated before a model loads: conditions, numbers, the judge spec, unchanged prompts.
    """
    scenario = load_scenario(settings["scenario"])
    conditions = expand_conditions(scenario, settings["conditions"], paraphrases=settings["paraphrases"])
    for key, low in (("n", 1), ("max_new_tokens", 1), ("batch_size", 1)):
        if settings[key] is not None and settings[key] < low:  # max_new_tokens None: follows the model
            raise ConfigError(f"--{key.replace('_', '-')} must be >= {low}, got {settings[key]}")
    judge = get_judge(settings["judge"])
    prompts = prompt_summary(scenario, conditions)
    if run is not None and run.config.get("prompts") != prompts:
        raise ConfigError(f"the scenario texts changed since {run.path} was started (prompt hashes differ); "
                          "resuming would mix wordings. Start a new run")

    backend = build_backend(settings, api_key=api_key, load_local=load_local)
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
                            root=runs_root, model_identity=identity)
        log.info("run directory: %s", run.path)
    elif run.config.get("model_key") != identity["key"]:
        raise ConfigError(f"{run.path} was run with model identity {run.config.get('model_key')}, but the loaded "
                          f"model is {identity['key']} (different weights, dtype or served control vector); start a "
                          "new run")
    run.start()  # a resumed run is running again
    with run:  # the job records how its run ended (completed / failed with the error), CLI or library call alike
        records = run_trials(
            backend, scenario, conditions, settings["n"], out_path=run.path / STORE,
            temperature=settings["temperature"], top_p=settings["top_p"], max_new_tokens=settings["max_new_tokens"],
            base_seed=settings["seed"], batch_size=settings["batch_size"], judge=judge,
            enable_thinking=settings["thinking"],
        )
        write_outputs(run, records, settings, scenario, conditions, backend)
    return TrialsOutcome(run, records)


def served_steering_line(identity: dict[str, Any]) -> str:
    """The report's note on a steered server (empty for an unsteered one)."""
    cv = identity.get("control_vector")
    if not cv:
        return ""
    return (f"\n- Served steering: the server adds a control vector (sha256 `{cv['sha256'][:16]}`, scale "
            f"{cv['scale']}); these are steered trials.")


def registry_thinking(settings: dict[str, Any]) -> bool | None:
    """Whether a served model thinks, from its registry entry (None for a local model: its loaded spec says)."""
    if settings["backend"] != "openai":
        return None
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
    rates = run_rates(run, rows)
    run.write_report(report_markdown(records, table.to_markdown(), settings, scenario, conditions, backend,
                                     rates_md=rates.to_markdown()))


def run_rates(run: RunDir, rows: Sequence[dict[str, Any]],
              by: Sequence[str] = ("model", "condition")) -> RatesTable:
    """The run's rates (:func:`behaviour.rates.judged_rates`, grouped by ``by``) with its filled blind sample when
    there is one, saved as ``results/rates.json``. A sample that fails its checks is not used, and the table says
    why."""
    sample_path = run.path / SAMPLE_NAME
    sample, problem = None, None
    if sample_path.exists():
        try:
            sample = read_sample(sample_path, rows)
        except SampleError as exc:
            problem = str(exc)
            log.warning("the review sample is not used: %s", exc)
    rates = judged_rates(rows, sample, by=by)
    if problem:
        rates = dataclasses.replace(rates, notes=[*rates.notes, f"{SAMPLE_NAME} was not used: {problem}"])
    run.write_json("rates.json", rates.to_dict())
    return rates


def report_markdown(records: list[TrialRecord], table_md: str, settings: dict[str, Any], scenario: Scenario,
                    conditions: Sequence[str], backend: Backend, rates_md: str | None = None) -> str:
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
  `manifest.json` and in every record).{served_steering_line(identity)}
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

### Judge-aware rates

{rates_md or "(not computed)"}

Responses: {empty} empty, {cut} of {n_total} cut off at the {settings['max_new_tokens']}-token limit ({truncated} of them
before any verdict: abstained as `truncated`), {unscored} abstained in all (label null, first in `review.csv`); mean
length {mean_tokens} tokens.

## Caveats

- Labels come from the `{settings['judge']}` judge. Measure them on this run before quoting rates: `python -m
  experiments.review sample <run dir> --n K --seed S` draws a blind random sample; fill it and run `python -m
  experiments.review rates <run dir>` for the judge-only, reviewed-only and PPI rates (docs/rates.md). For the
  review queue: fill `reviewed_label` in `review.csv`, then `python -m experiments.score --input {STORE} --output scored.jsonl
  --reviews review.csv --table` reports judge/reviewer agreement (Cohen's kappa) and the reviewed table.
- At n = {settings['n']} per cell the Wilson 95% intervals are wide; only the Fisher tests above say whether a
  difference between cells is distinguishable from sampling noise.
- The rates describe this model, this scenario version and these sampling settings only. A small model's rates say
  nothing about the large models of the seed experiment.
"""
