"""Exact activation patching on the TransformerBridge, by layer x (token | segment) and by attention head.

The sweep itself is TransformerLens's own :func:`transformer_lens.patching.generic_activation_patch` (one patched
forward per cell, per-example values, the unpatched baseline); this module supplies what it lacks for our pairs:

- cells that map positions of the *source* run onto positions of the *patched* run (segments of a pair whose
  lengths differ, see :mod:`interventions.segments`), and per-head patching over a set of positions;
- the verdict metric (:mod:`interventions.verdict`) normalised so that clean = 1 and corrupted = 0, per sample;
- both directions, labelled: **denoising** runs the corrupted input and patches in clean activations (is this
  component *sufficient* to restore the clean verdict?), **noising** runs the clean input and patches in corrupted
  activations (is it *necessary*?). Either way 1 means "the patched run gives the clean metric", 0 "the corrupted";
- Gaussian noising of input embeddings (ROME's causal tracing) as the alternative to a corrupted text, with several
  noise samples so that TransformerLens's bootstrap intervals have something to resample.

The source cache is a plain ``{hook name: tensor}``: it may come from another model of the same width (cross-model
patching), as long as hook names and shapes match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from transformer_lens import patching as tl_patching
from transformer_lens.utilities import get_act_name
from transformer_lens.utilities.statistics import bootstrap_ci, derive_generator

from common.errors import ConfigError
from interventions.segments import Alignment, Cell, Direction, check_direction
from interventions.verdict import VerdictTokens, verdict_log_odds

#: Patchable components: the residual stream entering a block, the attention and MLP outputs, and attention heads
#: (``z``: each head's output before the output projection, patched one head at a time).
COMPONENTS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out", "z")
BLOCK_COMPONENTS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out")
#: Also patchable, though not swept by default (within a model it repeats the next layer's ``resid_pre``): the
#: residual stream leaving a block, which cross-model patching (:mod:`interventions.model_diff`) needs.
PATCHABLE: tuple[str, ...] = (*COMPONENTS, "resid_post")
#: Below this |clean - corrupted| gap in log-odds there is nothing to normalise by (the report shows the gap).
MIN_GAP = 1e-6

Hook = tuple[str, Callable[..., Any]]


def hook_name(component: str, layer: int) -> str:
    """The bridge hook point of ``component`` at ``layer`` (e.g. ``blocks.3.attn.hook_z``)."""
    if component not in PATCHABLE:
        raise ConfigError(f"unknown component {component!r}; choose from {', '.join(PATCHABLE)}")
    return get_act_name(component, layer)


@dataclass(frozen=True)
class VerdictMetric:
    """The verdict log-odds at the last position, one value per batch row (the patching metric)."""

    tokens: VerdictTokens

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return verdict_log_odds(logits[:, -1], self.tokens)

    def describe(self) -> str:
        return (f"log-odds of {list(self.tokens.against_text)} over {list(self.tokens.proceed_text)} "
                "at the verdict position (last token)")


@dataclass(frozen=True)
class GaussianNoise:
    """Gaussian noise added to the input embeddings at ``positions`` (ROME's corruption).

    ``scale`` is in units of the embedding matrix's standard deviation (ROME uses 3); ``samples`` noise draws are run
    as one batch so the results carry bootstrap intervals.
    """

    positions: tuple[int, ...]
    scale: float = 3.0
    samples: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.positions:
            raise ConfigError("Gaussian noise needs at least one position to corrupt")
        if self.samples < 1 or self.scale <= 0:
            raise ConfigError("Gaussian noise needs samples >= 1 and scale > 0")

    def hook(self, bridge: Any) -> Hook:
        """A ``hook_embed`` hook adding the same fixed draws on every forward (so patched runs share the noise)."""
        std = float(bridge.W_E.detach().float().std())
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(self.samples, len(self.positions), bridge.cfg.d_model, generator=gen) * self.scale * std
        positions = list(self.positions)

        def add_noise(embed: torch.Tensor, hook: Any) -> torch.Tensor:
            if embed.shape[0] != self.samples:
                raise ConfigError(f"noise hook: batch {embed.shape[0]} != {self.samples} samples")
            embed = embed.clone()
            embed[:, positions] = embed[:, positions] + noise.to(embed.device, embed.dtype)
            return embed

        return ("hook_embed", add_noise)

    def describe(self) -> str:
        return (f"Gaussian noise on the input embeddings at {len(self.positions)} positions, {self.scale} x the "
                f"embedding std, {self.samples} samples (seed {self.seed})")


@dataclass
class PatchPair:
    """A clean/corrupted pair ready to patch: token ids (batch 1), their alignment and how the corruption was made."""

    clean: torch.Tensor
    corrupted: torch.Tensor
    alignment: Alignment
    corruption: str
    noise: GaussianNoise | None = None
    clean_text: str | None = None
    corrupted_text: str | None = None

    @property
    def samples(self) -> int:
        return 1 if self.noise is None else self.noise.samples


@dataclass
class Run:
    """One side of the pair as it is run: tokens (one row per sample), extra hooks, cache and metric per sample."""

    tokens: torch.Tensor
    hooks: list[Hook]
    cache: dict[str, torch.Tensor]
    metric: torch.Tensor  # [samples]


@contextmanager
def with_hooks(bridge: Any, hooks: Sequence[Hook]) -> Iterator[None]:
    if hooks:
        with bridge.hooks(fwd_hooks=list(hooks)):
            yield
    else:
        yield


def run_and_cache(bridge: Any, tokens: torch.Tensor, names: Sequence[str], metric: VerdictMetric,
                  hooks: Sequence[Hook] = ()) -> Run:
    """Run ``tokens`` (with ``hooks``, e.g. noise) and keep the activations at ``names`` and the metric per row."""
    with torch.no_grad(), with_hooks(bridge, hooks):
        logits, cache = bridge.run_with_cache(tokens, names_filter=list(names))
    return Run(tokens, list(hooks), {n: cache[n].detach() for n in names}, metric(logits).detach().float().cpu())


def prepare_runs(bridge: Any, pair: PatchPair, names: Sequence[str], metric: VerdictMetric) -> tuple[Run, Run]:
    """The clean run (one row, broadcast over noise samples) and the corrupted run (one row per sample)."""
    device = next(bridge.parameters()).device
    clean_tokens = pair.clean.to(device)
    clean = run_and_cache(bridge, clean_tokens, names, metric)
    if pair.noise is None:
        corrupted = run_and_cache(bridge, pair.corrupted.to(device), names, metric)
    else:
        corrupted = run_and_cache(bridge, clean_tokens.repeat(pair.noise.samples, 1), names, metric,
                                  [pair.noise.hook(bridge)])
    return clean, corrupted


def target_and_source(clean: Run, corrupted: Run, direction: Direction) -> tuple[Run, Run]:
    """Which run is patched (target) and which gives the activations (source): denoising patches the corrupted run."""
    check_direction(direction)
    if direction == "denoising":
        return corrupted, clean
    samples = corrupted.tokens.shape[0]
    # Noising with noise samples: the clean input is run once per sample, each patched from its own noised run.
    return Run(clean.tokens.repeat(samples, 1), [], clean.cache, clean.metric.expand(samples)), corrupted


def check_layers_heads(bridge: Any, layers: Sequence[int] | None, heads: Sequence[int] | None = None
                       ) -> tuple[list[int], list[int]]:
    """Validated layer and head lists (all when ``None``); a one-line error naming the valid range otherwise."""
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    layers = list(range(n_layers)) if layers is None else list(layers)
    heads = list(range(n_heads)) if heads is None else list(heads)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad or not layers:
        raise ConfigError(f"layer(s) {bad or layers} out of range: this model has layers 0..{n_layers - 1}")
    bad = [h for h in heads if not 0 <= h < n_heads]
    if bad or not heads:
        raise ConfigError(f"head(s) {bad or heads} out of range: this model has heads 0..{n_heads - 1} per layer")
    return layers, heads


def _cell_setter(cells: Sequence[Cell]) -> Callable[..., torch.Tensor]:
    def setter(activation: torch.Tensor, index: Sequence[int], source: torch.Tensor) -> torch.Tensor:
        cell = cells[index[1]]
        activation[:, list(cell.target)] = source[:, list(cell.source)].to(activation.dtype)
        return activation
    return setter


def _head_setter(cells: Sequence[Cell]) -> Callable[..., torch.Tensor]:
    # index = [layer, cell, head]; activation is [batch, pos, head, d_head]
    def setter(activation: torch.Tensor, index: Sequence[int], source: torch.Tensor) -> torch.Tensor:
        cell, head = cells[index[1]], index[2]
        activation[:, list(cell.target), head] = source[:, list(cell.source), head].to(activation.dtype)
        return activation
    return setter


def exact_patch(bridge: Any, target_tokens: torch.Tensor, source_cache: dict[str, torch.Tensor],
                metric: Callable[[torch.Tensor], torch.Tensor], component: str, cells: Sequence[Cell],
                layers: Sequence[int], heads: Sequence[int] | None = None,
                target_hooks: Sequence[Hook] = ()) -> torch.Tensor:
    """Patched metric for every (layer, cell[, head]): shape ``[layers, cells(, heads), batch]``.

    Runs TransformerLens's ``generic_activation_patch`` over an explicit index (one forward per cell). Block
    components take ``(layer, cell)``; ``z`` takes ``(layer, cell, head)`` with ``heads``. ``source_cache`` must hold
    ``hook_name(component, layer)`` for each layer; ``target_hooks`` stay on during every patched forward (noise).
    """
    if not cells:
        raise ConfigError("nothing to patch: no aligned positions")
    if component == "z":
        heads = list(range(int(bridge.cfg.n_heads))) if heads is None else list(heads)
        rows = [(layer, c, h) for layer in layers for c in range(len(cells)) for h in heads]
        index_df = pd.DataFrame(rows, columns=["layer", "pos", "head"])
        setter = _head_setter(cells)
        shape = (len(layers), len(cells), len(heads))
    else:
        index_df = pd.DataFrame([(layer, c) for layer in layers for c in range(len(cells))], columns=["layer", "pos"])
        setter = _cell_setter(cells)
        shape = (len(layers), len(cells))
    missing = [hook_name(component, layer) for layer in layers if hook_name(component, layer) not in source_cache]
    if missing:
        raise ConfigError(f"the source cache lacks {missing[:3]}: cache these hook points before patching")
    with torch.no_grad(), with_hooks(bridge, target_hooks):
        result = tl_patching.generic_activation_patch(
            bridge, target_tokens, source_cache, metric, setter, component, index_df=index_df, reduce="none")
    return result.values.reshape(*shape, -1).float().cpu()


def normalise(values: torch.Tensor, clean: torch.Tensor, corrupted: torch.Tensor) -> torch.Tensor:
    """``(values - corrupted) / (clean - corrupted)`` per sample (last axis): clean = 1, corrupted = 0."""
    gap = clean - corrupted
    if float(gap.abs().min()) < MIN_GAP:
        raise ConfigError(
            f"the clean and corrupted runs give the same verdict log-odds (gap {float(gap.abs().min()):.2g}): "
            "the corruption does not change the metric, so there is nothing to localise; choose another pair")
    return (values - corrupted) / gap


@dataclass
class PatchGrid:
    """Normalised patching results on a layer x column grid (columns: segments, tokens or heads).

    ``values`` is the mean over samples of the normalised patched metric (clean = 1, corrupted = 0);
    ``ci_low``/``ci_high`` the 95% percentile bootstrap interval over noise samples (TransformerLens's
    ``bootstrap_ci``), ``None`` with a single corrupted sample. ``effect`` is what the patch did: recovery
    (denoising: ``values``) or damage (noising: ``1 - values``).
    """

    component: str
    direction: Direction
    method: str  # "exact" | "attribution"
    layers: list[int]
    columns: list[str]
    column_kind: str  # "segment" | "token" | "head"
    values: torch.Tensor
    raw: torch.Tensor  # mean patched log-odds
    clean_metric: float
    corrupted_metric: float
    samples: int
    ci_low: torch.Tensor | None = None
    ci_high: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effect(self) -> torch.Tensor:
        return self.values if self.direction == "denoising" else 1.0 - self.values

    def top(self, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` cells with the largest |effect|, largest first."""
        flat = self.effect.flatten()
        order = torch.argsort(flat.abs(), descending=True)[:k]
        n_cols = len(self.columns)
        out = []
        for i in order.tolist():
            row, col = divmod(i, n_cols)
            item = {"layer": self.layers[row], "column": self.columns[col], "effect": float(flat[i]),
                    "normalised": float(self.values[row, col])}
            if self.ci_low is not None and self.ci_high is not None:
                item["ci95"] = [float(self.ci_low[row, col]), float(self.ci_high[row, col])]
            out.append(item)
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {"component": self.component, "direction": self.direction, "method": self.method,
               "layers": self.layers, "columns": self.columns, "column_kind": self.column_kind,
               "clean_metric": self.clean_metric, "corrupted_metric": self.corrupted_metric,
               "samples": self.samples, "normalised": self.values.tolist(), "raw_log_odds": self.raw.tolist(),
               "top": self.top(10), **self.extra}
        if self.ci_low is not None and self.ci_high is not None:
            out["ci95_low"], out["ci95_high"] = self.ci_low.tolist(), self.ci_high.tolist()
        return out


def summarise(per_sample: torch.Tensor, target: Run, clean: Run, corrupted: Run, *, component: str,
              direction: Direction, method: str, layers: list[int], columns: list[str], column_kind: str,
              seed: int = 0) -> PatchGrid:
    """Normalise a ``[rows, cols, samples]`` tensor of patched log-odds into a :class:`PatchGrid`."""
    samples = per_sample.shape[-1]
    clean_m = clean.metric.expand(samples)
    corr_m = corrupted.metric.expand(samples)
    norm = normalise(per_sample, clean_m, corr_m)
    low = high = None
    if samples > 1:
        low, high = bootstrap_ci(norm, dim=-1, generator=derive_generator(seed, "bootstrap", "mean"))
    return PatchGrid(component, direction, method, layers, columns, column_kind, norm.mean(-1),
                     per_sample.mean(-1), float(clean.metric.mean()), float(corrupted.metric.mean()), samples,
                     low, high)


def patch_grid(bridge: Any, clean: Run, corrupted: Run, metric: VerdictMetric, component: str,
               direction: Direction, cells: Sequence[Cell], column_kind: str, layers: Sequence[int],
               heads: Sequence[int] | None = None) -> PatchGrid:
    """Exact patching of one component over ``layers`` x ``cells`` (block components) or ``layers`` x heads (``z``,
    each head patched at every position of the single cell given)."""
    target, source = target_and_source(clean, corrupted, direction)
    layers = list(layers)
    values = exact_patch(bridge, target.tokens, source.cache, metric, component, cells, layers, heads,
                         target.hooks)
    if component == "z":
        if len(cells) != 1:
            raise ConfigError("per-head grids take one cell (the positions to patch in every head)")
        heads = list(range(int(bridge.cfg.n_heads))) if heads is None else list(heads)
        values, columns, kind = values[:, 0], [f"H{h}" for h in heads], "head"
    else:
        columns, kind = [c.label for c in cells], column_kind
    return summarise(values, target, clean, corrupted, component=component, direction=direction, method="exact",
                     layers=layers, columns=columns, column_kind=kind)
