"""The probe job as a pipeline of small steps, each producing an artefact in the run directory.

1. concept datasets (:mod:`probes.concepts`);
2. activations at every layer, cached on disk (:mod:`activations.extract`; a rerun does no forward pass);
3. a grouped-CV layer sweep per concept with each estimator (:mod:`probes.sweep`);
4. controls on the same folds: the shuffled-label control task and the bag-of-words baseline;
5. layer selection by the documented rule (:func:`probes.sweep.select_layer`) and probe directions at every layer,
   saved for steering and patching (:mod:`probes.directions`);
6. projection of the scenario prompts and, where given, trial transcripts (:mod:`experiments.jobs.projection`);
7. evaluation on an outside labelled file (:mod:`experiments.jobs.evaluate`);
8. figures (:mod:`probes.figures`) and ``report.md`` (:mod:`experiments.jobs.probe_report`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from activations.dataset import ActivationView
from activations.extract import extract_and_load
from activations.models import LoadedModel
from activations.store import store_dir_for
from activations.selection import Selection
from common.rundir import RunDir
from experiments.jobs import evaluate, probe_report, projection
from experiments.jobs.probe_config import ProbeConfig
from probes.concept_probe import ConceptResult, fit_direction, primary_layer, source_breakdown
from probes.concepts import ConceptDataset, load_concepts
from probes.directions import Direction, save_directions
from probes.figures import concept_figure, overview_figure
from probes.sweep import SweepResult, compare_to_baselines, layer_sweep, select_layer

__all__ = ["concept_directions", "concept_views", "model_store_dir", "run_concept", "run_probe_job"]

log = logging.getLogger(__name__)


def model_store_dir(cfg: ProbeConfig, model: LoadedModel) -> Path:
    """The model's own activation store under ``cfg.store_root`` (other weights' activations sit beside it)."""
    return store_dir_for(cfg.store_root, model.identity)


def concept_views(model: LoadedModel, datasets: dict[str, ConceptDataset], cfg: ProbeConfig, store_dir: Path,
                  progress: bool = True) -> dict[str, ActivationView]:
    """Extract (or reuse) ``cfg.hook`` at every layer for all concept texts in one pass, then a view per concept."""
    texts = list(dict.fromkeys(t for ds in datasets.values() for t in ds.texts))
    selection = Selection(hooks=(cfg.hook,), layers="all", positions=(cfg.position,))
    view = extract_and_load(model, texts, selection, store_dir, batch_size=cfg.batch_size,
                            storage_dtype=cfg.storage_dtype, progress=progress)
    log.info("activations: %d texts, %d computed now, %d forward batches (store %s)", view.stats.n_texts,
             view.stats.n_texts_computed, view.stats.n_forward, view.store.root)
    return {name: ActivationView(view.store, ds.texts, labels=ds.labels, storage_dtype=cfg.storage_dtype)
            for name, ds in datasets.items()}


def concept_directions(model: LoadedModel, ds: ConceptDataset, view: ActivationView, cfg: ProbeConfig,
                       sweep: SweepResult, selected: dict[str, int | None]) -> list[Direction]:
    """A direction per estimator at every layer, fitted on the whole dataset, with the layer's CV metrics."""
    directions = []
    for layer in sweep.layers:
        X = view.matrix(cfg.hook, layer, cfg.position).X
        mu1, mu0 = X[ds.labels == 1].mean(axis=0), X[ds.labels == 0].mean(axis=0)
        for est in cfg.estimators:
            vector, bias, _ = fit_direction(est, X, ds.labels, ds.groups)
            proj = X @ vector
            row = sweep.get(est, layer)
            directions.append(Direction(
                vector=vector, concept=ds.concept, layer=layer, hook=cfg.hook, estimator=est,
                model_identity=model.identity.to_dict(), data_hash=ds.data_hash, bias=bias,
                metrics={"cv_auroc": row.auroc.to_dict(), "cv_accuracy": row.accuracy.to_dict(),
                         "selectivity": row.selectivity.to_dict(), "n": len(ds), "n_splits": sweep.n_splits},
                scale={"diff_of_means_norm": float(np.linalg.norm(mu1 - mu0)),
                       "mean_activation_norm": float(np.linalg.norm(X, axis=1).mean()),
                       "projection_std": float(proj.std()),
                       "class_means": [float(proj[ds.labels == 0].mean()), float(proj[ds.labels == 1].mean())]},
                extra={"position": cfg.position, "selected": selected.get(est) == layer},
            ))
    return directions


def run_concept(model: LoadedModel, ds: ConceptDataset, view: ActivationView, cfg: ProbeConfig) -> ConceptResult:
    """Sweep every layer with each estimator and its controls, select a layer, fit the directions."""
    layers = list(range(model.n_layers))
    sweep = layer_sweep(view.layer_reader(cfg.hook, cfg.position), ds.labels, np.asarray(ds.groups), ds.texts,
                        layers=layers, estimators=cfg.estimators, n_splits=cfg.n_splits, seed=cfg.seed,
                        n_jobs=cfg.n_jobs, scaling=cfg.scaling, n_model_layers=model.n_layers)
    selected: dict[str, int | None] = {}
    notes: dict[str, str] = {}
    for est in cfg.estimators:
        try:
            selected[est] = select_layer(sweep, est)
        except ValueError as exc:  # nothing qualifies: say so, do not pick by eye
            selected[est], notes[est] = None, str(exc)
    verdicts = {est: compare_to_baselines(sweep, est) for est in cfg.estimators}
    result = ConceptResult(ds.concept, len(ds), len(set(ds.groups)), ds.data_hash, sweep, verdicts, selected, notes)
    result.directions = concept_directions(model, ds, view, cfg, sweep, selected)
    result.by_source = source_breakdown(ds, sweep, selected)
    return result


def run_probe_job(model: LoadedModel, cfg: ProbeConfig, run: RunDir, progress: bool = True) -> dict[str, Any]:
    """Steps 1-8; writes results, directions, figures and the report into ``run`` and returns the summary."""
    store_dir = model_store_dir(cfg, model)
    datasets = load_concepts(cfg.concepts)
    views = concept_views(model, datasets, cfg, store_dir, progress=progress)
    results: dict[str, ConceptResult] = {}
    for name, ds in datasets.items():
        log.info("sweep %s: %d examples, %d groups, %d layers x %s x %d folds", name, len(ds), len(set(ds.groups)),
                 model.n_layers, "+".join(cfg.estimators), cfg.n_splits)
        results[name] = run_concept(model, ds, views[name], cfg)
        run.write_json(f"sweep_{name}.json", results[name].to_dict())
        log.info("sweep %s done: selected layer %s", name, results[name].selected)
    directions_dir = run.subdir("directions")
    save_directions([d for r in results.values() for d in r.directions], directions_dir)
    chosen = {name: primary_layer(r) for name, r in results.items()}
    run.write_json("directions_index.json", {
        "hook": cfg.hook, "position": cfg.position, "model": model.identity.to_dict(),
        "selected": {name: None if c is None else {"estimator": c[0], "layer": c[1]} for name, c in chosen.items()},
        "directory": str(directions_dir)})

    summary: dict[str, Any] = {"concepts": {n: r.to_dict() for n, r in results.items()}}
    scenario = projection.project_scenario(model, results, chosen, cfg, store_dir)
    summary["scenario_projection"] = scenario
    run.write_json("scenario_projection.json", scenario)
    if cfg.trials:
        trials = projection.project_trials(model, results, chosen, cfg, store_dir, Path(cfg.trials))
        summary["trial_projection"] = trials
        run.write_json("trial_projection.json", trials)
    if cfg.eval_file:
        summary["eval"] = evaluate.evaluate_file(model, {n: r.directions for n, r in results.items()}, datasets,
                                                 cfg, store_dir, Path(cfg.eval_file))
        run.write_json("eval.json", summary["eval"])
    for name, r in results.items():
        run.save_figure(concept_figure(r), f"sweep_{name}")
    run.save_figure(overview_figure(results), "overview")
    run.write_report(probe_report.markdown(model, cfg, results, summary))
    return summary
