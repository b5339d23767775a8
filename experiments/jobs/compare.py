"""The base-vs-instruct comparison job: two checkpoints, inside (probes, directions, activations) and out (trials).

    run_compare(base, instruct, CompareConfig(...), run)

1. probe runs for both models: reused from the runs root by model identity (and hook, position, concepts), else run
   now; per-layer AUROC curves on one axis, at normalised depth when the layer counts differ;
2. when the two share depth and width (and, for 4-5, the tokenizer): direction cosines per layer (saved directions),
   cross-model probe transfer both ways (stored activations), cross-model activation patching both ways with the
   verdict log-odds, per-token KL over the scenario prompt and a response (:mod:`interventions.model_diff`);
3. behaviour: each checkpoint's trials runs found by identity (with ``trials_n`` > 0, run now where missing), in
   one table with Wilson intervals and Fisher tests;
4. figures and ``report.md``, which lists every analysis skipped and why.

The probe job is called from :func:`probe_job` only (one call site to re-point when the pipeline moves).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from activations.models import LoadedModel
from activations.registry import ModelSpec
from activations.store import store_dir_for
from common.errors import ConfigError
from common.jsonl import read_jsonl
from common.prompts import default_document
from common.rundir import RUNS_ROOT, RunDir
from experiments.jobs.probe import run_probe_job
from experiments.jobs.probe_config import DEFAULT_STORE_ROOT, ProbeConfig, default_n_jobs
from interventions import model_diff
from interventions.verdict import DEFAULT_AGAINST, DEFAULT_PROCEED, resolve_verdict_tokens
from probes.concepts import CONCEPTS

log = logging.getLogger(__name__)

ANALYSES = ("probes", "cosine", "transfer", "patching", "kl", "behaviour")
SAME_WIDTH = ("cosine", "transfer", "patching", "kl")  # need the same depth and width
SAME_TOKENS = ("patching", "kl")  # need the same tokenizer too


@dataclass(frozen=True)
class CompareConfig:
    """Everything the comparison depends on (written to ``config.json``). ``analyses=()`` means all that apply."""

    concepts: tuple[str, ...] = CONCEPTS
    analyses: tuple[str, ...] = ()
    hook: str = "resid_post"
    position: str = "last"
    estimators: tuple[str, ...] = ("logistic", "mean_diff")
    transfer_estimator: str = "mean_diff"
    n_splits: int = 5
    seed: int = 0
    store_root: str | None = None
    runs_root: str | None = None
    batch_size: int = 16
    storage_dtype: str = "float32"
    probe_runs: dict[str, str] = field(default_factory=dict)  # role -> probe run directory to use
    trials_runs: dict[str, list[str]] = field(default_factory=dict)  # role -> trials run directories to use
    scenario: str | None = None
    condition: str = "baseline"
    patch_hook: str = "resid_post"
    against: tuple[str, ...] = DEFAULT_AGAINST
    proceed: tuple[str, ...] = DEFAULT_PROCEED
    kl_response: str | None = None
    kl_new_tokens: int = 48
    trials_n: int = 0  # > 0: run this many trials per condition for a model without a trials run (0: say how)
    trials_conditions: tuple[str, ...] = ("baseline",)
    trials_max_new_tokens: int | None = None  # None: follows the model, as in the trials CLI

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def explicit(self) -> bool:
        return bool(self.analyses)

    def wants(self, analysis: str) -> bool:
        return not self.analyses or analysis in self.analyses


def validate_config(cfg: CompareConfig) -> None:
    """Argument checks that need no model."""
    unknown = [a for a in cfg.analyses if a not in ANALYSES]
    if unknown:
        raise ConfigError(f"unknown analysis/analyses {unknown}; choose from {', '.join(ANALYSES)}")
    if cfg.transfer_estimator not in model_diff.TRANSFER_ESTIMATORS:
        raise ConfigError(f"unknown transfer estimator {cfg.transfer_estimator!r}; "
                          f"choose from {', '.join(model_diff.TRANSFER_ESTIMATORS)}")
    if cfg.patch_hook not in model_diff.PATCH_HOOKS:
        raise ConfigError(f"--patch-hook must be one of {model_diff.PATCH_HOOKS}")
    if cfg.trials_n < 0:
        raise ConfigError(f"--trials-n must be >= 0, got {cfg.trials_n}")
    if cfg.trials_n:  # the trials job checks these too, but only after the probe work
        from behaviour.scenario import load_scenario
        from behaviour.trials import expand_conditions

        expand_conditions(load_scenario(cfg.scenario), cfg.trials_conditions)
    bad = [c for c in cfg.concepts if c not in CONCEPTS]
    if bad or not cfg.concepts:
        raise ConfigError(f"unknown concept(s) {bad}; choose from {', '.join(CONCEPTS)}")


def check_roles(base: ModelSpec, instruct: ModelSpec, base_name: str, instruct_name: str) -> list[str]:
    """Registry checks before loading: an error for a base model given as ``--instruct``; warnings otherwise."""
    if base_name == instruct_name:
        raise ConfigError(f"--base and --instruct are both '{base_name}'; compare two different checkpoints")
    if instruct.is_base:
        hint = f" (did you mean --base {instruct_name} --instruct {base_name}?)" if not base.is_base else ""
        raise ConfigError(f"'{instruct_name}' is registered as a base (pretrained) model, so it cannot be --instruct; "
                          f"pass it as --base{hint}")
    warnings = []
    if not base.is_base:
        warnings.append(f"'{base_name}' is registered as an instruct model but was given as --base; comparing anyway "
                        "(the report calls it 'base')")
    if base.source == "local" or instruct.source == "local" or base.name == base.hub_id:
        warnings.append("a model outside the registry: its kind (base/instruct) is guessed from its chat template")
    return warnings


def peek_shape(spec: ModelSpec) -> tuple[int, int] | None:
    """(layers, width) from a hub or local model's config.json without loading weights; ``None`` when unknown
    (packaged GGUF models, a config not in the local cache): then the check waits until the models are loaded."""
    location = spec.path if spec.source == "local" else spec.hub_id if spec.source == "hub" else None
    if location is None:
        return None
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(location)
        config = getattr(config, "text_config", None) or config
        return int(config.num_hidden_layers), int(config.hidden_size)
    except Exception:  # offline cache miss, unusual config: decide after loading instead
        return None


def check_shapes_before_loading(base: ModelSpec, instruct: ModelSpec, cfg: CompareConfig) -> None:
    """Same-width analyses asked for explicitly on two models whose configs already show different shapes."""
    asked = [a for a in cfg.analyses if a in SAME_WIDTH]
    shapes = peek_shape(base), peek_shape(instruct)
    if asked and None not in shapes and shapes[0] != shapes[1]:
        (lb, wb), (li, wi) = shapes
        raise ConfigError(f"--analyses {','.join(asked)} cannot run: {base.name} has {lb} layers of width {wb} and "
                          f"{instruct.name} {li} layers of width {wi}; only probes and behaviour apply to this pair")


# ---------------------------------------------------------------------------------------------------------------
# Finding earlier runs by model identity
# ---------------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _run_key(path: Path) -> str | None:
    config = _read_json(path / "config.json") or {}
    manifest = _read_json(path / "manifest.json") or {}
    return config.get("model_key") or (manifest.get("model") or {}).get("key")


def probe_run_matches(path: Path, model: LoadedModel, cfg: CompareConfig) -> str | None:
    """Why ``path`` cannot serve as ``model``'s probe run for this comparison, or ``None`` when it can."""
    config = _read_json(path / "config.json")
    if not config or config.get("experiment") != "probe":
        return "not a probe run"
    if _run_key(path) != model.identity.key:
        return f"other weights (identity {_run_key(path)}, loaded {model.identity.key})"
    if (config.get("hook"), config.get("position")) != (cfg.hook, cfg.position):
        return f"hook/position {config.get('hook')}/{config.get('position')}, asked {cfg.hook}/{cfg.position}"
    missing = [c for c in cfg.concepts if not (path / "results" / f"sweep_{c}.json").exists()]
    if missing or not (path / "results" / "directions_index.json").exists():
        return f"incomplete (no sweep for {missing})" if missing else "incomplete (no directions index)"
    return None


def find_probe_run(model: LoadedModel, cfg: CompareConfig) -> Path | None:
    """The newest complete probe run of this model (identity, hook, position, concepts) under the runs root."""
    root = Path(cfg.runs_root) if cfg.runs_root else RUNS_ROOT
    candidates = sorted((p for p in root.glob("*-probe-*") if p.is_dir()), reverse=True) if root.is_dir() else []
    return next((p for p in candidates if probe_run_matches(p, model, cfg) is None), None)


def find_trials_runs(model: LoadedModel, cfg: CompareConfig) -> list[Path]:
    """Every trials run of this model (by identity) under the runs root that holds transcripts."""
    root = Path(cfg.runs_root) if cfg.runs_root else RUNS_ROOT
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*-trials-*")
                  if (p / "transcripts.jsonl").exists() and _run_key(p) == model.identity.key)


def probe_job(model: LoadedModel, cfg: CompareConfig) -> Path:
    """Run the probe pipeline for ``model`` into a new probe run under the runs root; returns its directory."""
    probe_cfg = ProbeConfig(concepts=cfg.concepts, hook=cfg.hook, position=cfg.position, estimators=cfg.estimators,
                            n_splits=cfg.n_splits, seed=cfg.seed, batch_size=cfg.batch_size,
                            storage_dtype=cfg.storage_dtype, store_root=cfg.store_root or str(DEFAULT_STORE_ROOT),
                            n_jobs=default_n_jobs(), scenario=cfg.scenario)
    run = RunDir.create("probe", model.identity.name, {"model_args": {"compare": True}, **probe_cfg.to_dict(),
                                                       "model_key": model.identity.key},
                        root=Path(cfg.runs_root) if cfg.runs_root else None, model_identity=model.identity.to_dict())
    log.info("probe run for %s: %s", model.identity.name, run.path)
    with run:  # completed, or failed with the error: never left running by a library call
        run_probe_job(model, probe_cfg, run)
    return run.path


def trials_job(model: LoadedModel, cfg: CompareConfig) -> Path:
    """Run ``cfg.trials_n`` trials per condition of the already loaded ``model`` into a new trials run under the runs
    root (trials CLI defaults otherwise); found by identity on the next comparison."""
    from experiments.jobs.trials import default_trials_settings, run_trials_job

    settings = default_trials_settings(
        model.spec.name, weights=model.spec.path if model.spec.source == "local" else None,
        revision=model.identity.revision, dtype=model.identity.dtype, scenario=cfg.scenario,
        conditions=list(cfg.trials_conditions), n=cfg.trials_n, seed=cfg.seed,
        max_new_tokens=cfg.trials_max_new_tokens)
    outcome = run_trials_job(settings, run=None, api_key=None, load_local=lambda: model,
                             runs_root=Path(cfg.runs_root) if cfg.runs_root else None)
    log.info("trials run for %s: %d trials in %s", model.identity.name, len(outcome.records), outcome.run.path)
    return outcome.run.path


def store_for(model: LoadedModel, cfg: CompareConfig, probe_run: Path) -> Path:
    """The activation store directory the probe run used for this model."""
    config = _read_json(probe_run / "config.json") or {}
    root = cfg.store_root or config.get("store_root") or str(DEFAULT_STORE_ROOT)
    return store_dir_for(root, model.identity)


# ---------------------------------------------------------------------------------------------------------------
# The analyses
# ---------------------------------------------------------------------------------------------------------------


def probe_curves(model: LoadedModel, run: Path, cfg: CompareConfig) -> dict[str, Any]:
    """Per concept and estimator: layer, normalised depth and AUROC (95% interval) from the probe run's sweeps."""
    out: dict[str, Any] = {}
    for concept in cfg.concepts:
        sweep = json.loads((run / "results" / f"sweep_{concept}.json").read_text())
        curves = {}
        for est, rows in sweep["sweep"]["results"].items():
            layers = [r["layer"] for r in rows]
            curves[est] = {"layer": layers, "depth": [(layer + 1) / model.n_layers for layer in layers],
                           "auroc": [r["auroc"]["value"] for r in rows],
                           "low": [r["auroc"]["low"] for r in rows], "high": [r["auroc"]["high"] for r in rows]}
        lexical = (sweep["sweep"].get("lexical") or {}).get("auroc")
        out[concept] = {"curves": curves, "selected_layer": sweep.get("selected_layer"),
                        "lexical_auroc": lexical, "n": sweep.get("n")}
    return out


def cosines(models: dict[str, LoadedModel], runs: dict[str, Path]) -> list[dict[str, Any]]:
    from probes.directions import load_directions

    dirs = {role: load_directions(runs[role] / "directions", expected_model=models[role].identity.to_dict())
            for role in models}
    return [r.to_dict() for r in model_diff.direction_cosines(dirs["base"], dirs["instruct"])]


def transfers(models: dict[str, LoadedModel], runs: dict[str, Path], cfg: CompareConfig) -> dict[str, Any]:
    """Cross-model probe transfer per concept, from the activations the probe runs stored (no forward pass)."""
    from activations.extract import extract_and_load
    from activations.selection import Selection
    from probes.concepts import load_concepts

    datasets = load_concepts(cfg.concepts)
    texts = list(dict.fromkeys(t for ds in datasets.values() for t in ds.texts))
    selection = Selection(hooks=(cfg.hook,), layers="all", positions=(cfg.position,))
    views = {}
    for role, model in models.items():
        dtype = (_read_json(runs[role] / "config.json") or {}).get("storage_dtype", cfg.storage_dtype)
        views[role] = extract_and_load(model, texts, selection, store_for(model, cfg, runs[role]),
                                       batch_size=cfg.batch_size, storage_dtype=dtype, progress=False)
        log.info("transfer: %s activations, %d computed now", role, views[role].stats.n_texts_computed)
    out = {}
    for name, ds in datasets.items():
        rows = [texts.index(t) for t in ds.texts]

        def reader(role: str):
            return lambda layer: views[role].matrix(cfg.hook, layer, cfg.position).X[rows]

        result = model_diff.probe_transfer(reader("base"), reader("instruct"), ds.labels, ds.groups,
                                           range(models["base"].n_layers), estimator=cfg.transfer_estimator,
                                           n_splits=cfg.n_splits, seed=cfg.seed)
        out[name] = result.to_dict()
    return out


def verdict_prompt(document: str) -> str:
    """The base-model document cut where the verdict is stated: the memo's trailing ``Step 1:`` becomes
    ``Final verdict:``, so the next token is the verdict for both checkpoints (same text, same tokens)."""
    text = document.rstrip()
    if text.endswith("Step 1:"):
        text = text[: -len("Step 1:")].rstrip()
    return text + "\n\nFinal verdict:"


def shared_document(cfg: CompareConfig) -> str:
    from behaviour.scenario import load_scenario

    source = load_scenario(cfg.scenario).prompt(cfg.condition)
    return source.document if source.document is not None else default_document(source)


def kl_text(models: dict[str, LoadedModel], cfg: CompareConfig, trials: dict[str, list[Path]]) -> tuple[str, int,
                                                                                                      str]:
    """The scenario document and a response after it; returns the text, where the response starts, and its origin."""
    prompt = shared_document(cfg)
    if cfg.kl_response:
        response, origin = cfg.kl_response, "given with --kl-response"
    else:
        rows = [r for p in trials.get("instruct", []) for r in read_jsonl(p / "transcripts.jsonl")
                if r.get("condition") == cfg.condition and r.get("response")]
        if rows:
            response, origin = rows[0]["response"], f"trial {rows[0].get('id')} of the instruct model"
        else:
            from activations.generation import generate

            response = generate(models["instruct"], [prompt], max_new_tokens=cfg.kl_new_tokens)[0]
            origin = f"greedy continuation by the instruct model ({cfg.kl_new_tokens} new tokens max)"
    if not response.strip():
        response, origin = " Step 1:", "fallback (the response was empty)"
    return prompt + response, len(prompt), origin


def behaviour_table(models: dict[str, LoadedModel], trials: dict[str, list[Path]]) -> tuple[Any, dict[str, Any]]:
    """One convergence table over both checkpoints' trials; cells are keyed ``role: model name``."""
    from behaviour.table import convergence_table

    rows = []
    for role, paths in trials.items():
        for path in paths:
            for row in read_jsonl(path / "transcripts.jsonl"):
                rows.append({**row, "model": f"{role}: {models[role].identity.name}"})
    table = convergence_table(rows, by=("model", "condition"))
    return table, table.to_dict()


# ---------------------------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CompareResult:
    models: dict[str, dict[str, Any]]
    probe_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(models: dict[str, LoadedModel], cfg: CompareConfig) -> dict[str, str]:
    """The analyses that cannot run for this pair, with why; an error when one of them was asked for explicitly.

    Runs after loading and before any forward pass or probe work.
    """
    problem = model_diff.same_checkpoint_problem(models["base"], models["instruct"])
    if problem:
        raise ConfigError(problem)
    skipped = {}
    width = model_diff.same_width_problem(models["base"], models["instruct"])
    tokens = model_diff.same_tokenizer_problem(models["base"], models["instruct"])
    for analysis in ANALYSES:
        if not cfg.wants(analysis):
            skipped[analysis] = "not asked for (--analyses)"
        elif analysis in SAME_WIDTH and width:
            skipped[analysis] = width
        elif analysis in SAME_TOKENS and tokens:
            skipped[analysis] = tokens
    asked = [a for a in cfg.analyses if a in skipped]
    if asked:
        raise ConfigError(f"--analyses {','.join(asked)} cannot run: {skipped[asked[0]]}")
    return skipped


def run_compare(base: LoadedModel, instruct: LoadedModel, cfg: CompareConfig, run: RunDir,
                warnings: list[str] | None = None) -> CompareResult:
    """Steps 1-4 above; writes ``results/*.json``, figures and ``report.md`` into ``run``."""
    from experiments.jobs import compare_report

    validate_config(cfg)
    models = {"base": base, "instruct": instruct}
    skipped = plan(models, cfg)
    result = CompareResult({role: m.identity.to_dict() | {"kind": m.spec.kind} for role, m in models.items()},
                           skipped=skipped, warnings=list(warnings or []))
    if cfg.wants("patching") and "patching" not in skipped:  # tokens are user input: check before the long work
        try:
            tokens = resolve_verdict_tokens(base.tokenizer, cfg.against, cfg.proceed)
        except ConfigError as exc:
            if cfg.explicit:
                raise
            skipped["patching"] = str(exc)

    runs: dict[str, Path] = {}
    needs_probe_runs = any(cfg.wants(a) and a not in skipped for a in ("probes", "cosine", "transfer"))
    for role, model in models.items() if needs_probe_runs else ():
        given = cfg.probe_runs.get(role)
        if given:
            why = probe_run_matches(Path(given), model, cfg)
            if why:
                raise ConfigError(f"--{role}-probe-run {given}: {why}")
            runs[role], how = Path(given), "given"
        else:
            found = find_probe_run(model, cfg)
            runs[role], how = (found, "reused") if found else (probe_job(model, cfg), "computed now")
        result.probe_runs[role] = {"path": str(runs[role]), "how": how}
        log.info("%s probe run (%s): %s", role, how, runs[role])

    if "probes" not in skipped:
        result.results["probes"] = {role: probe_curves(models[role], runs[role], cfg) for role in models}
        result.results["probes"]["depth_normalised"] = base.n_layers != instruct.n_layers
    if "cosine" not in skipped:
        result.results["cosine"] = cosines(models, runs)
    if "transfer" not in skipped:
        log.info("probe transfer: %d layers x %d folds x 2 directions (%s)", base.n_layers, cfg.n_splits,
                 cfg.transfer_estimator)
        result.results["transfer"] = transfers(models, runs, cfg)
    if "patching" not in skipped:
        text = verdict_prompt(shared_document(cfg))
        log.info("cross-model patching: %d layers x 2 directions, one forward pass each", base.n_layers)
        result.results["patching"] = {
            f"{donor}_into_{receiver}": model_diff.cross_patch(models[donor], models[receiver], text, tokens,
                                                               hook=cfg.patch_hook).to_dict()
            for donor, receiver in (("instruct", "base"), ("base", "instruct"))}
        result.results["patching"]["prompt_tail"] = text[-200:]
    trials = {role: [Path(p) for p in cfg.trials_runs[role]] if cfg.trials_runs.get(role)
              else find_trials_runs(model, cfg) for role, model in models.items()}
    computed = [role for role, paths in trials.items() if not paths and cfg.trials_n and "behaviour" not in skipped]
    for role in computed:
        trials[role] = [trials_job(models[role], cfg)]
    if "kl" not in skipped:
        log.info("per-token KL over the %s document and a response", cfg.condition)
        text, start, origin = kl_text(models, cfg, trials)
        kl = model_diff.token_kl(base, instruct, text, response_start=start)
        result.results["kl"] = {**kl.to_dict(), "response_origin": origin}
    if "behaviour" not in skipped:
        missing = [role for role, paths in trials.items() if not paths]
        if missing:
            skipped["behaviour"] = "no trials run found for " + ", ".join(
                f"{role} ({models[role].identity.name}, identity {models[role].identity.key})" for role in missing
            ) + " under the runs root; pass --trials-n N to run them now, or run `python -m experiments.trials --model NAME --conditions baseline,threat " \
                "--n 20` for each (base models get the document framing) or pass --base-trials/--instruct-trials"
        else:
            table, table_dict = behaviour_table(models, trials)
            result.results["behaviour"] = {"table": table_dict, "markdown": table.to_markdown(),
                                           "runs": {r: [str(p) for p in ps] for r, ps in trials.items()},
                                           "computed_now": computed}

    for name, value in result.results.items():
        run.write_json(f"{name}.json", value)
    run.write_json("summary.json", {"models": result.models, "probe_runs": result.probe_runs,
                                    "skipped": result.skipped, "warnings": result.warnings})
    drawers = compare_report.figure_drawers(result)
    if "behaviour" in result.results:
        drawers["behaviour"] = lambda: compare_report.behaviour_figure(table)
    for name, draw in drawers.items():
        try:  # a figure that fails to draw must not lose the results written above
            run.save_figure(draw(), name)
        except (ValueError, RuntimeError) as exc:
            result.warnings.append(f"figures/{name}.png was not drawn: {type(exc).__name__}: {exc}")
            log.warning("figure %s not drawn: %s", name, exc)
    run.write_report(compare_report.markdown(result, cfg))
    return result

