"""Project the scenario prompts and trial transcripts onto the concept directions.

Scores are given raw (``x . v``) and normalised against the concept data: 0 is the mean projection of the concept's
negative examples, 1 that of its positives, so a scenario prompt at 0.8 sits most of the way to "interest recognised".
With behavioural labels, the projection's separation of converged from not-converged trials is an AUROC with a
DeLong interval and the n of each class: a correlational read-out, not evidence that the direction causes the verdict.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from activations.extract import extract_and_load
from activations.models import LoadedModel
from activations.prompts import render_prompt
from activations.selection import Item, Selection
from behaviour.judge import LABELS
from behaviour.scenario import load_scenario
from behaviour.table import effective_label
from common.errors import ConfigError
from common.jsonl import read_jsonl
from experiments.jobs.probe_config import ProbeConfig
from probes.concept_probe import ConceptResult
from probes.directions import Direction
from probes.metrics import auroc

__all__ = ["project_scenario", "project_trials", "separation"]

log = logging.getLogger(__name__)

# The judge's label set, by meaning (behaviour.judge.LABELS is ordered converged, ambiguous, did_not_converge, refused).
CONVERGED, AMBIGUOUS, DID_NOT_CONVERGE, REFUSED = LABELS
NOT_CONVERGED = (DID_NOT_CONVERGE, AMBIGUOUS)


def _score(direction: Direction, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw = X.astype(np.float64) @ direction.vector.astype(np.float64)
    m0, m1 = direction.scale["class_means"]
    return raw, (raw - m0) / (m1 - m0)


def _project(model: LoadedModel, items: list[Item], results: dict[str, ConceptResult],
             chosen: dict[str, tuple[str, int] | None], cfg: ProbeConfig, store_dir: Path,
             position: str) -> dict[str, dict[str, Any]]:
    """Raw and normalised scores of ``items`` on each concept's chosen direction (concepts with none are skipped)."""
    layers = sorted({c[1] for c in chosen.values() if c is not None})
    if not layers:
        return {}
    selection = Selection(hooks=(cfg.hook,), layers=tuple(layers), positions=(position,))
    view = extract_and_load(model, items, selection, store_dir, batch_size=max(1, cfg.batch_size // 4),
                            storage_dtype=cfg.storage_dtype, progress=False)
    out = {}
    for concept, pick in chosen.items():
        if pick is None:
            continue
        estimator, layer = pick
        direction = results[concept].direction(estimator, layer)
        raw, norm = _score(direction, view.matrix(cfg.hook, layer, position).X)
        out[concept] = {"estimator": estimator, "layer": layer, "raw": raw.tolist(), "normalised": norm.tolist()}
    return out


def project_scenario(model: LoadedModel, results: dict[str, ConceptResult],
                     chosen: dict[str, tuple[str, int] | None], cfg: ProbeConfig, store_dir: Path) -> dict[str, Any]:
    """Each scenario condition's prompt, rendered in the model's own format, read at its last token."""
    scenario = load_scenario(Path(cfg.scenario) if cfg.scenario else None)
    names = scenario.condition_names()
    prompts = [render_prompt(scenario.prompt(c), model.tokenizer, model.spec) for c in names]
    scores = _project(model, [Item(p) for p in prompts], results, chosen, cfg, store_dir, "last")
    return {
        "scenario": scenario.name,
        "position": "last token of the rendered prompt (where the model starts its answer)",
        "prompt_format": model.spec.prompt_format,
        "conditions": names,
        "prompt_hashes": {c: scenario.text_hash(c) for c in names},
        "scores": scores,
        "missing": sorted(c for c, pick in chosen.items() if pick is None),
    }


def _trial_rows(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        path = path / "transcripts.jsonl"
    if not path.exists():
        raise ConfigError(f"--trials {path}: no such file; pass a trials run directory or its transcripts.jsonl")
    return read_jsonl(path)


def separation(labels: list[str | None], scores: np.ndarray) -> dict[str, Any]:
    """AUROC of ``scores`` for converged vs not converged (ambiguous + did_not_converge), and vs did_not_converge."""
    labels_arr = np.array([lab or "" for lab in labels])
    out: dict[str, Any] = {}
    for name, negatives in (("converged_vs_not", NOT_CONVERGED), ("converged_vs_did_not_converge",
                                                                   (DID_NOT_CONVERGE,))):
        keep = np.isin(labels_arr, (CONVERGED, *negatives))
        y = (labels_arr[keep] == CONVERGED).astype(int)
        n_pos, n_neg = int(y.sum()), int((1 - y).sum())
        if n_pos == 0 or n_neg == 0:
            out[name] = {"auroc": None, "n_pos": n_pos, "n_neg": n_neg,
                         "note": "not computable: one of the two classes has no trials"}
        else:
            out[name] = {"auroc": auroc(y, scores[keep]).to_dict(), "n_pos": n_pos, "n_neg": n_neg}
    return out


def project_trials(model: LoadedModel, results: dict[str, ConceptResult],
                   chosen: dict[str, tuple[str, int] | None], cfg: ProbeConfig, store_dir: Path,
                   path: Path) -> dict[str, Any]:
    """Each trial's prompt + response, read as the mean over the tokens of its final answer."""
    rows = _trial_rows(path)
    items, kept, skipped = [], [], []
    for row in rows:
        answer = (row.get("final_answer") or "").strip()
        text = (row.get("prompt_text") or "") + (row.get("response") or "")
        if not answer or answer not in text:
            skipped.append(row.get("id"))
            continue
        items.append(Item.find(text, answer))
        kept.append(row)
    if not items:
        return {"n": 0, "skipped": skipped, "note": "no trial has a final answer to read"}
    scores = _project(model, items, results, chosen, cfg, store_dir, "marked:mean")
    labels = [effective_label(r) for r in kept]
    out: dict[str, Any] = {"n": len(kept), "skipped_without_answer": len(skipped),
                           "position": "mean over the tokens of the final answer", "concepts": {}}
    for concept, s in scores.items():
        by_condition: dict[str, list[float]] = {}
        for row, value in zip(kept, s["normalised"]):
            by_condition.setdefault(str(row.get("condition")), []).append(value)
        out["concepts"][concept] = {
            "estimator": s["estimator"], "layer": s["layer"],
            "mean_normalised_by_condition": {c: float(np.mean(v)) for c, v in by_condition.items()},
            "separation": separation(labels, np.asarray(s["normalised"])),
            # per trial, so a caller can relabel (e.g. with reviewed labels) and test the separation itself
            "trials": [{"id": row.get("id"), "condition": row.get("condition"), "label": lab, "normalised": value}
                       for row, lab, value in zip(kept, labels, s["normalised"])],
        }
    out["labels"] = {lab or "unscored": labels.count(lab) for lab in set(labels)}
    return out
