"""The probe experiment as a pipeline of small steps, each producing an artefact in the run directory.

1. concept datasets (``probes.concepts``);
2. activations at every layer, cached on disk (``activations.extract``; a rerun does no forward pass);
3. a grouped-CV layer sweep per concept with both estimators (``probes.sweep``);
4. controls on the same folds: the shuffled-label control task and the bag-of-words baseline;
5. layer selection by the documented rule (``probes.sweep.select_layer``) and probe directions at every layer,
   saved for steering and patching (``probes.directions``);
6. projection of the scenario prompts and, where given, trial transcripts (``probes.projection``);
7. evaluation on an outside labelled file (``probes.evaluate``);
8. figures and ``report.md`` (``probes.report``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from activations.dataset import ActivationView
from activations.extract import extract_and_load
from activations.models import CACHE_DIR, LoadedModel
from activations.selection import Selection
from activations.store import store_dir_for
from probes.concepts import CONCEPTS, ConceptDataset, load_concepts
from probes.directions import Direction, save_directions
from probes.estimators import LogisticProbe, MeanDiffProbe
from probes.metrics import auroc
from probes.sweep import SweepResult, compare_to_baselines, layer_sweep, select_layer

log = logging.getLogger(__name__)

ESTIMATORS = {"logistic": LogisticProbe, "mean_diff": MeanDiffProbe, "mean_diff_iid": lambda: MeanDiffProbe(iid=True)}
DEFAULT_STORE = CACHE_DIR / "activations"


@dataclass(frozen=True)
class ProbeConfig:
    """Everything the probe experiment depends on (written to ``config.json``)."""

    concepts: tuple[str, ...] = CONCEPTS
    hook: str = "resid_post"
    position: str = "last"
    estimators: tuple[str, ...] = ("logistic", "mean_diff")
    n_splits: int = 5
    seed: int = 0
    batch_size: int = 16
    storage_dtype: str = "float32"
    store_dir: str = str(DEFAULT_STORE)
    n_jobs: int = -1
    eval_file: str | None = None
    trials: str | None = None
    scenario: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConceptResult:
    """One concept's sweep, its baseline verdicts, the selected layer per estimator and its saved directions."""

    concept: str
    n: int
    n_groups: int
    data_hash: str
    sweep: SweepResult
    verdicts: dict[str, list[Any]]
    selected: dict[str, int | None]
    selection_notes: dict[str, str] = field(default_factory=dict)
    directions: list[Direction] = field(default_factory=list)
    by_source: dict[str, Any] = field(default_factory=dict)

    def direction(self, estimator: str, layer: int) -> Direction:
        return next(d for d in self.directions if d.estimator == estimator and d.layer == layer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept": self.concept,
            "n": self.n,
            "n_groups": self.n_groups,
            "data_hash": self.data_hash,
            "selected_layer": self.selected,
            "selection_notes": self.selection_notes,
            "by_source": self.by_source,
            "sweep": self.sweep.to_dict(),
            "verdicts": {est: [v.to_dict() for v in rows] for est, rows in self.verdicts.items()},
        }


def concept_views(model: LoadedModel, datasets: dict[str, ConceptDataset], cfg: ProbeConfig,
                  progress: bool = True) -> dict[str, ActivationView]:
    """Extract (or reuse) ``cfg.hook`` at every layer for all concept texts in one pass, then a view per concept."""
    texts = list(dict.fromkeys(t for ds in datasets.values() for t in ds.texts))
    selection = Selection(hooks=(cfg.hook,), layers="all", positions=(cfg.position,))
    view = extract_and_load(model, texts, selection, cfg.store_dir, batch_size=cfg.batch_size,
                            storage_dtype=cfg.storage_dtype, progress=progress)
    log.info("activations: %d texts, %d computed now, %d forward batches (store %s)", view.stats.n_texts,
             view.stats.n_texts_computed, view.stats.n_forward, view.store.root)
    return {name: ActivationView(view.store, ds.texts, labels=ds.labels, storage_dtype=cfg.storage_dtype)
            for name, ds in datasets.items()}


def fit_direction(estimator: str, X: np.ndarray, y: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, float, Any]:
    """Fit ``estimator`` on all of (X, y); return its unit vector and bias (decision = X @ v + bias) and the model."""
    probe = ESTIMATORS[estimator]()
    probe.fit(X, y, groups=np.asarray(groups)) if estimator == "logistic" else probe.fit(X, y)
    coef = np.asarray(probe.coef_[0], dtype=np.float64)
    norm = float(np.linalg.norm(coef))
    return coef / norm, float(probe.intercept_[0]) / norm, probe


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
    layers = list(range(model.n_layers))
    sweep = layer_sweep(view.layer_reader(cfg.hook, cfg.position), ds.labels, np.asarray(ds.groups), ds.texts,
                        layers=layers, estimators=cfg.estimators, n_splits=cfg.n_splits, seed=cfg.seed,
                        n_jobs=cfg.n_jobs, n_model_layers=model.n_layers)
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


def source_breakdown(ds: ConceptDataset, sweep: SweepResult, selected: dict[str, int | None]) -> dict[str, Any]:
    """Out-of-fold AUROC of each selected probe and of the lexical baseline within each data source.

    Templated rows are built so that unigram and bigram counts carry no label; hand-written rows are not, so the
    lexical baseline is strong there. A probe that only beats it on templated rows may be reading word order.
    """
    if ds.sources is None or sweep.lexical is None:
        return {}
    sources = np.asarray(ds.sources)
    out: dict[str, Any] = {}
    for source in sorted(set(ds.sources)):
        keep = sources == source
        y = sweep.y[keep]
        if len(set(y.tolist())) < 2:
            continue
        row: dict[str, Any] = {"n": int(keep.sum()), "lexical": auroc(y, sweep.lexical.oof_scores[keep]).to_dict()}
        for est, layer in selected.items():
            scores = None if layer is None else sweep.get(est, layer).oof_scores
            if scores is not None:
                row[est] = {"layer": layer, "auroc": auroc(y, scores[keep]).to_dict()}
        out[source] = row
    return out


def primary_layer(result: ConceptResult) -> tuple[str, int] | None:
    """The (estimator, layer) used downstream: the logistic probe's selected layer, else mass-mean's."""
    for est in ("logistic", "mean_diff", *result.selected):
        if result.selected.get(est) is not None:
            return est, int(result.selected[est])  # type: ignore[arg-type]
    return None


def run_probe_experiment(model: LoadedModel, cfg: ProbeConfig, run: Any, progress: bool = True) -> dict[str, Any]:
    """Steps 1-8; writes results, directions, figures and the report into ``run`` and returns the summary."""
    from probes import evaluate, projection, report

    # One store directory per model under the root, so other models' activations sit beside these, never mixed in.
    cfg = replace(cfg, store_dir=str(store_dir_for(cfg.store_dir, model.identity)))
    datasets = load_concepts(cfg.concepts)
    views = concept_views(model, datasets, cfg, progress=progress)
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
    scenario = projection.project_scenario(model, results, chosen, cfg)
    summary["scenario_projection"] = scenario
    run.write_json("scenario_projection.json", scenario)
    if cfg.trials:
        trials = projection.project_trials(model, results, chosen, cfg, Path(cfg.trials))
        summary["trial_projection"] = trials
        run.write_json("trial_projection.json", trials)
    if cfg.eval_file:
        summary["eval"] = evaluate.evaluate_file(model, results, datasets, cfg, Path(cfg.eval_file))
        run.write_json("eval.json", summary["eval"])
    for name, r in results.items():
        run.save_figure(report.concept_figure(r), f"sweep_{name}")
    run.save_figure(report.overview_figure(results), "overview")
    run.write_report(report.markdown(model, cfg, results, summary, run))
    return summary


def default_n_jobs() -> int:
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))
