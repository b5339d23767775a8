"""Run the HF modules themselves where no hook could fire: the bridge's wrappers cost time at every decode step.

TransformerBridge puts a wrapper module (``BlockBridge``, ``LinearBridge``...) in place of each HF module inside the
HF model, with hook points around it: about 40 extra module calls per layer per forward pass, a tenth of a decode
step's time for SmolLM2 (bridged generation ran at 0.88-0.92x HF's speed in CPU time without this module, 1.00-1.02x
with it; docs/scale-rehearsal-and-speed.md). While :func:`bypass_unhooked` is active, each wrapper that provably does nothing but call its HF module (its kind is known to be a pass-through, see
:func:`_transparent`) and whose whole subtree holds no hook (no forward/backward hook on any hook point or wrapper
in it) is replaced, in its HF parent, by the HF module it wraps; on exit every wrapper is put back. A wrapper with
a hook on it or anywhere inside it stays, and its own pass-through children are still bypassed where unhooked, so a
steering hook on ``blocks.10.hook_resid_post`` keeps block 10's wrapper and every hook fires as before.

The plan is made on entry and checked again by :meth:`Bypass.refresh` (cheap: the hook dicts of the bypassed
modules), which callers run before each forward pass, so a hook added on a bypassed point while the context is
active (e.g. by another hook) puts that wrapper back before the next pass instead of being skipped.
"""

from __future__ import annotations

import copy as pycopy
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import nn


def _block_passes_through(block: Any) -> bool:
    """No ``start_at_layer``/``stop_at_layer`` pending, and an HF forward taking ``**kwargs`` (the wrapper filters
    the kwargs of a fixed signature)."""
    if block.__dict__.get("_stop_at_layer_idx") is not None or block.__dict__.get("_start_at_layer_idx") is not None:
        return False
    params = inspect.signature(block.original_component.forward).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _attention_passes_through(attention: Any) -> bool:
    """Neither hands ``hook_pattern`` into the kernel nor rebuilds relative position biases (T5)."""
    return not (getattr(attention.original_component, "accepts_pattern_fn", False)
                or attention.requires_relative_position_bias)


def _norm_passes_through(norm: Any) -> bool:
    """Runs the HF norm itself, not the wrapper's own Python re-implementation."""
    return bool(norm.use_native_layernorm_autograd or getattr(norm.config, "layer_norm_folding", False))


def _kinds() -> dict[type, tuple[Any, Any]]:
    """Wrapper classes that only call their HF module when no hook is attached: (pass-through forward, the check
    that no state makes this one compute something else)."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge
    from transformer_lens.model_bridge.generalized_components.block import BlockBridge
    from transformer_lens.model_bridge.generalized_components.gated_mlp import GatedMLPBridge
    from transformer_lens.model_bridge.generalized_components.linear import LinearBridge
    from transformer_lens.model_bridge.generalized_components.normalization import NormalizationBridge
    from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
        PositionEmbeddingsAttentionBridge,
    )
    from transformer_lens.model_bridge.generalized_components.rms_normalization import RMSNormalizationBridge

    return {
        BlockBridge: (BlockBridge.forward, _block_passes_through),
        # A projection holding a suppressed hook_in from its container would consume it on its next call.
        LinearBridge: (LinearBridge.forward, lambda m: not m.__dict__.get("_suppress_next_hook_in", False)),
        GatedMLPBridge: (GatedMLPBridge.forward, lambda m: not getattr(m, "_use_processed_weights", False)),
        NormalizationBridge: (NormalizationBridge.forward, _norm_passes_through),
        RMSNormalizationBridge: (NormalizationBridge.forward, _norm_passes_through),
        AttentionBridge: (AttentionBridge.forward, _attention_passes_through),
        # Re-implements attention step by step, unless hf_attention has rebound it to the delegating forward.
        PositionEmbeddingsAttentionBridge: (AttentionBridge.forward, _attention_passes_through),
    }


def _transparent(module: nn.Module, kinds: dict[type, tuple[Any, Any]]) -> bool:
    """Whether ``module`` (with no hook attached) returns exactly what its HF module returns for the same call:
    an exact class of :func:`_kinds` (a subclass may override any step), its pass-through forward in effect, and
    none of the states in which it computes something else."""
    forward, passes_through = kinds.get(type(module), (None, None))
    if forward is None or getattr(module.forward, "__func__", module.forward) is not forward:
        return False
    return bool(passes_through(module))


#: Where torch keeps a module's hooks (HookPoint hooks are torch forward/backward hooks).
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hook_dicts(module: nn.Module) -> list[dict[int, Any]]:
    return [d for d in (getattr(module, attr, None) for attr in _HOOK_DICTS) if d is not None]


def _hooks(module: nn.Module) -> set[int]:
    """Ids of every torch hook on ``module``."""
    return set().union(*_hook_dicts(module))


def _capture_hook_ids(module: nn.Module) -> set[int]:
    """The hooks a BlockBridge puts on its own children to pass tensors between them (plumbing, not user hooks)."""
    return {h.id for h in module.__dict__.get("_capture_hook_handles", [])}


def _unhooked(component: nn.Module) -> list[nn.Module]:
    """The wrappers and hook points inside ``component`` (itself included) if none holds a hook, else ``[]``.

    A block's capture hooks on its own children count as no hook when the block itself is bypassed: they only hand
    tensors to siblings that are bypassed with it (or fire a hook point inside it, which must then hold no hook).
    """
    from transformer_lens.hook_points import HookPoint
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    inside = [m for m in component.modules() if isinstance(m, (GeneralizedComponent, HookPoint))]
    plumbing = set().union(*(_capture_hook_ids(m) for m in inside))
    return inside if all(not (_hooks(m) - plumbing) for m in inside) else []


def _bridge_side(bridge: Any) -> Iterator[nn.Module]:
    """The modules of the bridge's own tree (not entering the HF modules its wrappers hold)."""
    stack = list(bridge._modules.values())
    while stack:
        module = stack.pop()
        if module is None or module is bridge.original_model:
            continue
        yield module
        stack.extend(m for name, m in module._modules.items() if name != "_original_component")


def _global_hooks() -> bool:
    """Hooks registered for every module (``register_module_forward_hook``) fire on wrappers too: bypass nothing."""
    from torch.nn.modules import module as torch_module

    return any(getattr(torch_module, name, None) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks"))


def _one_float_dtype(model: nn.Module) -> bool:
    """A norm wrapper casts its HF module's output to the input dtype: a pass-through only when all weights agree."""
    return len({p.dtype for p in model.parameters() if p.is_floating_point()}) <= 1


@dataclass
class Bypass:
    """The wrappers of ``bridge`` replaced by their HF modules: ``slots`` (HF parent, child name, wrapper), and the
    wrappers and hook points inside them (``watched``), whose only hooks are a block's plumbing."""

    bridge: Any
    slots: list[tuple[nn.Module, str, nn.Module]] = field(default_factory=list)
    watched: list[nn.Module] = field(default_factory=list)
    #: The hook dicts of the watched modules: those empty when bypassed, and the others with the keys they held.
    empty: list[dict[int, Any]] = field(default_factory=list)
    plumbed: list[tuple[dict[int, Any], set[int]]] = field(default_factory=list)

    def apply(self) -> None:
        """Replace every unhooked pass-through wrapper by its HF module."""
        from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

        hf_model = self.bridge.original_model
        if _global_hooks() or not _one_float_dtype(hf_model):
            return
        slots: dict[int, list[tuple[nn.Module, str]]] = {}
        owners: dict[int, tuple[nn.Module, str]] = {}
        for parent in hf_model.modules():
            for name, child in parent._modules.items():
                owners.setdefault(id(child), (parent, name))
                if isinstance(child, GeneralizedComponent) and not isinstance(parent, GeneralizedComponent):
                    slots.setdefault(id(child), []).append((parent, name))
        # Containers the bridge shares with the HF model (its ``blocks`` is the HF ``layers`` list): the HF model
        # gets its own copy of them to edit, so the bridge's tree (``bridge.blocks[0].mlp``...) stays whole.
        shared = {id(m) for m in _bridge_side(self.bridge) if not isinstance(m, GeneralizedComponent)}
        copies: dict[int, nn.Module] = {}

        def editable(parent: nn.Module) -> nn.Module | None:
            if id(parent) not in shared:
                return parent
            if id(parent) not in copies:
                owner, name = owners.get(id(parent), (None, ""))
                if owner is None or id(owner) in shared:
                    return None
                copy = pycopy.copy(parent)
                object.__setattr__(copy, "_modules", dict(parent._modules))
                owner._modules[name] = copies[id(parent)] = copy
                self.slots.append((owner, name, parent))
            return copies[id(parent)]
        kinds = _kinds()
        seen: set[int] = set()
        watched: dict[int, nn.Module] = {}

        def visit(module: nn.Module, bypassed_above: bool) -> None:
            if id(module) in seen:
                return
            seen.add(id(module))
            if isinstance(module, GeneralizedComponent):
                # A block wires its plumbing hooks on its first call; wire them now, so the plan sees them.
                getattr(module, "_maybe_wire_capture_hooks", lambda: None)()
                if not _transparent(module, kinds):
                    return  # not a pass-through: keep it and what it calls (a container may drive its children)
                inside = [] if bypassed_above else _unhooked(module)
                if bypassed_above or inside:
                    for parent, name in slots.get(id(module), []):
                        target = editable(parent)
                        if target is not None:
                            target._modules[name] = module.original_component
                            self.slots.append((target, name, module))
                    watched.update((id(m), m) for m in inside)
                    bypassed_above = True
            for name, child in module._modules.items():
                if name != "_original_component" and child is not None:
                    visit(child, bypassed_above)

        try:
            for child in self.bridge._modules.values():
                if child is not None and child is not hf_model:
                    visit(child, False)
        except BaseException:
            self.restore()
            raise
        self.watched = list(watched.values())
        for hooks in (d for m in self.watched for d in _hook_dicts(m)):
            if hooks:
                self.plumbed.append((hooks, set(hooks)))
            else:
                self.empty.append(hooks)

    def restore(self) -> None:
        """Put every wrapper back in its HF parent."""
        for parent, name, wrapper in reversed(self.slots):
            parent._modules[name] = wrapper
        self.slots.clear()
        self.watched.clear()
        self.empty.clear()
        self.plumbed.clear()

    def refresh(self) -> None:
        """Make the plan again if a hook was added on a bypassed wrapper or hook point since it was made. Run it
        before each forward pass; it only looks at the hook dicts (torch adds hooks to them in place), about
        50 us for SmolLM2's 1,600 bypassed modules."""
        if any(self.empty) or any(hooks.keys() != keys for hooks, keys in self.plumbed):
            self.restore()
            self.apply()


@contextmanager
def bypass_unhooked(bridge: Any) -> Iterator[Bypass]:
    """Inside the block, unhooked pass-through wrappers are replaced by their HF modules (see the module docstring).

    Yields the :class:`Bypass`; call its :meth:`~Bypass.refresh` before each forward pass if hooks may be added
    while the block is active.
    """
    bypass = Bypass(bridge)
    bypass.apply()
    try:
        yield bypass
    finally:
        bypass.restore()


__all__ = ["Bypass", "bypass_unhooked"]
