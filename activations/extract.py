"""Run a model over texts and write the selected activations to an :class:`ActivationStore`, computing only what is
missing.

Steps: tokenize and validate every item first (an empty or over-long text fails before any forward pass); work out
which (text, position, hook, layer) rows the store lacks; run only the texts that lack something, longest first, in
right-padded batches with an attention mask; write each batch as one committed shard. A second run over the same
inputs does no forward pass; a run killed at any point resumes from the last committed batch.

**Why not ``run_with_cache``.** The bridge's ``run_with_cache(names_filter=...)`` keeps every requested activation
for the whole sequence, (batch, tokens, d_model) per hook, and asks HF for attention weights
(``output_attentions=True``). Here the hook functions themselves reduce each activation to the requested positions
(one vector per text for ``last``/``mean``) the moment it is produced, so memory per batch is (batch, d_model) per
hook, and the forward pass stops as soon as the last requested hook has fired: blocks above it, the final norm and
the unembedding (a fifth of SmolLM2's FLOPs) are never run. Hooks are attached through ``bridge.hooks`` on the
canonical hook points, so they behave exactly as ``run_with_cache``'s would.

**Attention.** By default attention runs on HF's fused SDPA kernel instead of the bridge's step-by-step
re-implementation, which materialises every attention pattern in float32 (:mod:`activations.fused_attention`; on
1,700-token SmolLM2 prompts this is 1.85x faster). ``attention="bridge"`` keeps the bridge's own path.

**Padding.** Right padding with a causal mask: a real token attends only to itself and earlier real tokens, and its
position ids are unchanged, so activations at real tokens do not depend on what else is in the batch
(``tests/test_extract.py`` checks single vs padded batch). Dense selections stay on the model's device until the
batch ends (they are small); ``all``-token runs go to host memory as each hook fires.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from common.errors import ConfigError, ToolkitError
from activations.fused_attention import hf_attention
from activations.models import LoadedModel
from activations.selection import (
    Item,
    ResolvedItem,
    Selection,
    SelectionError,
    as_items,
    hook_point_name,
    parse_position_key,
    position_key,
    span_to_tokens,
    text_scope,
)
from activations.store import (
    STORAGE_DTYPES,
    ActivationStore,
    RowBlock,
    StoreMismatchError,
    item_key,
    text_key,
)

log = logging.getLogger(__name__)

Column = tuple[str, int]
ATTENTION = ("sdpa", "bridge")


class InputTextError(ToolkitError, ValueError):
    """A text that cannot be run: empty, or longer than the model's context."""


@dataclass(frozen=True)
class ExtractStats:
    """What one extraction did. A *cell* is one (text, position rule, hook, layer) row of the store."""

    n_items: int
    n_texts: int
    n_texts_computed: int
    n_cells_cached: int
    n_cells_computed: int
    n_forward: int
    n_bytes_written: int
    seconds: float
    attention: str | None = None  # the attention path the forward passes used (None: no forward pass)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Request:
    """One row to compute for one text: a position key, its token range and the columns it lacks."""

    pos_key: str
    reduce: str
    start: int
    end: int
    columns: frozenset[Column]


@dataclass
class _PendingText:
    key: str
    item: Item  # any item with these tokens; re-encoded at batch time so token ids are not all held in memory
    n_tokens: int
    requests: dict[str, _Request]


def _encode(model: LoadedModel, item: Item, index: int) -> tuple[list[int], ResolvedItem]:
    """Token ids and resolved ranges of one item, with the input checks the store relies on."""
    if not item.text.strip():
        raise InputTextError(f"item {index} is empty (or only whitespace); drop it or give it text")
    ids = model.encode(item.text)
    if len(ids) > model.n_ctx:
        raise InputTextError(f"item {index} has {len(ids)} tokens, more than {model.identity.name}'s context of "
                             f"{model.n_ctx}; shorten or split it")
    scope = text_scope(ids, model.tokenizer.bos_token_id)
    span = None
    if item.span is not None:
        if not getattr(model.tokenizer, "is_fast", False):
            raise SelectionError("marked spans need a fast tokenizer (one with an offsets mapping); "
                                 f"{type(model.tokenizer).__name__} has none")
        bos = model.tokenizer.bos_token
        add_special = not (bool(bos) and item.text.startswith(bos))  # as LoadedModel.encode decides
        encoded = model.tokenizer(item.text, add_special_tokens=add_special, return_offsets_mapping=True)
        if list(encoded["input_ids"]) != list(ids):
            raise SelectionError(f"item {index}: the tokenizer's offsets disagree with LoadedModel.encode")
        try:
            span = span_to_tokens(encoded["offset_mapping"], item.span)
        except SelectionError as exc:
            raise SelectionError(f"item {index}: {exc}") from None
    return ids, ResolvedItem(text_key(model.identity.key, ids), len(ids), scope, span)


def resolve_items(model: LoadedModel, items: Sequence[str | Item]) -> list[ResolvedItem]:
    """Tokenize and validate items (no forward pass): their text keys and token ranges."""
    return [_encode(model, item, i)[1] for i, item in enumerate(as_items(items))]


def _open_store(model: LoadedModel, store: ActivationStore | str | os.PathLike) -> ActivationStore:
    if isinstance(store, ActivationStore):
        if store.model.get("key") != model.identity.key:
            # Re-open to get the full mismatch message (it names both models).
            return ActivationStore.open(store.root, model.identity)
        return store
    return ActivationStore.open(store, model.identity)


def _plan(store: ActivationStore, items: list[Item], resolved: list[ResolvedItem], selection: Selection,
          columns: tuple[Column, ...], dtype: str) -> tuple[dict[str, _PendingText], int, int]:
    """Which rows each text lacks; returns (pending texts, cells cached, cells to compute)."""
    pending: dict[str, _PendingText] = {}
    seen: set[tuple[str, str]] = set()
    cached = missing = 0
    for item, res in zip(items, resolved):
        for position in selection.positions:
            pk = position_key(position, res)
            if (res.text_key, pk) in seen:
                continue
            seen.add((res.text_key, pk))
            lacking = frozenset(c for c in columns if not store.has((res.text_key, pk), *c, dtype))
            cached += len(columns) - len(lacking)
            missing += len(lacking)
            if lacking:
                text = pending.setdefault(res.text_key, _PendingText(res.text_key, item, res.n_tokens, {}))
                reduce, start, end = parse_position_key(pk)
                text.requests[pk] = _Request(pk, reduce, start, end, lacking)
    return pending, cached, missing


class _Captured(Exception):
    """Raised by the last hook to fire: everything asked for is captured, the rest of the forward is skipped."""


class _Block:
    """Rows of one batch sharing a reduction and a column set, with their index tensors for selecting in a hook."""

    def __init__(self, reduce: str, rows: list[tuple[int, str, _Request]], columns: frozenset[Column], width: int):
        self.reduce, self.rows, self.columns = reduce, rows, columns
        self.batch_index = torch.tensor([b for b, _, _ in rows])
        # One row per text in batch order (the usual case) needs no gather of the whole (batch, tokens, d) tensor.
        self.whole_batch = self.batch_index.tolist() == list(range(len(rows)))
        lengths = [r.end - r.start for _, _, r in rows]
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64)
        if reduce == "last":
            self.token_index = torch.tensor([r.end - 1 for _, _, r in rows])
        elif reduce == "mean":
            self.weights = torch.zeros(len(rows), width)
            for i, (_, _, r) in enumerate(rows):
                self.weights[i, r.start:r.end] = 1.0 / (r.end - r.start)
        else:
            self.flat_batch = torch.cat([torch.full((r.end - r.start,), b) for b, _, r in rows])
            self.flat_token = torch.cat([torch.arange(r.start, r.end) for _, _, r in rows])
        self._on: dict[torch.device, dict[str, torch.Tensor]] = {}

    def _index(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._on:  # a model split over GPUs hands each layer's activations on its own device
            names = {"last": ("batch_index", "token_index"), "mean": ("batch_index", "weights"),
                     "all": ("flat_batch", "flat_token")}[self.reduce]
            self._on[device] = {n: getattr(self, n).to(device) for n in names}
        return self._on[device]

    def select(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        idx = self._index(x.device)
        if self.reduce == "last":
            return x[idx["batch_index"], idx["token_index"]].to(dtype)
        if self.reduce == "mean":
            # Weighted sum in float32 over the row's own text (padding has weight 0).
            rows = x if self.whole_batch and x.shape[0] == len(self.rows) else x[idx["batch_index"]]
            return torch.bmm(idx["weights"].unsqueeze(1), rows.float()).squeeze(1).to(dtype)
        return x[idx["flat_batch"], idx["flat_token"]].to(device="cpu", dtype=dtype)


def _run_batch(model: LoadedModel, texts: list[_PendingText], hook_points: dict[Column, str],
               dtype: torch.dtype) -> list[RowBlock]:
    """One forward pass over ``texts``; returns their rows grouped into blocks, on the CPU."""
    ids = []
    for text in texts:
        token_ids = model.encode(text.item.text)
        if text_key(model.identity.key, token_ids) != text.key:
            raise ToolkitError(f"the tokenizer gave different ids for the same text on a second call "
                               f"({text.item.text[:40]!r}...); tokenization must be deterministic")
        ids.append(token_ids)
    width = max(len(x) for x in ids)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for b, x in enumerate(ids):
        input_ids[b, :len(x)] = torch.tensor(x)
        mask[b, :len(x)] = 1

    grouped: dict[tuple[str, frozenset[Column]], list[tuple[int, str, _Request]]] = {}
    for b, text in enumerate(texts):
        for request in text.requests.values():
            grouped.setdefault((request.reduce, request.columns), []).append((b, text.key, request))
    blocks = [_Block(reduce, rows, cols, width) for (reduce, cols), rows in grouped.items()]
    names: dict[str, list[Column]] = {}
    for column in sorted({c for block in blocks for c in block.columns}):
        names.setdefault(hook_points[column], []).append(column)
    captured: dict[tuple[int, Column], torch.Tensor] = {}
    fired: set[str] = set()

    def make_hook(name: str, columns: list[Column]):
        def hook_fn(tensor: Any, *, hook: Any) -> Any:
            x = tensor[0] if isinstance(tensor, tuple) else tensor
            if x.ndim != 3 or tuple(x.shape[:2]) != tuple(input_ids.shape) or x.shape[2] != model.d_model:
                raise ToolkitError(f"{name} gave an activation of shape {tuple(x.shape)}, expected (batch, tokens, "
                                   f"d_model) = ({len(ids)}, {width}, {model.d_model}); this hook cannot be stored")
            for i, block in enumerate(blocks):
                for column in columns:
                    if column in block.columns:
                        captured[(i, column)] = block.select(x, dtype)
            fired.add(name)
            if len(fired) == len(names):
                raise _Captured
            return tensor

        return hook_fn

    device = model.device
    with torch.inference_mode(), model.bridge.hooks(fwd_hooks=[(n, make_hook(n, cs)) for n, cs in names.items()]):
        try:
            model.bridge(input_ids.to(device), attention_mask=mask.to(device), use_cache=False)
        except _Captured:
            pass
    if fired != set(names):
        raise ToolkitError(f"hook point(s) {sorted(set(names) - fired)} never fired on {model.identity.name}; "
                           "their activations cannot be extracted")
    out = []
    for i, block in enumerate(blocks):
        tensors = {}
        for column in block.columns:
            tensor = captured.pop((i, column)).to("cpu")
            if dtype == torch.float16 and torch.isinf(tensor).any():
                raise ToolkitError(f"activations at {hook_point_name(*column)} exceed float16's range (65504); "
                                   "extract with storage_dtype='bfloat16' or 'float32'")
            tensors[column] = tensor
        out.append(RowBlock(rows=[(key, r.pos_key) for _, key, r in block.rows], tensors=tensors,
                            ragged=block.reduce == "all", offsets=block.offsets if block.reduce == "all" else None))
    return out


def extract(
    model: LoadedModel,
    items: Sequence[str | Item],
    selection: Selection,
    store: ActivationStore | str | os.PathLike,
    *,
    batch_size: int = 8,
    storage_dtype: str = "float32",
    attention: str = "sdpa",
    progress: bool = True,
) -> ExtractStats:
    """Make sure ``store`` holds ``selection`` for every item, computing only the missing rows.

    ``store`` is an :class:`ActivationStore` or a directory (created if new; a store of another model raises
    :class:`StoreMismatchError`). ``storage_dtype`` is float32, float16 or bfloat16 (part of each row's key).
    ``attention``: ``"sdpa"`` runs attention on HF's fused kernel where the architecture allows
    (:mod:`activations.fused_attention`), ``"bridge"`` keeps the bridge's step-by-step attention.
    """
    start_time = time.perf_counter()
    if storage_dtype not in STORAGE_DTYPES:
        raise SelectionError(f"unknown storage dtype {storage_dtype!r}; choose one of {sorted(STORAGE_DTYPES)}")
    if attention not in ATTENTION:
        raise ConfigError(f"unknown attention {attention!r}; choose one of {ATTENTION}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SelectionError(f"batch_size must be a positive integer, got {batch_size!r}")
    items = as_items(items)
    if not items:
        raise InputTextError("no texts given: pass at least one text")
    hook_dict = model.bridge.hook_dict
    columns = selection.columns(model.n_layers, hook_dict.keys())
    hook_points = {c: hook_dict[hook_point_name(*c)].name for c in columns}
    resolved = resolve_items(model, items)  # all input errors surface here, before any work
    for res in resolved:
        for position in selection.positions:
            position_key(position, res)  # a marked rule on an unmarked item fails before the store is touched
    store = _open_store(model, store)
    records = {item_key(item): res for item, res in zip(items, resolved)}

    pending, cached, missing = _plan(store, items, resolved, selection, columns, storage_dtype)
    n_forward = n_bytes = 0
    texts_done = 0
    used = None
    new_records = any(store.resolved_item(item) != res for item, res in zip(items, resolved))
    if pending or new_records:
        with store.writer() as writer:
            # Plan again under the lock: another process may have committed some of these rows meanwhile.
            pending, cached, missing = _plan(store, items, resolved, selection, columns, storage_dtype)
            order = sorted(pending.values(), key=lambda t: -t.n_tokens)  # longest first: less padding, OOM early
            batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
            log.info("%s: %d item(s), %d text(s); %d cell(s) stored, computing %d text(s) in %d batch(es)",
                     store.root, len(items), len({r.text_key for r in resolved}), cached, len(order), len(batches))
            by_key = {}
            for item, res in zip(items, resolved):
                by_key.setdefault(res.text_key, {})[item_key(item)] = res
            bar = _progress(len(order), progress, model.identity.name)
            fused = hf_attention(model.bridge, attention) if attention != "bridge" and order else nullcontext("bridge")
            try:
                with fused as used:
                    log.debug("%s: attention runs on %s", model.identity.name, used)
                    for batch in batches:
                        blocks = _run_batch(model, batch, hook_points, STORAGE_DTYPES[storage_dtype])
                        n_forward += 1
                        batch_items = {k: v for t in batch for k, v in by_key[t.key].items()}
                        writer.write(blocks, dtype=storage_dtype, items=batch_items)
                        texts_done += len(batch)
                        bar.update(len(batch))
                        del blocks
            finally:
                bar.close()
            writer.write_items(records)
            n_bytes = writer.n_bytes_written
    return ExtractStats(
        n_items=len(items), n_texts=len({r.text_key for r in resolved}), n_texts_computed=texts_done,
        n_cells_cached=cached, n_cells_computed=missing, n_forward=n_forward,
        n_bytes_written=n_bytes, seconds=time.perf_counter() - start_time, attention=used if n_forward else None)


def _progress(total: int, enabled: bool, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="text", desc=f"extract {name}", disable=not enabled or total == 0)


def extract_and_load(
    model: LoadedModel,
    items: Sequence[str | Item],
    selection: Selection,
    store_dir: str | os.PathLike,
    *,
    labels: Sequence[Any] | np.ndarray | None = None,
    batch_size: int = 8,
    storage_dtype: str = "float32",
    attention: str = "sdpa",
    progress: bool = True,
) -> Any:
    """Compute what is missing, then return an :class:`~activations.dataset.ActivationView` over ``items``.

    ``view.matrix(hook, layer, position)`` then reads one (n, d_model) matrix at a time from disk.
    """
    from activations.dataset import ActivationView

    store = _open_store(model, store_dir)
    stats = extract(model, items, selection, store, batch_size=batch_size, storage_dtype=storage_dtype,
                    attention=attention, progress=progress)
    return ActivationView(store, items, labels=labels, storage_dtype=storage_dtype, stats=stats)


__all__ = ["extract", "extract_and_load", "resolve_items", "ExtractStats", "InputTextError", "StoreMismatchError"]
