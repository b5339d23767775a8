"""The study: the seed's whole experiment, from behaviour to mechanism, as one resumable hub over the existing jobs.

    run_study(model, load_study_config(...), runs_root=..., load_base=...)

Steps (each calls a job's public function and passes typed results on; none re-implements a job):

1. **trials** (:func:`experiments.jobs.trials.run_trials_job`): baseline and threat, judged; then the blind review
   sample (:func:`behaviour.review_sample.draw_sample`) and the rates in three columns (:func:`run_rates`: judge-only,
   reviewed-only, PPI once the sample is filled; a rerun picks the labels up);
2. **probe** (:func:`experiments.jobs.probe.run_probe_job` with its trial projection), plus the effect size of the
   projection (converged minus other trials, bootstrap interval, permutation test) on reviewed labels where reviewed;
3. **steering** (:func:`experiments.jobs.steer.run_steer_experiment`) with the probe's directions and the held-out
   split;
4. **patching** (:func:`experiments.jobs.patch.run_patch`) on a pair chosen by the rule in :mod:`study_pairs`;
5. **compare** (:func:`experiments.jobs.compare.run_compare`) with the base checkpoint, or a stated skip;
6. **report** (:mod:`experiments.jobs.study_report`): ``report.md`` and a self-contained ``report.html``.

**Layout and resumption.** ``runs/<time>-study-<model>/`` holds ``config.json`` (with the settings hash: every
section, the scenario and the model's identity key), ``results/steps.json`` (each step's status, sub-run, timing,
summary or skip reason), ``results/plan.json`` and the reports; the sub-runs live under its ``runs/``. Rerunning the
same command finds the study run by settings hash (the compare job's rule: settings and model identity), reuses every
finished step, resumes the interrupted one in its own sub-run (trials and steering continue where they stopped;
probe activations come from the store) and never makes a second sub-run for a step. Every run directory the study
makes ends ``completed`` or ``failed`` with its error; a run left ``running`` by a killed process is marked ``failed``
on the rerun (:meth:`common.rundir.RunDir.reap_if_stale`), and the study's status lists them all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activations.models import LoadedModel
from activations.registry import load_registry
from behaviour.review_sample import NO_VERDICT, SAMPLE_NAME, SampleError, draw_sample, read_sample, write_sample
from behaviour.table import effective_label
from common.errors import ConfigError, ToolkitError
from common.jsonl import read_jsonl
from common.rundir import COMPLETED, FAILED, RUNNING, RUNS_ROOT, RunDir
from common.stats import group_difference
from experiments.jobs.study_config import StudyConfig

__all__ = ["STEPS", "StepSkipped", "StudyResult", "find_study_run", "run_study", "study_status"]

log = logging.getLogger(__name__)

STEPS = ("trials", "probe", "steering", "patching", "compare")
SUB_RUNS = "runs"
STATE = "steps.json"
SKIPPED = "skipped"


class StepSkipped(ToolkitError):
    """A step that cannot run for a stated reason (no base model, no trials to pair): the report says why."""


@dataclass
class StudyResult:
    """What a study produced: its run, each step's record, and the summary answers."""

    run: RunDir
    steps: dict[str, dict[str, Any]]
    answers: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# State: which step is done, in which sub-run.


def find_study_run(root: Path, settings_hash: str | None = None, *, cfg: StudyConfig | None = None) -> RunDir | None:
    """The newest study run under ``root`` with these settings (and model identity, inside the hash). With ``cfg``
    instead of a hash, the newest run of this config's settings for a model of its name, whatever its weights'
    key: what ``--status`` shows without loading the model."""
    found = []
    for path in root.glob("*-study-*"):
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if cfg is not None:
            matches = (config.get("model") == cfg.model
                       and config.get("settings_hash") == cfg.settings_hash(config.get("model_key")))
        else:
            matches = config.get("settings_hash") == settings_hash
        if matches:
            found.append(path)
    return RunDir.open(sorted(found)[-1]) if found else None


def _load_state(run: RunDir) -> dict[str, dict[str, Any]]:
    path = run.path / "results" / STATE
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(run: RunDir, state: dict[str, dict[str, Any]]) -> None:
    run.write_json(STATE, state)


def _sub_run(study: RunDir, state: dict[str, Any], step: str, experiment: str) -> RunDir | None:
    """The step's sub-run: the recorded one, else one a killed attempt made before recording it (found by name
    under the study's own ``runs/``, so an interrupted step is resumed, never duplicated)."""
    recorded = state.get(step, {}).get("run")
    if recorded and (study.path / recorded).exists():
        return RunDir.open(study.path / recorded)
    made = sorted((study.path / SUB_RUNS).glob(f"*-{experiment}-*"))
    return RunDir.open(made[-1]) if made else None


def study_status(study: RunDir) -> list[dict[str, Any]]:
    """The study run and every run directory it made, with status and error (after reaping stale ones)."""
    out = []
    for path in [study.path, *sorted((study.path / SUB_RUNS).glob("*"))]:
        if not (path / "manifest.json").exists():
            continue
        run = RunDir.open(path)
        run.reap_if_stale()
        manifest = run.manifest
        out.append({"run": str(path.relative_to(study.path.parent)), "status": manifest.get("status"),
                    "error": manifest.get("error")})
    return out


# ---------------------------------------------------------------------------------------------------------------
# The hub.


def run_study(model: LoadedModel, cfg: StudyConfig, *, runs_root: str | Path | None = None,
              store_root: str | Path | None = None, load_base: Callable[[str], LoadedModel] | None = None,
              plan: dict[str, Any] | None = None, progress: bool = True) -> StudyResult:
    """Run (or resume) the study of ``model``; returns its run and step records. ``load_base(name)`` loads the base
    checkpoint for step 5 (None: the step is skipped with that reason)."""
    from experiments.jobs.study_report import write_study_report

    root = Path(runs_root) if runs_root is not None else RUNS_ROOT
    settings_hash = cfg.settings_hash(model.identity.key)
    study = find_study_run(root, settings_hash)
    if study is None:
        study = RunDir.create("study", model.identity.name,
                              {"settings_hash": settings_hash, "model_key": model.identity.key, **cfg.to_dict()},
                              root=root, model_identity=model.identity.to_dict())
        log.info("study run: %s", study.path)
    else:
        reaped = [s["run"] for s in study_status(study) if s["status"] == FAILED and "stopped without" in
                  (s["error"] or "")]
        log.info("resuming study run %s%s", study.path, f" (marked failed, left running by a killed process: "
                                                         f"{', '.join(reaped)})" if reaped else "")
    study.start()
    if plan is not None:
        study.write_json("plan.json", plan)
    ctx = _Context(model, cfg, study, Path(store_root) if store_root else None, load_base, progress)
    with study:
        state = _load_state(study)
        for step in STEPS:
            record = state.get(step, {})
            sub = _sub_run(study, state, step, _EXPERIMENT[step])
            if record.get("status") in (COMPLETED, SKIPPED) and (sub is None or sub.status == COMPLETED):
                log.info("step %s: %s earlier, reused", step, record["status"])
                if record.get("status") == COMPLETED and step in _REFRESH:  # reviewed labels added since
                    record["summary"] = _REFRESH[step](ctx, study.path / record["run"], record["summary"])
                    _save_state(study, state)
                ctx.results[step] = record
                continue
            state[step] = {"status": RUNNING, "run": _rel(study, sub), "started": time.time()}
            _save_state(study, state)
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                summary, sub = _RUNNERS[step](ctx, sub, lambda r: _record_run(study, state, step, r))
                state[step] = {"status": COMPLETED, "run": _rel(study, sub), "summary": summary}
            except StepSkipped as exc:
                log.info("step %s skipped: %s", step, exc)
                state[step] = {"status": SKIPPED, "run": state[step].get("run"), "reason": str(exc)}
            except BaseException as exc:
                state[step] = {**state[step], "status": FAILED, "error": f"{type(exc).__name__}: {exc}"}
                _save_state(study, state)
                if isinstance(exc, Exception):  # not an interrupt: the report still says what ran and what failed
                    _write_partial_report(study, cfg, model, state, plan)
                raise
            state[step]["seconds"] = round(time.perf_counter() - start, 1)
            # CPU seconds of this process (all its threads): on a shared machine, what the step costs on idle cores
            state[step]["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
            state[step]["measured"] = _measured(study, state[step].get("run"))
            _save_state(study, state)
            ctx.results[step] = state[step]
        answers = write_study_report(study, cfg, model, state, plan, study_status(study))
    return StudyResult(study, state, answers)


def _write_partial_report(study: RunDir, cfg: StudyConfig, model: LoadedModel, state: dict[str, Any],
                          plan: dict[str, Any] | None) -> None:
    """The report of a study stopped by a failing step: finished steps, the failure and its error, the rest not run.
    A failure here is logged, never raised over the step's own error."""
    from experiments.jobs.study_report import write_study_report

    try:
        write_study_report(study, cfg, model, state, plan, study_status(study))
        log.error("the study stopped at a failing step; what ran is in %s", study.path / "report.md")
    except Exception:  # noqa: BLE001 - the step's error is the one to show
        log.exception("could not write the partial report")


def _rel(study: RunDir, sub: RunDir | Path | None) -> str | None:
    if sub is None:
        return None
    path = sub.path if isinstance(sub, RunDir) else Path(sub)
    return str(path.relative_to(study.path))


def _measured(study: RunDir, run: str | None) -> dict[str, float]:
    """What a finished step measurably cost: its sub-run's size on disk and the process's peak RSS so far (the
    activation store, shared across runs, is not counted in the sub-run)."""
    import resource

    size = sum(p.stat().st_size for p in (study.path / run).rglob("*") if p.is_file()) if run else 0
    return {"disk_mib": round(size / 1024**2, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)}


def _record_run(study: RunDir, state: dict[str, Any], step: str, run: RunDir) -> None:
    """Record a step's sub-run as soon as it exists (before any work in it)."""
    state[step]["run"] = _rel(study, run)
    _save_state(study, state)


@dataclass
class _Context:
    model: LoadedModel
    cfg: StudyConfig
    study: RunDir
    store_root: Path | None
    load_base: Callable[[str], LoadedModel] | None
    progress: bool
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def sub_root(self) -> Path:
        return self.study.path / SUB_RUNS

    def summary(self, step: str) -> dict[str, Any] | None:
        record = self.results.get(step) or {}
        return record.get("summary") if record.get("status") == COMPLETED else None

    def run_path(self, step: str) -> Path | None:
        record = self.results.get(step) or {}
        return self.study.path / record["run"] if record.get("status") == COMPLETED and record.get("run") else None


def _new_or_resumed(ctx: _Context, sub: RunDir | None, experiment: str, config: dict[str, Any],
                    record: Callable[[RunDir], None]) -> RunDir:
    if sub is None:
        sub = RunDir.create(experiment, ctx.model.identity.name, config, root=ctx.sub_root,
                            model_identity=ctx.model.identity.to_dict())
    record(sub)
    return sub.start()


# ---------------------------------------------------------------------------------------------------------------
# Step 1: trials, the blind review sample and the rates.


def _trials_step(ctx: _Context, sub: RunDir | None, record: Callable[[RunDir], None]) -> tuple[dict, RunDir]:
    from experiments.jobs.trials import default_trials_settings, run_rates, run_trials_job

    identity = ctx.model.identity
    settings = default_trials_settings(ctx.model.spec.name, **{**ctx.cfg.section("trials"),
                                                               "scenario": ctx.cfg.scenario,
                                                               "dtype": identity.dtype})
    if sub is not None:
        record(sub)
        settings = {**settings, "max_new_tokens": sub.config.get("max_new_tokens", settings["max_new_tokens"])}
    outcome = run_trials_job(settings, run=sub, api_key=None, load_local=lambda: ctx.model, runs_root=ctx.sub_root)
    run = outcome.run
    record(run)
    rows = [r.to_dict() for r in outcome.records]
    sample_note = review_sample(run, rows, ctx.cfg.section("review"))
    rates = run_rates(run, rows)
    return {"n_trials": len(rows), "sample": sample_note, "rates": rates.to_dict(),
            "table": json.loads((run.path / "results" / "table.json").read_text())}, run


def review_sample(run: RunDir, rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """Draw the blind review sample once (seeded); a later call reports how much of it a reviewer has labelled."""
    path = run.path / SAMPLE_NAME
    if settings["n"] == 0:
        return {"path": None, "note": "no review sample asked for (review.n = 0)"}
    if not path.exists():
        n = min(settings["n"], len(rows))
        write_sample(rows, draw_sample(rows, n, settings["seed"]), path)
        log.info("review sample: %d trials in %s (fill reviewed_label; rerun the study to use them)", n, path)
    try:
        filled = read_sample(path, rows)
        labelled = filled.n_labelled
    except SampleError as exc:
        return {"path": SAMPLE_NAME, "labelled": 0, "note": f"not used: {exc}"}
    return {"path": SAMPLE_NAME, "labelled": labelled, "drawn": settings["n"],
            "note": f"{labelled} of the sample's trials labelled by a reviewer"}


def _refresh_trials(ctx: _Context, run_path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """A finished trials step on a rerun: pick up the reviewer's labels in its sample (cheap: no model work)."""
    from experiments.jobs.trials import run_rates

    run = RunDir.open(run_path)
    rows = read_jsonl(run_path / "transcripts.jsonl")
    return {**summary, "sample": review_sample(run, rows, ctx.cfg.section("review")),
            "rates": run_rates(run, rows).to_dict()}


def _refresh_probe(ctx: _Context, run_path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """A finished probe step on a rerun: the effect sizes again with the reviewer's labels (no model work)."""
    projection = run_path / "results" / "trial_projection.json"
    trials = ctx.run_path("trials")
    if not projection.exists() or trials is None:
        return summary
    effects = projection_effects(json.loads(projection.read_text()), reviewed_labels(trials),
                                 ctx.cfg.section("effect"))
    RunDir.open(run_path).write_json("trial_effects.json", effects)
    return {**summary, "effects": effects}


def reviewed_labels(run_path: Path) -> dict[str, str]:
    """Trial id -> the reviewer's label for the sample's labelled trials (empty without a usable sample)."""
    rows = read_jsonl(run_path / "transcripts.jsonl")
    try:
        filled = read_sample(run_path / SAMPLE_NAME, rows)
    except (SampleError, OSError, ConfigError):
        return {}
    return {str(k): v for k, v in getattr(filled, "labels", {}).items() if v}


# ---------------------------------------------------------------------------------------------------------------
# Step 2: probes, the trial projection and its effect size.


def _probe_step(ctx: _Context, sub: RunDir | None, record: Callable[[RunDir], None]) -> tuple[dict, RunDir]:
    from experiments.jobs.probe import run_probe_job
    from experiments.jobs.probe_config import DEFAULT_STORE_ROOT, ProbeConfig, default_n_jobs

    trials = ctx.run_path("trials")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in ctx.cfg.section("probe").items()}
    values.setdefault("n_jobs", default_n_jobs())
    cfg = ProbeConfig(**values, trials=str(trials) if trials else None, scenario=ctx.cfg.scenario,
                      store_root=str(ctx.store_root or DEFAULT_STORE_ROOT))
    cfg.validate()
    run = _new_or_resumed(ctx, sub, "probe", {**cfg.to_dict(), "model_key": ctx.model.identity.key}, record)
    with run:
        summary = run_probe_job(ctx.model, cfg, run, progress=ctx.progress)
        effects = projection_effects(summary.get("trial_projection"), reviewed_labels(trials) if trials else {},
                                     ctx.cfg.section("effect"))
        run.write_json("trial_effects.json", effects)
    selected = json.loads((run.path / "results" / "directions_index.json").read_text())["selected"]
    return {"selected": selected, "effects": effects,
            "scenario_projection": summary.get("scenario_projection", {}).get("scores", {})}, run


def projection_effects(projection: dict[str, Any] | None, reviewed: dict[str, str],
                       settings: dict[str, Any]) -> dict[str, Any]:
    """Per concept: converged minus other (ambiguous, did not converge) trials' normalised projection, with a
    bootstrap interval, Cohen's d and a permutation test; a reviewer's label replaces the judge's where given."""
    if not projection or not projection.get("n"):
        return {"note": (projection or {}).get("note", "no trials projected")}
    out: dict[str, Any] = {"labels": "reviewer's label where reviewed, else the judge's" if reviewed
                           else "the judge's (no reviewed sample yet)", "n_reviewed_used": 0, "concepts": {}}
    for concept, info in projection["concepts"].items():
        conv, other, used = [], [], 0
        for t in info.get("trials", []):
            label = reviewed.get(str(t["id"])) or t["label"]
            used += str(t["id"]) in reviewed
            if label == "converged":
                conv.append(t["normalised"])
            elif label in ("ambiguous", "did_not_converge", NO_VERDICT):  # a reviewer's "no verdict": engaged, not converged
                other.append(t["normalised"])
        out["n_reviewed_used"] = used
        if not conv or not other:
            out["concepts"][concept] = {"n_converged": len(conv), "n_other": len(other), "effect": None,
                                        "note": "not computable: one of the two groups has no trials"}
            continue
        diff = group_difference(conv, other, n_bootstrap=settings["n_bootstrap"],
                                n_permutations=settings["n_permutations"], seed=settings["seed"])
        out["concepts"][concept] = {"n_converged": len(conv), "n_other": len(other), "layer": info["layer"],
                                    "estimator": info["estimator"], "effect": diff.to_dict()}
    return out


# ---------------------------------------------------------------------------------------------------------------
# Step 3: steering with the held-out split.


def _steering_step(ctx: _Context, sub: RunDir | None, record: Callable[[RunDir], None]) -> tuple[dict, RunDir]:
    from dataclasses import replace

    from experiments.jobs.steer import check_against_model, run_steer_experiment

    cfg = ctx.cfg.steer_config()
    probe = ctx.run_path("probe")
    if probe is not None and cfg.directions is None:
        cfg = replace(cfg, directions=str(probe))  # the probe step's own directions
    cfg.validate()
    check_against_model(ctx.model, cfg)
    run = _new_or_resumed(ctx, sub, "steer", {"model_args": {"study": str(ctx.study.path)}, **cfg.to_dict()},
                          record)
    with run:
        result = run_steer_experiment(ctx.model, cfg, run)
    analysis = json.loads((run.path / "results" / "analysis.json").read_text())
    return {"selections": result["selections"], "reported": analysis.get("reported", {}),
            "split": analysis.get("split")}, run


# ---------------------------------------------------------------------------------------------------------------
# Step 4: patching a pair chosen by the rule.


def _patching_step(ctx: _Context, sub: RunDir | None, record: Callable[[RunDir], None]) -> tuple[dict, RunDir]:
    from dataclasses import replace

    from experiments.jobs.patch import build_pair, run_patch
    from experiments.jobs.study_pairs import choose_pairs

    trials = ctx.run_path("trials")
    rows = read_jsonl(trials / "transcripts.jsonl") if trials else []
    patch_cfg = ctx.cfg.patch_config()
    choice = choose_pairs(ctx.model, rows, ctx.cfg.scenario, ctx.cfg.section("patching"))
    if choice.main is None:
        raise StepSkipped("; ".join(choice.skipped) or "no patchable pair")
    run = _new_or_resumed(ctx, sub, "patch", {"pair_rule": choice.describe(), **patch_cfg.to_dict()}, record)
    with run:
        pair = build_pair(ctx.model, choice.main)
        summary = run_patch(ctx.model, pair, patch_cfg, run)
        run.write_json("pair_rule.json", choice.describe())
        converged = None
        if choice.converged is not None:  # its own run directory inside the patch run
            done = [p for p in sorted((run.path / "converged_pair").glob("*-patch-*"))
                    if RunDir.open(p).status == COMPLETED]
            conv_run = RunDir.open(done[-1]) if done else RunDir.create(
                "patch", ctx.model.identity.name, {"pair": choice.converged_why, **patch_cfg.to_dict()},
                root=run.path / "converged_pair", model_identity=ctx.model.identity.to_dict())
            if not done:
                with conv_run:
                    src = replace(choice.converged, trials=str(trials))
                    run_patch(ctx.model, build_pair(ctx.model, src), patch_cfg, conv_run)
            converged = _rel(ctx.study, conv_run)
    effects = json.loads((run.path / "results" / "effects.json").read_text())
    exact = [g for g in effects["grids"] if g["method"] == "exact"]
    grid = exact[0] if exact else None
    flat = sorted(v for row in grid["normalised"] for v in row) if grid else []
    return {"pair": choice.describe(), "top": grid["top"][:3] if grid else [],
            "gap": (grid["clean_metric"] - grid["corrupted_metric"]) if grid else None,
            "median_cell": flat[len(flat) // 2] if flat else None, "timings": summary["timings"],
            "converged_run": converged}, run


# ---------------------------------------------------------------------------------------------------------------
# Step 5: the base comparison.


def base_for(model: LoadedModel, cfg: StudyConfig) -> tuple[str | None, str]:
    """The base checkpoint to compare with and why (or None and why not)."""
    if cfg.base:
        return cfg.base, "given (--base or the study config)"
    spec = load_registry().get(model.spec.name)
    if spec is not None and spec.base:
        return spec.base, f"the registry's base of {spec.name}"
    note = (spec.base_note if spec is not None and spec.base_note else
            f"{model.spec.name} has no base checkpoint in the registry")
    return None, note


def _compare_step(ctx: _Context, sub: RunDir | None, record: Callable[[RunDir], None]) -> tuple[dict, RunDir]:
    from experiments.jobs.compare import CompareConfig, run_compare, validate_config

    base_name, why = base_for(ctx.model, ctx.cfg)
    section = ctx.cfg.section("compare")
    cross = section.pop("cross_family", None)
    label = "base"
    if base_name is None:
        if not cross:
            raise StepSkipped(f"no base checkpoint: {why}; set compare.cross_family to run the analyses valid "
                              "across families against another model")
        base_name, label = cross, "cross-family"
        section["analyses"] = ["probes"]  # only per-layer probe curves at normalised depth are valid across families
        why = (f"{why}; cross-family comparison against {cross}: only the probe curves at normalised depth (no "
               "cosines, transfer, patching or KL, which need one family's width and tokenizer)")
    if ctx.load_base is None:
        raise StepSkipped(f"the {label} model {base_name} cannot be loaded here (no loader given)")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
    probe, trials = ctx.run_path("probe"), ctx.run_path("trials")
    cfg = CompareConfig(**values, scenario=ctx.cfg.scenario, runs_root=str(ctx.sub_root),
                        store_root=str(ctx.store_root) if ctx.store_root else None,
                        probe_runs={"instruct": str(probe)} if probe else {},
                        trials_runs={"instruct": [str(trials)]} if trials else {})
    validate_config(cfg)
    base = ctx.load_base(base_name)
    run = _new_or_resumed(ctx, sub, "compare", {"base": base_name, "relation": label, **cfg.to_dict()}, record)
    with run:
        result = run_compare(base, ctx.model, cfg, run)
    data = result.to_dict()
    return {"base": base_name, "relation": label, "why": why, "skipped": data.get("skipped", {}),
            "behaviour": (data.get("results") or {}).get("behaviour", {}).get("table")}, run


_RUNNERS = {"trials": _trials_step, "probe": _probe_step, "steering": _steering_step, "patching": _patching_step,
            "compare": _compare_step}
_REFRESH = {"trials": _refresh_trials, "probe": _refresh_probe}
_EXPERIMENT = {"trials": "trials", "probe": "probe", "steering": "steer", "patching": "patch", "compare": "compare"}
