"""Reading a steering sweep: effects against random-direction controls, side effects, and the layer-choice rule.

Pure functions over sweep records (no model), so the rule that picks a setting is tested on planted numbers.

Records: ``{"prompt", "layer", "direction", "alpha", "metric"}`` for the verdict metric and
``{"layer", "direction", "alpha", "kl", "perplexity"}`` for side effects; the unsteered baseline is ``alpha == 0``.

**Effect** of a setting = its metric minus the unsteered metric on the same prompt, averaged over prompts (positive =
towards "against").

**Layer choice rule** (documented, never by eye; compare the refusal-direction rule): candidate layers are those in
the first ``1 - skip_last_fraction`` of the model (the last 20% by default are skipped: steering there mostly
rewrites the output distribution directly); a setting is admissible when its mean KL on the neutral prompts is at
most ``kl_threshold``; among admissible settings with alpha > 0 the concept direction's largest effect wins (ties:
the smaller alpha, then the earlier layer). No admissible setting: nothing is selected, and the report says so.

**Against random directions**: at each (layer, alpha), the concept's effect is compared with the effects of the
random directions of the same norm: outside their spread when above their maximum (or below their minimum), with
its rank and a z-score. With k random directions the chance of landing above all of them by luck is 1/(k+1).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RANDOM_PREFIX = "random_"


def candidate_layers(n_layers: int, skip_last_fraction: float = 0.2) -> list[int]:
    """Layers the rule may select: the first ``1 - skip_last_fraction`` of the model."""
    return list(range(max(1, math.floor(n_layers * (1 - skip_last_fraction)))))


def auto_layers(n_layers: int, n: int, skip_last_fraction: float = 0.2) -> list[int]:
    """``n`` layers evenly spaced over the candidates, leaving out the first tenth (embedding-like layers)."""
    cands = candidate_layers(n_layers, skip_last_fraction)
    lo = min(len(cands) - 1, round(n_layers * 0.1))
    picks = np.linspace(lo, cands[-1], num=max(1, n))
    return sorted({int(round(x)) for x in picks})


def effects(records: Iterable[dict[str, Any]]) -> dict[tuple[int, str, float], float]:
    """(layer, direction, alpha) -> mean over prompts of metric - unsteered metric (alpha 0) on that prompt."""
    records = list(records)
    base = {r["prompt"]: r["metric"] for r in records if r["alpha"] == 0}
    grouped: dict[tuple[int, str, float], list[float]] = defaultdict(list)
    for r in records:
        if r["alpha"] != 0:
            grouped[(int(r["layer"]), r["direction"], float(r["alpha"]))].append(r["metric"] - base[r["prompt"]])
    return {k: float(np.mean(v)) for k, v in grouped.items()}


@dataclass(frozen=True)
class Comparison:
    """A direction's effect at one setting against the random directions' effects there."""

    layer: int
    alpha: float
    direction: str
    effect: float
    random_min: float
    random_max: float
    random_mean: float
    random_std: float
    n_random: int
    rank: int  # 1 + number of random effects above it (1 = above every random direction)
    z: float
    outside: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_to_random(eff: dict[tuple[int, str, float], float], direction: str) -> list[Comparison]:
    """For each (layer, alpha) where ``direction`` was run, its effect against the random directions'."""
    out = []
    for (layer, name, alpha), value in sorted(eff.items()):
        if name != direction:
            continue
        rand = np.array([v for (L, n, a), v in eff.items()
                         if L == layer and a == alpha and n.startswith(RANDOM_PREFIX)])
        if rand.size == 0:
            continue
        std = float(rand.std(ddof=1)) if rand.size > 1 else float("nan")
        z = (value - float(rand.mean())) / std if std and math.isfinite(std) and std > 0 else float("nan")
        out.append(Comparison(layer, alpha, direction, value, float(rand.min()), float(rand.max()),
                              float(rand.mean()), std, int(rand.size), int(1 + (rand > value).sum()), z,
                              bool(value > rand.max() or value < rand.min())))
    return out


def side_effect_table(records: Iterable[dict[str, Any]]) -> dict[tuple[int, str, float], dict[str, float]]:
    """(layer, direction, alpha) -> {"kl", "perplexity"} (alpha 0 rows are the unsteered reference)."""
    return {(int(r["layer"]), r["direction"], float(r["alpha"])): {"kl": r["kl"], "perplexity": r["perplexity"]}
            for r in records}


@dataclass(frozen=True)
class Selection:
    """The setting the rule picked for one direction, or None with the reason."""

    direction: str
    layer: int | None
    alpha: float | None
    effect: float | None
    kl: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_setting(eff: dict[tuple[int, str, float], float], side: dict[tuple[int, str, float], dict[str, float]],
                   direction: str, *, n_layers: int, kl_threshold: float,
                   skip_last_fraction: float = 0.2) -> Selection:
    """Apply the layer-choice rule (module docstring) to ``direction``."""
    allowed = set(candidate_layers(n_layers, skip_last_fraction))
    best: tuple[float, float, int] | None = None
    for (layer, name, alpha), value in eff.items():
        if name != direction or alpha <= 0 or layer not in allowed:
            continue
        kl = side.get((layer, name, alpha), {}).get("kl")
        if kl is None or not math.isfinite(kl) or kl > kl_threshold:
            continue
        key = (value, -alpha, -layer)
        if best is None or key > (best[0], -best[1], -best[2]):
            best = (value, alpha, layer)
    if best is None:
        return Selection(direction, None, None, None, None,
                         f"no setting with alpha > 0 in layers < {max(allowed) + 1} has KL <= {kl_threshold}")
    value, alpha, layer = best
    kl = side[(layer, direction, alpha)]["kl"]
    return Selection(direction, layer, alpha, value, kl,
                     f"largest effect among settings with KL <= {kl_threshold} in layers < {max(allowed) + 1}")
