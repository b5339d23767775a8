"""The probe job's settings (:class:`ProbeConfig`, written to ``config.json``) and their cheap validation."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from activations.models import CACHE_DIR
from common.errors import ConfigError
from probes.concept_probe import ESTIMATORS
from probes.concepts import CONCEPTS, canonical_concept, read_labelled_jsonl
from probes.sweep import SCALINGS

__all__ = ["DEFAULT_STORE_ROOT", "ProbeConfig", "default_n_jobs"]

#: Root of the activation store: one subdirectory per model (``activations.store.store_dir_for``) under it.
DEFAULT_STORE_ROOT = CACHE_DIR / "activations"


@dataclass(frozen=True)
class ProbeConfig:
    """Everything the probe job depends on (written to ``config.json``).

    ``store_root`` is the activation store's root, shared by every model; the job reads and writes the model's own
    subdirectory under it (named by the model's identity), so activations of other weights are never mixed in.
    """

    concepts: tuple[str, ...] = CONCEPTS
    hook: str = "resid_post"
    position: str = "last"
    estimators: tuple[str, ...] = ("logistic", "mean_diff")
    n_splits: int = 5
    scaling: str = "layer"  # logistic probe's standardisation: per layer (all rows) or per training fold
    seed: int = 0
    batch_size: int = 16
    storage_dtype: str = "float32"
    store_root: str = str(DEFAULT_STORE_ROOT)
    n_jobs: int = -1
    eval_file: str | None = None
    trials: str | None = None
    scenario: str | None = None

    def __post_init__(self) -> None:
        # Concept names are accepted with hyphens or underscores (interest-recognition = interest_recognition).
        object.__setattr__(self, "concepts", tuple(canonical_concept(c) for c in self.concepts))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Check the settings before loading a model, so a typo costs nothing."""
        unknown = [c for c in self.concepts if c not in CONCEPTS]
        if unknown or not self.concepts:
            raise ConfigError(f"unknown concept(s) {unknown}; choose from {', '.join(CONCEPTS)}")
        bad = [e for e in self.estimators if e not in ESTIMATORS]
        if bad or not self.estimators:
            raise ConfigError(f"unknown estimator(s) {bad}; choose from {', '.join(ESTIMATORS)}")
        if self.n_splits < 2:
            raise ConfigError("--folds must be at least 2")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {self.scaling!r}; choose from {', '.join(SCALINGS)}")
        if self.eval_file:
            read_labelled_jsonl(self.eval_file)  # unknown concepts, missing fields, one class: fail before the model


def default_n_jobs() -> int:
    """Parallel workers over layers: the CPUs this process may use, at most 8."""
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))
