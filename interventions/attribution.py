"""Attribution patching (first-order estimate of activation patching) and its agreement with exact patching.

For a patched run ``t`` and a source run ``s`` the effect of patching the activations ``a`` of one cell is estimated
as ``(a_s - a_t) . dM/da_t``, summed over the cell's positions (Nanda 2023; Syed et al. 2023). The gradient comes
from TransformerLens's :func:`~transformer_lens.tools.analysis.attribution_patching.cache_activation_and_gradient`
(one forward + one backward on the patched run, with the hooks that read the bridge's converted-shape gradients);
the source activations are the cache the exact sweep already holds, so the whole grid costs two forwards and one
backward. TransformerLens's own ``attribution_patch`` scores only per-position heads and MLPs of equal-length pairs;
this module applies the same score to every component and to segment cells, in both directions.

Known failure modes (AtP*, Kramar et al. 2024): attention saturation and cancellation between direct and indirect
effects give false negatives, and the residual stream (large activations) is approximated worst. Hence
:func:`compare` - Spearman rank correlation, top-k overlap and the largest disagreements - in every run that
computes both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import einops
import torch
from scipy.stats import spearmanr
from transformer_lens.tools.analysis.attribution_patching import cache_activation_and_gradient

from common.errors import ConfigError
from interventions.patching import PatchGrid, Run, VerdictMetric, with_hooks, hook_name, summarise, \
    target_and_source
from interventions.segments import Cell, Direction


def _track_from_embeddings(x: torch.Tensor, hook: Any) -> torch.Tensor:
    """Start autograd at the embeddings when the parameters are frozen (a large model: ``requires_grad_(False)``
    spares a model-sized ``.grad`` per parameter), so the backward still reaches every activation; otherwise the
    forward has nothing to differentiate and the backward fails."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def gradients(bridge: Any, target: Run, names: Sequence[str], metric: VerdictMetric) -> dict[str, torch.Tensor]:
    """``dM/da`` at ``names`` on the patched run (summed metric over its rows, so each row gets its own gradient).

    Works with frozen parameters (no parameter gets a ``.grad``): the gradient starts at the embeddings.
    """
    def scalar(logits: torch.Tensor) -> torch.Tensor:
        return metric(logits).sum()

    # The most upstream cached point's backward hook never fires, and for a converted point (attn.hook_z) the
    # fallback TransformerLens uses cannot reach it either: caching hook_embed too keeps every asked-for point
    # downstream of something.
    wanted = ["hook_embed", *[n for n in names if n != "hook_embed"]]
    with torch.enable_grad(), with_hooks(bridge, [("hook_embed", _track_from_embeddings), *target.hooks]):
        cache = cache_activation_and_gradient(bridge, target.tokens, scalar, names_filter=wanted)
    missing = [n for n in names if cache.gradients.get(n) is None]
    if missing:
        raise ConfigError(f"no gradient reached {missing[:3]}: these hook points do not affect the metric")
    return {n: cache.gradients[n].float() for n in names}  # type: ignore[union-attr]


def attribution_scores(target_cache: dict[str, torch.Tensor], source_cache: dict[str, torch.Tensor],
                       grads: dict[str, torch.Tensor], component: str, cells: Sequence[Cell],
                       layers: Sequence[int]) -> torch.Tensor:
    """Estimated metric change ``[layers, cells, samples]`` (``[layers, heads, samples]`` for ``z``, one cell)."""
    rows = []
    for layer in layers:
        name = hook_name(component, layer)
        tgt, src, grad = target_cache[name].float(), source_cache[name].float(), grads[name]
        per_cell = []
        for cell in cells:
            t, s = list(cell.target), list(cell.source)
            delta = src[:, s].to(tgt.device) - tgt[:, t]  # source rows broadcast over samples
            if component == "z":
                score = einops.einsum(delta, grad[:, t], "b p h d, b p h d -> h b")
            else:
                score = einops.einsum(delta, grad[:, t], "b p d, b p d -> b")
            per_cell.append(score)
        rows.append(torch.stack(per_cell))
    out = torch.stack(rows).cpu()
    if component == "z":
        if len(cells) != 1:
            raise ConfigError("per-head attribution takes one cell (the positions to patch in every head)")
        out = out[:, 0]
    return out


def attribution_grid(bridge: Any, clean: Run, corrupted: Run, metric: VerdictMetric, component: str,
                     direction: Direction, cells: Sequence[Cell], column_kind: str, layers: Sequence[int],
                     grads: dict[str, torch.Tensor] | None = None, heads: Sequence[int] | None = None) -> PatchGrid:
    """The attribution estimate of the grid :func:`interventions.patching.patch_grid` computes exactly (``heads``:
    the heads of a ``z`` grid, all by default)."""
    target, source = target_and_source(clean, corrupted, direction)
    layers = list(layers)
    names = [hook_name(component, layer) for layer in layers]
    if grads is None or any(n not in grads for n in names):
        grads = gradients(bridge, target, names, metric)
    scores = attribution_scores(target.cache, source.cache, grads, component, cells, layers)
    if component == "z":
        heads = list(range(scores.shape[1])) if heads is None else list(heads)
        scores = scores[:, heads]
    estimate = target.metric + scores
    if component == "z":
        columns, kind = [f"H{h}" for h in heads], "head"  # type: ignore[union-attr]
    else:
        columns, kind = [c.label for c in cells], column_kind
    return summarise(estimate, target, clean, corrupted, component=component, direction=direction,
                     method="attribution", layers=layers, columns=columns, column_kind=kind)


@dataclass
class Agreement:
    """How well attribution ranks the cells exact patching ranks, with the cells they disagree on.

    Cells that are exactly zero in both grids (e.g. segments before the first differing token, whose activations are
    the same in both runs) are left out of the rank correlation and the top-k sets: agreeing on them is trivial and
    would inflate the figures. ``n_cells`` counts the cells compared, ``n_trivial`` those left out.
    """

    component: str
    direction: str
    n_cells: int
    n_trivial: int
    spearman: float
    top_k: int
    top_k_overlap: float
    disagreements: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(exact: PatchGrid, attribution: PatchGrid, k: int = 5, n_disagreements: int = 5) -> Agreement:
    """Spearman correlation of the two grids' effects, overlap of their top-``k`` cells by |effect|, and the cells
    with the largest absolute difference (cells zero in both are left out)."""
    if exact.values.shape != attribution.values.shape or exact.columns != attribution.columns:
        raise ConfigError("exact and attribution grids cover different cells; compute both on the same grid")
    e_all, a_all = exact.effect.flatten(), attribution.effect.flatten()
    keep = torch.nonzero((e_all.abs() > 1e-9) | (a_all.abs() > 1e-9)).flatten()
    e, a = e_all[keep], a_all[keep]
    n = e.numel()
    rho = float(spearmanr(e.numpy(), a.numpy()).statistic) if n > 2 else float("nan")
    k = min(k, n)
    top_e = set(torch.argsort(e.abs(), descending=True)[:k].tolist())
    top_a = set(torch.argsort(a.abs(), descending=True)[:k].tolist())
    n_cols = len(exact.columns)
    worst = torch.argsort((e - a).abs(), descending=True)[:n_disagreements].tolist()
    disagreements = []
    for i in worst:
        row, col = divmod(int(keep[i]), n_cols)
        disagreements.append({"layer": exact.layers[row], "column": exact.columns[col],
                              "exact": float(e[i]), "attribution": float(a[i])})
    return Agreement(exact.component, exact.direction, n, e_all.numel() - n, rho, k,
                     len(top_e & top_a) / k if k else float("nan"), disagreements)
