"""Evaluate saved probe directions and the lexical baseline on an outside labelled file, per layer.

The file has JSONL rows with ``concept``, ``text`` and ``label`` (0/1). Probes are applied exactly as saved
(decision = x . v + bias), so accuracy uses the threshold learned on the concept data and AUROC is threshold-free.
The bag-of-words baseline is refitted on the full concept data and scored on the same texts: a probe that does not
beat it on outside data may be reading wording rather than the concept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from activations.extract import extract_and_load
from activations.models import LoadedModel
from activations.selection import Selection
from common.errors import ConfigError
from experiments.jobs.probe_config import ProbeConfig
from probes.concepts import ConceptDataset, read_labelled_jsonl
from probes.controls import LexicalBaseline
from probes.directions import Direction
from probes.metrics import accuracy, auroc

__all__ = ["check_file_concepts", "evaluate_file", "score_directions"]

log = logging.getLogger(__name__)


def score_directions(directions: Sequence[Direction], X_by_layer: dict[int, np.ndarray], y: np.ndarray
                     ) -> list[dict[str, Any]]:
    """Accuracy (Wilson interval) and AUROC (DeLong interval) of each saved direction on its layer's matrix."""
    rows = []
    for d in directions:
        scores = X_by_layer[d.layer].astype(np.float64) @ d.vector + (d.bias or 0.0)
        rows.append({"estimator": d.estimator, "layer": d.layer, "selected": bool(d.extra.get("selected")),
                     "accuracy": accuracy(y, (scores > 0).astype(int)).to_dict(),
                     "auroc": auroc(y, scores).to_dict()})
    return rows


def check_file_concepts(path: Path, trained: Iterable[str]) -> list[dict[str, Any]]:
    """The file's rows (malformed files fail here), refusing concepts that have no trained directions."""
    rows = read_labelled_jsonl(path)
    trained = set(trained)
    unknown = sorted({r["concept"] for r in rows} - trained)
    if unknown:
        raise ConfigError(f"{path}: concept(s) {unknown} were not trained in this run "
                          f"(trained: {sorted(trained)}); run the probe job with --concepts including them")
    return rows


def evaluate_file(model: LoadedModel, directions: dict[str, Sequence[Direction]],
                  datasets: dict[str, ConceptDataset], cfg: ProbeConfig, store_dir: Path, path: Path
                  ) -> dict[str, Any]:
    """Per concept in the file: every saved direction at every layer (``directions`` by concept), and the lexical
    baseline refitted on that concept's data in ``datasets``."""
    rows = check_file_concepts(path, directions)
    out: dict[str, Any] = {"file": str(path), "concepts": {}}
    for concept in sorted({r["concept"] for r in rows}):
        texts = [r["text"] for r in rows if r["concept"] == concept]
        y = np.array([int(r["label"]) for r in rows if r["concept"] == concept])
        layers = sorted({d.layer for d in directions[concept]})
        selection = Selection(hooks=(cfg.hook,), layers=tuple(layers), positions=(cfg.position,))
        view = extract_and_load(model, texts, selection, store_dir, batch_size=cfg.batch_size,
                                storage_dtype=cfg.storage_dtype, progress=False)
        log.info("eval %s: %d texts, %d computed now, %d forward batches", concept, view.stats.n_texts,
                 view.stats.n_texts_computed, view.stats.n_forward)
        X_by_layer = {layer: view.matrix(cfg.hook, layer, cfg.position).X for layer in layers}
        ds = datasets[concept]
        lexical = LexicalBaseline().fit(ds.texts, ds.labels, groups=np.asarray(ds.groups))
        lex_scores = lexical.decision_function(texts)
        out["concepts"][concept] = {
            "n": len(y), "n_positive": int(y.sum()),
            "probes": score_directions(directions[concept], X_by_layer, y),
            "lexical_baseline": {"accuracy": accuracy(y, (lex_scores > 0).astype(int)).to_dict(),
                                 "auroc": auroc(y, lex_scores).to_dict()},
        }
    return out
