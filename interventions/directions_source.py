"""Where steering directions come from: a saved probe run, or a difference of means the library computes.

- :func:`directions_from_run` reads ``RUN_DIR/directions/`` through :func:`probes.directions.load_directions`,
  refusing directions trained on other weights or of another width (one clear error).
- :func:`mean_difference_directions` computes ``mean(positive) - mean(negative)`` of the residual stream at the last
  token of each text, at chosen layers, in one pass per batch; :func:`concept_mean_differences` does it for the
  concept datasets of :mod:`probes.concepts` (optionally a fixed subsample of contrastive pairs, for speed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activations.models import LoadedModel
from common.errors import ConfigError
from activations.generation import pad_left
from activations.selection import hook_point_name
from interventions.steering import STEER_HOOKS, attention_context, pad_id
from probes.concepts import CONCEPTS, load_concept
from probes.directions import load_directions


class _Done(Exception):
    """Raised by the last capture hook to end a forward pass early."""


def normalise_concept(name: str) -> str:
    """``interest-recognition`` and ``interest_recognition`` name the same concept."""
    key = name.strip().replace("-", "_")
    if key not in CONCEPTS:
        raise ConfigError(f"unknown concept {name!r}; choose from {', '.join(CONCEPTS)}")
    return key


@dataclass
class SteeringDirections:
    """Per concept, a vector per layer, all read at one hook; ``source`` says where they came from."""

    hook: str
    vectors: dict[str, dict[int, np.ndarray]]
    source: dict[str, Any] = field(default_factory=dict)

    def get(self, concept: str, layer: int) -> np.ndarray:
        try:
            return self.vectors[concept][layer]
        except KeyError:
            have = sorted(self.vectors.get(concept, {}))
            raise ConfigError(f"no {concept} direction at layer {layer} (have layers {have})") from None

    def layers(self, concept: str) -> list[int]:
        return sorted(self.vectors.get(concept, {}))


def directions_from_run(run_dir: str | os.PathLike, model: LoadedModel, *, concepts: Sequence[str] = CONCEPTS,
                        estimator: str = "mean_diff") -> SteeringDirections:
    """Directions of ``estimator`` from a probe run, checked to belong to ``model`` (weights and width)."""
    directory = Path(run_dir)
    ddir = directory / "directions" if (directory / "directions").is_dir() else directory
    if not ddir.is_dir():
        raise ConfigError(f"--directions {run_dir}: no such directory; pass a probe run directory (it holds "
                          "directions/) written by `python -m experiments.probe`")
    loaded = load_directions(ddir, expected_model=model.identity.to_dict(), expected_dim=model.d_model)
    wanted = [normalise_concept(c) for c in concepts]
    picked = [d for d in loaded if d.estimator == estimator and d.concept in wanted]
    if not picked:
        have = sorted({(d.concept, d.estimator) for d in loaded})
        raise ConfigError(f"{ddir} has no {estimator} directions for {wanted} (it has {have}); pick another "
                          "estimator or run the probe job for these concepts")
    hooks = {d.hook for d in picked}
    if len(hooks) != 1 or next(iter(hooks)) not in STEER_HOOKS:
        raise ConfigError(f"{ddir}: directions were read at {sorted(hooks)}; steering needs one of {STEER_HOOKS}")
    vectors: dict[str, dict[int, np.ndarray]] = {}
    for d in picked:
        vectors.setdefault(d.concept, {})[int(d.layer)] = d.vector
    missing = [c for c in wanted if c not in vectors]
    if missing:
        raise ConfigError(f"{ddir} has no {estimator} directions for {missing}")
    return SteeringDirections(next(iter(hooks)), vectors,
                              {"kind": "probe_run", "path": str(ddir.resolve()), "estimator": estimator})


def mean_difference_directions(model: LoadedModel, positive: Sequence[str], negative: Sequence[str],
                               layers: Sequence[int], *, hook: str = "resid_post",
                               batch_size: int = 8, progress: bool = False) -> dict[int, np.ndarray]:
    """``mean(positive) - mean(negative)`` of the residual at ``hook`` at each text's last token, per layer."""
    if hook not in STEER_HOOKS:
        raise ConfigError(f"unknown hook {hook!r}; use one of {', '.join(STEER_HOOKS)}")
    if not positive or not negative:
        raise ConfigError("a difference of means needs at least one positive and one negative text")
    bad = [x for x in layers if not 0 <= int(x) < model.n_layers]
    if bad or not layers:
        raise ConfigError(f"layer(s) {bad or '[]'} out of range; this model has layers 0..{model.n_layers - 1}")
    sums = {side: {int(layer): torch.zeros(model.d_model, dtype=torch.float64) for layer in layers}
            for side in (0, 1)}
    texts = [(t, 1) for t in positive] + [(t, 0) for t in negative]
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="difference of means", unit="batch")
    for start in starts:
        chunk = texts[start:start + batch_size]
        tokens, mask = pad_left([model.encode(t) for t, _ in chunk], pad_id(model))
        side = torch.tensor([s for _, s in chunk])
        seen: dict[int, torch.Tensor] = {}

        def grab(layer: int):
            def hook_fn(x: torch.Tensor, hook: Any) -> torch.Tensor:
                seen[layer] = x[:, -1, :].double().cpu()  # left padding: the last token is at -1
                if len(seen) == len(sums[1]):
                    raise _Done  # nothing above the last requested layer is needed
                return x
            return hook_fn

        try:
            with torch.no_grad(), attention_context(model, "sdpa"), \
                    model.bridge.hooks(fwd_hooks=[(hook_point_name(hook, L), grab(int(L))) for L in layers]):
                model.bridge(tokens.to(model.device), attention_mask=mask.to(model.device), return_type="logits")
        except _Done:
            pass
        for layer, acts in seen.items():
            for s in (0, 1):
                sums[s][layer] += acts[side == s].sum(0)
    return {layer: ((sums[1][layer] / len(positive)) - (sums[0][layer] / len(negative))).float().numpy()
            for layer in sums[1]}


def concept_mean_differences(model: LoadedModel, concepts: Sequence[str], layers: Sequence[int], *,
                             hook: str = "resid_post", max_pairs: int | None = 64, seed: int = 0,
                             batch_size: int = 8, progress: bool = False) -> SteeringDirections:
    """Difference-of-means directions for concept datasets, over up to ``max_pairs`` contrastive pairs each."""
    vectors: dict[str, dict[int, np.ndarray]] = {}
    used: dict[str, int] = {}
    for name in concepts:
        concept = normalise_concept(name)
        ds = load_concept(concept)
        pairs = sorted(set(ds.pair_ids))
        if max_pairs is not None and len(pairs) > max_pairs:
            rng = np.random.default_rng(seed)
            pairs = sorted(rng.choice(pairs, size=max_pairs, replace=False).tolist())
        keep = set(pairs)
        pos = [t for t, y, p in zip(ds.texts, ds.labels, ds.pair_ids) if p in keep and y == 1]
        neg = [t for t, y, p in zip(ds.texts, ds.labels, ds.pair_ids) if p in keep and y == 0]
        vectors[concept] = mean_difference_directions(model, pos, neg, layers, hook=hook, batch_size=batch_size,
                                                      progress=progress)
        used[concept] = len(pos) + len(neg)
    return SteeringDirections(hook, vectors, {"kind": "mean_difference", "texts": used, "max_pairs": max_pairs,
                                              "seed": seed, "position": "last"})
