"""Steering and directional ablation on the residual stream, per row of a batch, through bridge hooks.

A batch row carries its own interventions (a list of :class:`Steer` and :class:`Ablate`; empty = unsteered), so an
alpha sweep, a set of control directions and the unsteered baseline run as one batch.

- :class:`Steer` adds ``alpha * norm[layer] * v / |v|`` at ``blocks.{L}.hook_{resid_pre|resid_post}`` for each chosen
  layer, where ``norm[layer]`` is the typical residual norm there (:func:`measure_residual_norms`), so an alpha means
  the same at every layer and in every model. With ``absolute=True`` it adds exactly ``alpha * v``.
- :class:`Ablate` projects the unit direction out (``x - (x.u) u``) at each chosen layer's block input
  (``hook_resid_pre``) and attention and MLP outputs (``hook_attn_out``, ``hook_mlp_out``), as in the
  refusal-direction work; by default at every layer, so no component along ``u`` survives in the residual stream.

Positions: ``all`` real tokens; ``prompt``: the prompt's tokens; ``generated``: every position whose output is a
generated token, i.e. the last prompt token (it predicts the first new token) and each generated token, so the first
new token is steered too. Left padding is never touched.
Hooks see a full sequence on the first call (prompt or uncached recompute) and one token per call after that (KV
cache); a per-hook cursor turns either into absolute positions, so the first generated token is steered and cached
steps stay aligned (tested against decoding that recomputes the full sequence at every step).

Everything is checked by :func:`compile_plan` (width, layer range, finite alpha, position rule, hook name) before
any model work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch

from activations.fused_attention import hf_attention
from activations.selection import hook_point_name
from activations.generation import UNEMBED_IN_HOOK, Generation, _contiguous, generate_detailed, pad_left, row_seed
from activations.models import LoadedModel
from common.errors import ConfigError

POSITION_RULES = ("all", "prompt", "generated")
STEER_HOOKS = ("resid_pre", "resid_post")
ABLATE_HOOKS = ("resid_pre", "attn_out", "mlp_out")


def _vector(v: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(v, dtype=np.float32) if not isinstance(v, torch.Tensor) else v)
    return t.detach().float().reshape(-1).cpu()


@dataclass(frozen=True)
class Steer:
    """Add ``alpha`` (relative to the layer's typical residual norm, or absolute) times the unit ``direction``.

    With ``absolute=True`` the vector added is exactly ``alpha * direction`` (not normalised).
    """

    direction: Any  # (d_model,) array or tensor
    alpha: float
    layers: tuple[int, ...]
    hook: str = "resid_post"
    positions: str = "all"
    absolute: bool = False
    name: str = ""

    def describe(self) -> dict[str, Any]:
        return {"kind": "steer", "name": self.name, "alpha": float(self.alpha), "layers": list(self.layers),
                "hook": self.hook, "positions": self.positions, "absolute": self.absolute}


@dataclass(frozen=True)
class Ablate:
    """Project ``direction`` out of the residual stream at ``layers`` (None = every layer)."""

    direction: Any
    layers: tuple[int, ...] | None = None
    positions: str = "all"
    name: str = ""

    def describe(self) -> dict[str, Any]:
        return {"kind": "ablate", "name": self.name, "layers": None if self.layers is None else list(self.layers),
                "positions": self.positions}


Intervention = Union[Steer, Ablate]


@dataclass(frozen=True)
class ResidualNorms:
    """Typical (mean L2) residual norm per layer at one hook, over the real non-BOS tokens of a reference set."""

    hook: str
    norms: tuple[float, ...]
    n_tokens: int
    n_texts: int
    reference: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"hook": self.hook, "norms": list(self.norms), "n_tokens": self.n_tokens, "n_texts": self.n_texts,
                "reference": self.reference}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResidualNorms:
        return cls(d["hook"], tuple(float(x) for x in d["norms"]), int(d["n_tokens"]), int(d["n_texts"]),
                   d.get("reference", ""))


# ---------------------------------------------------------------------------------------------------------------
# Compilation: user specs -> per-hook-point tensors, validated before any model work


@dataclass
class _HookPlan:
    add: dict[str, torch.Tensor] = field(default_factory=dict)  # rule -> (B, d) added vectors
    ablate: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (rule, (B, d) unit vectors)


@dataclass
class SteeringPlan:
    """Validated interventions for a batch of ``n_rows`` rows, grouped by hook point."""

    n_rows: int
    hooks: dict[str, _HookPlan]
    rows: list[list[dict[str, Any]]]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> SteeringPlan:
        moved = {
            name: _HookPlan({r: m.to(device, dtype) for r, m in hp.add.items()},
                            [(r, u.to(device, dtype)) for r, u in hp.ablate])
            for name, hp in self.hooks.items()
        }
        return SteeringPlan(self.n_rows, moved, self.rows)

    def subset(self, index: Sequence[int]) -> SteeringPlan:
        idx = torch.as_tensor(list(index), dtype=torch.long)
        hooks = {name: _HookPlan({r: m[idx] for r, m in hp.add.items()}, [(r, u[idx]) for r, u in hp.ablate])
                 for name, hp in self.hooks.items()}
        return SteeringPlan(len(idx), hooks, [self.rows[i] for i in index])


def _check_layers(layers: Sequence[int] | int, n_layers: int, what: str) -> tuple[int, ...]:
    layers = (int(layers),) if isinstance(layers, int) else tuple(int(x) for x in layers)
    if not layers:
        raise ConfigError(f"{what}: give at least one layer")
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise ConfigError(f"{what}: layer(s) {bad} out of range; this model has layers 0..{n_layers - 1}")
    return layers


def _check_direction(v: Any, d_model: int, what: str) -> torch.Tensor:
    t = _vector(v)
    if t.numel() != d_model:
        raise ConfigError(f"{what}: direction has width {t.numel()} but the model's residual stream is {d_model} "
                          "wide; it comes from another model: use directions computed on this one")
    if not torch.isfinite(t).all():
        raise ConfigError(f"{what}: direction contains NaN or inf")
    if float(t.norm()) == 0.0:
        raise ConfigError(f"{what}: direction is the zero vector")
    return t


def _check_rule(rule: str, what: str) -> None:
    if rule not in POSITION_RULES:
        raise ConfigError(f"{what}: unknown position rule {rule!r}; choose one of {', '.join(POSITION_RULES)}")


def _finite(x: Any) -> bool:
    try:
        return not isinstance(x, (bool, str)) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def compile_plan(n_layers: int, d_model: int, rows: Sequence[Sequence[Intervention]],
                 norms: ResidualNorms | None = None) -> SteeringPlan:
    """Validate ``rows`` (one list of interventions per batch row) and group them by hook point."""
    if isinstance(rows, (Steer, Ablate)):
        raise ConfigError("rows must be a list of intervention lists, one per batch row (e.g. [[Steer(...)]])")
    n = len(rows)
    hooks: dict[str, _HookPlan] = {}
    described: list[list[dict[str, Any]]] = []

    def add_matrix(name: str, rule: str) -> torch.Tensor:
        plan = hooks.setdefault(name, _HookPlan())
        return plan.add.setdefault(rule, torch.zeros(n, d_model))

    for i, row in enumerate(rows):
        described.append([])
        for item in row:
            if not isinstance(item, (Steer, Ablate)):
                raise ConfigError(f"row {i}: expected Steer or Ablate, got {type(item).__name__}")
            what = f"row {i} {type(item).__name__.lower()} {getattr(item, 'name', '') or ''}".rstrip()
            _check_rule(item.positions, what)
            if isinstance(item, Steer):
                if item.hook not in STEER_HOOKS:
                    raise ConfigError(f"{what}: unknown hook {item.hook!r}; steer at one of {', '.join(STEER_HOOKS)}")
                if not _finite(item.alpha):
                    raise ConfigError(f"{what}: alpha must be a finite number, got {item.alpha!r}")
                layers = _check_layers(item.layers, n_layers, what)
                v = _check_direction(item.direction, d_model, what)
                for layer in layers:
                    if item.absolute:
                        vec = float(item.alpha) * v
                    else:
                        if norms is None:
                            raise ConfigError(f"{what}: alpha is relative to the residual norm; pass norms "
                                              "(measure_residual_norms) or set absolute=True")
                        if norms.hook != item.hook or len(norms.norms) != n_layers:
                            raise ConfigError(f"{what}: residual norms were measured at {norms.hook} over "
                                              f"{len(norms.norms)} layers, not at {item.hook} of this model")
                        vec = float(item.alpha) * norms.norms[layer] * v / v.norm()
                    add_matrix(hook_point_name(item.hook, layer), item.positions)[i] += vec
            elif isinstance(item, Ablate):
                layers = tuple(range(n_layers)) if item.layers is None else _check_layers(item.layers, n_layers, what)
                u = _check_direction(item.direction, d_model, what)
                u = u / u.norm()
                for layer in layers:
                    for hook in ABLATE_HOOKS:
                        plan = hooks.setdefault(hook_point_name(hook, layer), _HookPlan())
                        slot = next((m for r, m in plan.ablate if r == item.positions and not m[i].any()), None)
                        if slot is None:
                            slot = torch.zeros(n, d_model)
                            plan.ablate.append((item.positions, slot))
                        slot[i] = u
            described[-1].append(item.describe())
    return SteeringPlan(n, hooks, described)


def plan_for(model: LoadedModel, rows: Sequence[Sequence[Intervention]],
             norms: ResidualNorms | None = None) -> SteeringPlan:
    return compile_plan(model.n_layers, model.d_model, rows, norms)


# ---------------------------------------------------------------------------------------------------------------
# Hooks


class _PositionTracker:
    """Absolute positions of what a hook sees: a full sequence first (or on an uncached recompute), then 1 token."""

    def __init__(self, prompt_lengths: Sequence[int], width: int, device: torch.device):
        self.lengths = torch.as_tensor(list(prompt_lengths), dtype=torch.long, device=device)
        self.width = int(width)
        self.seen: dict[str, int] = {}

    def masks(self, name: str, s: int) -> dict[str, torch.Tensor]:
        seen = self.seen.get(name, 0)
        start = seen if (s == 1 and seen > 0) else 0
        self.seen[name] = start + s
        pos = torch.arange(start, start + s, device=self.lengths.device)
        first_real = (self.width - self.lengths)[:, None]  # left padding before this
        real = pos[None, :] >= first_real
        prompt = real & (pos < self.width)[None, :]
        # Every position whose output is a generated token: the last prompt token (it predicts the first new token)
        # and each generated token. Without the last prompt token the first new token would go unsteered.
        generated = (pos >= self.width - 1)[None, :].expand_as(real)
        return {"all": real, "prompt": prompt, "generated": generated}


def _make_hook(plan: _HookPlan, tracker: _PositionTracker, name: str) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    def hook(x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        masks = tracker.masks(name, x.shape[1])
        for rule, u in plan.ablate:
            m = masks[rule][..., None].to(x.dtype)
            proj = (x * u[:, None, :]).sum(-1, keepdim=True)
            x = x - m * proj * u[:, None, :]
        for rule, vecs in plan.add.items():
            x = x + masks[rule][..., None].to(x.dtype) * vecs[:, None, :]
        return x

    return hook


def _model_dtype(model: LoadedModel) -> torch.dtype:
    return next(model.bridge.parameters()).dtype


@contextmanager
def steering_hooks(model: LoadedModel, plan: SteeringPlan, prompt_lengths: Sequence[int],
                   width: int | None = None) -> Iterator[None]:
    """Apply ``plan`` inside the context to batches of left-padded prompts of these lengths (padded to ``width``)."""
    if len(prompt_lengths) != plan.n_rows:
        raise ConfigError(f"steering plan has {plan.n_rows} rows but the batch has {len(prompt_lengths)} prompts")
    width = max(prompt_lengths) if width is None else int(width)
    plan = plan.to(model.device, _model_dtype(model))
    tracker = _PositionTracker(prompt_lengths, width, model.device)
    hooks = [(name, _make_hook(hp, tracker, name)) for name, hp in plan.hooks.items()]
    with model.bridge.hooks(fwd_hooks=hooks):
        yield


# ---------------------------------------------------------------------------------------------------------------
# Forward passes and generation


def pad_id(model: LoadedModel) -> int:
    tok = model.tokenizer
    if tok.pad_token_id is not None:
        return int(tok.pad_token_id)
    return int(tok.eos_token_id or 0)


Reducer = Callable[[torch.Tensor, torch.Tensor, list[int]], Any]


def steered_forward(model: LoadedModel, token_rows: Sequence[Sequence[int]], plan: SteeringPlan,
                    reduce: Reducer, *, batch_size: int = 8, progress: bool = False,
                    attention: str = "sdpa", last_only: bool = False) -> list[Any]:
    """Forward ``token_rows`` (row ``i`` with the interventions of plan row ``i``), ``batch_size`` at a time.

    ``reduce(logits (b, W, vocab), mask (b, W), row_indices)`` turns each batch's logits into per-row results (so the
    full logits of a large sweep are never held at once); the results are concatenated in row order.
    ``attention="sdpa"`` runs attention on HF's fused kernel (:mod:`activations.fused_attention`; the steering hooks
    are block-level, so they fire the same), ``"bridge"`` keeps the bridge's own attention. ``last_only``: the logits
    of the last position only (``reduce`` sees ``(b, 1, vocab)``), as HF's ``logits_to_keep=1``: a metric read at the
    next token skips unembedding every prompt position (a fifth of a small model's forward).
    """
    if len(token_rows) != plan.n_rows:
        raise ConfigError(f"steering plan has {plan.n_rows} rows but {len(token_rows)} token rows were given")
    starts = range(0, len(token_rows), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="steered forward", unit="batch")
    out: list[Any] = []
    for start in starts:
        index = list(range(start, min(start + batch_size, len(token_rows))))
        rows = [list(token_rows[i]) for i in index]
        tokens, mask = pad_left(rows, pad_id(model))
        tokens, mask = tokens.to(model.device), mask.to(model.device)
        with torch.no_grad(), attention_context(model, attention), steering_hooks(model, plan.subset(index),
                                                                           [len(r) for r in rows]):
            if last_only:  # the strided last-position slice must be contiguous for the unembedding (see generation)
                with model.bridge.hooks(fwd_hooks=[(UNEMBED_IN_HOOK, _contiguous)]):
                    logits = model.bridge(tokens, attention_mask=mask, return_type="logits", logits_to_keep=1)
            else:
                logits = model.bridge(tokens, attention_mask=mask, return_type="logits")
        out.extend(reduce(logits, mask, index))
    return out


def attention_context(model: LoadedModel, attention: str) -> Any:
    from contextlib import nullcontext

    if attention not in ("sdpa", "bridge"):
        raise ConfigError(f"attention must be 'sdpa' or 'bridge', got {attention!r}")
    return nullcontext() if attention == "bridge" else hf_attention(model.bridge, attention)


def last_logits(logits: torch.Tensor, mask: torch.Tensor, index: list[int]) -> list[torch.Tensor]:
    """Reducer: each row's next-token logits after its last token (left padding: position -1), as float32 on CPU."""
    return list(logits[:, -1, :].float().cpu())


def generate_steered(model: LoadedModel, prompts: Sequence[str], plan: SteeringPlan, *, batch_size: int = 8,
                     seed: int | None = None, seeds: Sequence[int] | None = None, progress: bool = False,
                     attention: str = "sdpa", **kwargs: Any) -> list[Generation]:
    """Generate with row ``i`` of ``plan`` applied to prompt ``i`` at every token (bridge loop, KV cache on).

    ``attention="sdpa"`` (the default, as in :func:`activations.generation.generate_detailed`) runs attention on HF's
    fused kernel during generation (tested to give the same tokens as recomputing the full sequence at each step),
    ``"bridge"`` keeps the bridge's own attention.

    Sampling seeds follow :func:`activations.generation.generate_detailed` (a single ``seed`` seeds prompt ``i``
    with ``row_seed(seed, i)`` over the whole call), so a row's text does not depend on the batch it ran in.
    """
    if isinstance(prompts, str):
        raise ConfigError("generate_steered() takes a sequence of prompts; wrap a single prompt in a list")
    if plan.n_rows != len(prompts):
        raise ConfigError(f"steering plan has {plan.n_rows} rows for {len(prompts)} prompts; give one row each")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    temperature = kwargs.get("temperature", 0.0)
    if seeds is None and seed is not None and temperature > 0:
        seeds = [row_seed(seed, i) for i in range(len(prompts))]
    results: list[Generation] = []
    starts = range(0, len(prompts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="steered generation", unit="batch")
    for start in starts:
        index = list(range(start, min(start + batch_size, len(prompts))))
        chunk = [prompts[i] for i in index]
        lengths = [len(model.encode(p)) for p in chunk]
        with steering_hooks(model, plan.subset(index), lengths):
            results += generate_detailed(model, chunk, batch_size=len(chunk), attention=attention,
                                         seeds=None if seeds is None else [int(seeds[i]) for i in index], **kwargs)
    return results


# ---------------------------------------------------------------------------------------------------------------
# Reference norms


def measure_residual_norms(model: LoadedModel, texts: Sequence[str], *, hook: str = "resid_post",
                           batch_size: int = 8, reference: str = "", attention: str = "sdpa") -> ResidualNorms:
    """Mean L2 norm of the residual stream at ``hook`` of every layer over the real tokens of ``texts``.

    The first token is left out: the BOS position's residual is often an outlier many times larger (an attention
    sink), which would make alpha mean different things in different models.
    """
    if hook not in STEER_HOOKS:
        raise ConfigError(f"unknown hook {hook!r}; measure norms at one of {', '.join(STEER_HOOKS)}")
    if not texts:
        raise ConfigError("measure_residual_norms needs at least one reference text")
    sums = torch.zeros(model.n_layers, dtype=torch.float64)
    count = 0
    rows = [model.encode(t) for t in texts]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        tokens, mask = pad_left(chunk, pad_id(model))
        keep = mask.clone()
        keep[torch.arange(len(chunk)), tokens.shape[1] - torch.tensor([len(r) for r in chunk])] = 0  # first token
        keep = keep.to(model.device).bool()
        seen: dict[int, torch.Tensor] = {}

        def grab(x: torch.Tensor, hook: Any) -> torch.Tensor:
            layer = int(hook.name.split(".")[1])
            seen[layer] = x.float().norm(dim=-1)[keep].double().sum().cpu()
            return x

        names = [hook_point_name(hook, layer) for layer in range(model.n_layers)]
        with torch.no_grad(), attention_context(model, attention), \
                model.bridge.hooks(fwd_hooks=[(n, grab) for n in names]):
            model.bridge(tokens.to(model.device), attention_mask=mask.to(model.device), return_type="logits")
        for layer, total in seen.items():
            sums[layer] += total
        count += int(keep.sum())
    if count == 0:
        raise ConfigError("the reference texts have no tokens after the first; give longer texts")
    return ResidualNorms(hook, tuple(float(x) for x in (sums / count)), count, len(texts), reference)
