"""Steered behavioural trials: a steering spec that becomes part of each trial's identity.

A :class:`SteeringSpec` (YAML or dict) names a concept direction (from a probe run, or a difference of means over the
concept data), a layer, a relative alpha, a hook and a position rule. :class:`experiments.jobs.backends.SteeredBackend`
wraps the local backend so that every completion is generated with that steering, and its
``identity`` is the model's identity plus the resolved steering (including the vector's sha256 and the residual norm
used), with a ``key`` that hashes both. ``behaviour.trials`` derives trial ids and seeds from that key, so steered
and unsteered trials (or two different steerings) never share an id: a resume never mixes them, and every record's
``model_identity`` says how it was steered; the model name carries the setting too, so a convergence table (grouped by
model and condition) gives steered trials their own row.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activations.models import LoadedModel
from common.errors import ConfigError
from common.yamlfile import load_yaml, load_yaml_mapping
from interventions.directions_source import concept_mean_differences, directions_from_run, normalise_concept
from interventions.steering import (
    POSITION_RULES, STEER_HOOKS, ResidualNorms, Steer, measure_residual_norms,
)

#: Reference texts for the residual norm when a spec gives none (neutral prose; see configs/steering/neutral.yaml).
DEFAULT_NEUTRAL = Path(__file__).resolve().parents[1] / "configs" / "steering" / "neutral.yaml"


@dataclass(frozen=True)
class SteeringSpec:
    """One steering setting for trials; ``directions`` None means a difference of means over the concept data."""

    concept: str
    layer: int
    alpha: float
    hook: str = "resid_post"
    positions: str = "all"
    directions: str | None = None
    estimator: str = "mean_diff"
    max_pairs: int = 48
    seed: int = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SteeringSpec:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"steering spec {path} does not exist")
        raw = load_yaml(path, "steering spec")
        return cls.from_dict(raw if isinstance(raw, dict) else {}, where=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, where: str = "steering spec") -> SteeringSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        missing = sorted({"concept", "layer", "alpha"} - set(raw))
        if unknown or missing:
            raise ConfigError(f"{where}: unknown keys {unknown} / missing keys {missing}; known: {sorted(known)}")
        spec = cls(**raw)
        spec.validate()
        return spec

    def validate(self) -> None:
        normalise_concept(self.concept)
        if self.hook not in STEER_HOOKS:
            raise ConfigError(f"steering spec: unknown hook {self.hook!r}; use one of {', '.join(STEER_HOOKS)}")
        if self.positions not in POSITION_RULES:
            raise ConfigError(f"steering spec: unknown position rule {self.positions!r}; choose one of "
                              f"{', '.join(POSITION_RULES)}")
        if not isinstance(self.alpha, (int, float)) or not np.isfinite(float(self.alpha)):
            raise ConfigError(f"steering spec: alpha must be a finite number, got {self.alpha!r}")
        if not isinstance(self.layer, int) or self.layer < 0:
            raise ConfigError(f"steering spec: layer must be a non-negative integer, got {self.layer!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResolvedSteering:
    spec: SteeringSpec
    vector: np.ndarray  # unit
    norms: ResidualNorms

    @property
    def steer(self) -> Steer:
        return Steer(self.vector, float(self.spec.alpha), (self.spec.layer,), hook=self.spec.hook,
                     positions=self.spec.positions, name=self.spec.concept)

    def identity(self) -> dict[str, Any]:
        vec = np.ascontiguousarray(self.vector, dtype="<f4")
        return {**self.spec.to_dict(), "concept": normalise_concept(self.spec.concept),
                "vector_sha256": hashlib.sha256(vec.tobytes()).hexdigest(),
                "layer_norm": self.norms.norms[self.spec.layer]}


def resolve_steering(model: LoadedModel, spec: SteeringSpec, *,
                     reference: Sequence[str] | None = None) -> ResolvedSteering:
    """The spec's unit direction at its layer and the residual norms its alpha is relative to (checked for model)."""
    spec.validate()
    if spec.layer >= model.n_layers:
        raise ConfigError(f"steering spec: layer {spec.layer} out of range; this model has layers "
                          f"0..{model.n_layers - 1}")
    concept = normalise_concept(spec.concept)
    if spec.directions:
        source = directions_from_run(spec.directions, model, concepts=[concept], estimator=spec.estimator)
        if source.hook != spec.hook:
            raise ConfigError(f"steering spec: the run's directions were read at {source.hook}, not {spec.hook}")
    else:
        source = concept_mean_differences(model, [concept], [spec.layer], hook=spec.hook, max_pairs=spec.max_pairs,
                                          seed=spec.seed)
    v = source.get(concept, spec.layer)
    if reference is None:
        reference = [*load_yaml_mapping(DEFAULT_NEUTRAL, "neutral prompts")["reference"]]
    norms = measure_residual_norms(model, list(reference), hook=spec.hook, reference="steered trials reference")
    return ResolvedSteering(spec, (v / np.linalg.norm(v)).astype(np.float32), norms)
