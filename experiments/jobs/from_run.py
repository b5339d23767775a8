"""Score a saved probe run's directions on an outside labelled file, without retraining.

``python -m experiments.probe --from-run RUN_DIR --eval-file FILE`` reads the run's ``config.json`` (model, hook,
position, store root) and ``directions/``, loads the same weights (directions of other weights are refused by
:func:`probes.directions.load_directions`), extracts only the file's texts through the activation store (a second call
does no forward pass), refits only the bag-of-words baseline on the concept data, and writes a new run directory with
``results/eval.json`` and ``report.md``. The scoring itself is :func:`experiments.jobs.evaluate.evaluate_file`, the
same function the full job calls, so the numbers are the full job's for the same file and store.

Everything that can be checked without the model (the run, its directions, the file and its concepts) is checked
first, each failure a one-line :class:`common.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activations.models import LoadedModel, load_model
from common.errors import ConfigError
from common.rundir import RunDir
from experiments.jobs import evaluate, probe_report
from experiments.jobs.probe import model_store_dir
from experiments.jobs.probe_config import ProbeConfig
from probes.concepts import load_concepts
from probes.directions import Direction, load_directions

__all__ = ["MODEL_ARGS", "SavedProbeRun", "evaluate_saved_run", "load_run_model", "open_probe_run", "report_markdown"]

log = logging.getLogger(__name__)

#: The model-loading arguments a probe run records under ``model_args`` in its ``config.json``.
MODEL_ARGS = ("weights", "revision", "dtype", "device", "device_map", "n_devices")


@dataclass(frozen=True)
class SavedProbeRun:
    """A finished probe run: its directory, settings, how its model was loaded, and its directions by concept.

    ``directions`` are read without the model check (that needs the loaded model's identity, see
    :func:`evaluate_saved_run`); they serve to validate the eval file before any model work.
    """

    run: RunDir
    cfg: ProbeConfig
    model: str
    model_args: dict[str, Any]
    directions: dict[str, list[Direction]]

    @property
    def directions_dir(self) -> Path:
        return self.run.path / "directions"


def open_probe_run(path: str | Path) -> SavedProbeRun:
    """Open and check a probe run directory (before any model work); a clear one-line error if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"--from-run {path}: no such directory; pass a run directory made by python -m "
                          "experiments.probe (runs/<time>-probe-<model>)")
    run = RunDir.open(path)
    try:
        config = run.config
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--from-run {path}: unreadable config.json ({exc}); pass a finished probe run") from exc
    if not isinstance(config, dict) or config.get("experiment") != "probe":
        kind = config.get("experiment") if isinstance(config, dict) else None
        raise ConfigError(f"--from-run {path}: a {kind!r} run, not a probe run; pass a run directory made by python "
                          "-m experiments.probe")
    fields = {f.name for f in dataclasses.fields(ProbeConfig)}
    try:
        cfg = ProbeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in fields})
    except TypeError as exc:
        raise ConfigError(f"--from-run {path}: config.json does not hold probe settings ({exc})") from exc
    directions_dir = path / "directions"
    if not directions_dir.is_dir() or not any(p for p in directions_dir.glob("*.json") if not p.name.startswith(".")):
        raise ConfigError(f"--from-run {path}: the run has no saved directions (directions/ is missing or empty; "
                          "the run probably failed or was interrupted): rerun python -m experiments.probe")
    by_concept: dict[str, list[Direction]] = {}
    for d in load_directions(directions_dir):
        by_concept.setdefault(d.concept, []).append(d)
    return SavedProbeRun(run, cfg, str(config.get("model")), dict(config.get("model_args") or {}), by_concept)


def _in_job_order(directions: list[Direction], cfg: ProbeConfig) -> list[Direction]:
    """Directions as the job lists them (by layer, then estimators in the run's order), so eval.json rows match."""
    rank = {e: i for i, e in enumerate(cfg.estimators)}
    return sorted(directions, key=lambda d: (d.layer, rank.get(d.estimator, len(rank)), d.estimator))


def load_run_model(saved: SavedProbeRun, model: str | None = None, **given: Any) -> LoadedModel:
    """The run's model, loaded as the run loaded it; ``model`` and non-None ``given`` loading arguments override.

    A different ``model`` drops the run's ``weights`` and ``revision`` (they belonged to the run's model).
    """
    args = {k: saved.model_args.get(k) for k in MODEL_ARGS}
    if model is not None and model != saved.model:
        args.update(weights=None, revision=None)
    args.update({k: v for k, v in given.items() if v is not None})
    args["dtype"] = args.get("dtype") or "float32"
    return load_model(model or saved.model, **args)


def evaluate_saved_run(from_run: str | Path, eval_file: str | Path, *, runs_root: str | Path | None = None,
                       store_root: str | None = None, model: str | None = None, **model_args: Any
                       ) -> tuple[RunDir, dict[str, Any]]:
    """Score a saved run's directions and the refitted bag-of-words baseline on ``eval_file``; returns the new run
    directory (``results/eval.json``, ``report.md``) and the evaluation.

    The run, its directions and the file are checked before the model loads; the model's identity is checked against
    the directions (:class:`probes.directions.DirectionMismatchError` for other weights) before the run directory is
    created, so a refusal leaves nothing behind. ``model`` and ``model_args`` override how the run loaded its model;
    ``store_root`` overrides its activation store root.
    """
    saved = open_probe_run(from_run)
    eval_file = Path(eval_file)
    cfg = dataclasses.replace(saved.cfg, eval_file=str(eval_file), trials=None,
                              store_root=str(store_root) if store_root else saved.cfg.store_root)
    concepts = sorted({r["concept"] for r in evaluate.check_file_concepts(eval_file, saved.directions)})
    start = time.perf_counter()
    loaded_model = load_run_model(saved, model, **model_args)
    loaded_at = time.perf_counter()
    log.info("loaded %s in %.1f s", loaded_model.identity.name, loaded_at - start)
    identity = loaded_model.identity.to_dict()
    loaded = load_directions(saved.directions_dir, expected_model=identity)  # other weights: refused here
    directions = {c: _in_job_order([d for d in loaded if d.concept == c], cfg) for c in concepts}
    datasets = load_concepts(concepts)
    changed = sorted(c for c in concepts if any(d.data_hash != datasets[c].data_hash for d in directions[c]))
    for c in changed:
        log.warning("concept data for %s changed since the run (data hash differs): the bag-of-words baseline is "
                    "refitted on today's data, the probes were trained on the run's", c)
    run = RunDir.create("probe-eval", model or saved.model,
                        {"from_run": str(saved.run.path), "model_args": {k: model_args.get(k) for k in MODEL_ARGS},
                         **cfg.to_dict()}, root=runs_root, model_identity=identity)
    log.info("run directory: %s", run.path)
    with run:  # completed, or failed with the error: never left running by a library call
        result = evaluate.evaluate_file(loaded_model, directions, datasets, cfg, model_store_dir(cfg, loaded_model),
                                        eval_file)
        result["from_run"] = {"run": str(saved.run.path), "hook": cfg.hook, "position": cfg.position,
                              "concept_data_changed": changed}
        run.write_json("eval.json", result)
        run.write_report(report_markdown(loaded_model, saved, result))
    log.info("scored %d texts in %.1f s after the model load: %s", sum(c["n"] for c in result["concepts"].values()),
             time.perf_counter() - loaded_at, run.path / "report.md")
    return run, result


def report_markdown(model: LoadedModel, saved: SavedProbeRun, result: dict[str, Any]) -> str:
    """A short ``report.md``: which run's probes, on which model, then the evaluation section of the probe report."""
    ident = model.identity
    lines = [f"# Outside evaluation of a saved probe run: {ident.name}", "",
             f"Directions from `{saved.run.path}` (hook `{saved.cfg.hook}`, position `{saved.cfg.position}`), applied "
             f"as trained to model `{ident.location}` (identity key `{ident.key}`, the run's weights). Nothing was "
             "retrained except the bag-of-words baseline, refitted on the full concept data as the probe job does. "
             "Intervals: Wilson (accuracy), DeLong (AUROC), 95%.", ""]
    lines += probe_report.eval_section({"eval": result})
    changed = result.get("from_run", {}).get("concept_data_changed")
    if changed:
        lines += [f"**Concept data changed since the run** for {', '.join(changed)}: the baseline was refitted on "
                  "today's data, the probes on the run's; rerun the probe job for a like-for-like comparison.", ""]
    return "\n".join(lines)
