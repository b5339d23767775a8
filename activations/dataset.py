"""Reading stored activations back as scikit-learn-ready matrices, one (hook, layer, position rule) at a time.

An :class:`ActivationView` is a list of items (texts, optionally with marked spans) over a store, with optional
labels. ``view.matrix(hook, layer, position)`` streams one (n, d_model) matrix from disk, touching only that layer's
tensors; ``view.layer_reader(hook, position)`` is a picklable ``layer -> X`` callable for layer sweeps (e.g.
``probes.sweep.layer_sweep``). Items are looked up by the record the extraction wrote, so reading needs neither the
model nor its tokenizer: :func:`load_activations` opens a store by directory alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from activations.selection import (
    HOOKS,
    Item,
    Position,
    SelectionError,
    as_items,
    parse_position_key,
    position_key,
)
from activations.store import ActivationStore, MissingActivationsError


@dataclass(frozen=True)
class ActivationMatrix:
    """One (hook, layer, position rule) over a view's items.

    ``X`` is ``(n_rows, d_model)``: one row per item for ``last``/``mean``; for ``all`` one row per token, with
    ``groups`` the item index of each row (use it for grouped cross-validation) and ``tokens`` its token position
    (-1 for ``mean`` rows, which span several tokens). ``y`` repeats each item's label over its rows.
    """

    X: np.ndarray
    y: np.ndarray | None
    groups: np.ndarray
    tokens: np.ndarray
    hook: str
    layer: int
    position: str
    storage_dtype: str | None
    model: dict[str, Any]

    @property
    def n_items(self) -> int:
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    @property
    def d_model(self) -> int:
        return int(self.X.shape[1])


@dataclass(frozen=True)
class LayerReader:
    """A picklable ``layer -> (n, d_model)`` array reader for one hook and position rule."""

    view: ActivationView
    hook: str = "resid_post"
    position: str = "last"

    def __call__(self, layer: int) -> np.ndarray:
        return self.view.matrix(self.hook, layer, self.position).X


class ActivationView:
    """Items (and labels) over an :class:`ActivationStore`; reads matrices lazily, one layer at a time."""

    def __init__(self, store: ActivationStore, items: Sequence[str | Item], *,
                 labels: Sequence[Any] | np.ndarray | None = None, storage_dtype: str | None = None,
                 stats: Any = None) -> None:
        self.store = store
        self.items = as_items(items)
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None and len(self.labels) != len(self.items):
            raise SelectionError(f"{len(self.labels)} labels for {len(self.items)} items; pass one label per item")
        self.storage_dtype = storage_dtype
        self.stats = stats
        self.resolved = []
        for i, item in enumerate(self.items):
            res = store.resolved_item(item)
            if res is None:
                raise MissingActivationsError(
                    f"item {i} ({item.text[:40]!r}...) was never extracted into {store.root}; run "
                    "activations.extract.extract_and_load with the model first")
            self.resolved.append(res)

    def __len__(self) -> int:
        return len(self.items)

    def _rows(self, position: Position) -> list[tuple[str, str]]:
        return [(res.text_key, position_key(position, res)) for res in self.resolved]

    def matrix(self, hook: str, layer: int, position: str | Position = "last", *,
               dtype: Any = np.float32) -> ActivationMatrix:
        """The (n, d_model) matrix of one hook, layer and position rule (labels and groups aligned)."""
        if hook not in HOOKS:
            raise SelectionError(f"unknown hook {hook!r}; valid hooks: {', '.join(HOOKS)}")
        n_layers = int(self.store.model["n_layers"])
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
            raise SelectionError(f"layer {layer!r} out of range: valid layers are 0..{n_layers - 1}")
        rule = Position.parse(position)
        rows = self._rows(rule)
        X = self.store.read(rows, hook, int(layer), dtype=self.storage_dtype, out_dtype=dtype)
        if rule.reduce == "all":
            spans = [_span(key) for _, key in rows]
            lengths = np.array([end - start for start, end in spans])
            tokens = np.concatenate([np.arange(start, end) for start, end in spans])
        else:
            lengths = np.ones(len(rows), dtype=np.int64)
            tokens = np.array([_span(key)[0] if rule.reduce == "last" else -1 for _, key in rows])
        groups = np.repeat(np.arange(len(rows)), lengths)
        y = None if self.labels is None else np.repeat(self.labels, lengths, axis=0)
        return ActivationMatrix(X, y, groups, tokens, hook, int(layer), str(rule), self.storage_dtype,
                                dict(self.store.model))

    def layers(self, hook: str = "resid_post", position: str | Position = "last",
               layers: Sequence[int] | None = None) -> Iterator[ActivationMatrix]:
        """Matrices for each layer in turn (all stored layers by default), one in memory at a time."""
        for layer in self.available_layers(hook, position) if layers is None else layers:
            yield self.matrix(hook, layer, position)

    def layer_reader(self, hook: str = "resid_post", position: str | Position = "last") -> LayerReader:
        return LayerReader(self, hook, str(Position.parse(position)))

    def to_dataset(self, hook: str = "resid_post", layers: Sequence[int] | None = None,
                   position: str | Position = "last") -> Any:
        """The view as a Hugging Face :class:`datasets.Dataset`, for sharing (``save_to_disk``, ``push_to_hub``).

        One row per matrix row: ``item`` (index into the view), ``text``, ``token`` (-1 for ``mean`` rows),
        ``label`` (when the view has labels) and one float column per layer, ``<hook>.<layer>`` (d_model values, in
        the store's precision widened to float32). ``info.description`` records the model identity, hook, position
        rule and storage dtype as JSON, so a reader knows which weights the numbers came from. Layers default to
        every layer stored for this hook and position.
        """
        import datasets  # heavy (pyarrow); only needed here

        chosen = self.available_layers(hook, position) if layers is None else [int(layer) for layer in layers]
        if not chosen:
            raise SelectionError(f"no layer of hook {hook!r} at position {str(Position.parse(position))!r} is stored "
                                 "for every item of this view; extract them first")
        columns: dict[str, Any] = {}
        first: ActivationMatrix | None = None
        for matrix in self.layers(hook, position, chosen):
            if first is None:
                first = matrix
                columns["item"] = matrix.groups.astype(np.int64)
                columns["text"] = [self.items[i].text for i in matrix.groups]
                columns["token"] = matrix.tokens.astype(np.int64)
                if matrix.y is not None:
                    columns["label"] = matrix.y.tolist()
            columns[f"{hook}.{matrix.layer}"] = list(np.asarray(matrix.X, dtype=np.float32))
        assert first is not None
        meta = {"model": first.model, "hook": hook, "position": first.position, "layers": chosen,
                "storage_dtype": first.storage_dtype, "d_model": first.d_model}
        features = {name: datasets.Value("int64") for name in ("item", "token")}
        features["text"] = datasets.Value("string")
        for layer in chosen:
            features[f"{hook}.{layer}"] = datasets.Sequence(datasets.Value("float32"), length=first.d_model)
        if "label" in columns:
            features["label"] = datasets.Dataset.from_dict({"label": columns["label"]}).features["label"]
        ordered = {name: columns[name] for name in ("item", "text", "token", "label") if name in columns}
        ordered.update({f"{hook}.{layer}": columns[f"{hook}.{layer}"] for layer in chosen})
        info = datasets.DatasetInfo(description=json.dumps(meta, sort_keys=True, default=str),
                                    features=datasets.Features({name: features[name] for name in ordered}))
        return datasets.Dataset.from_dict(ordered, info=info)

    def available_layers(self, hook: str = "resid_post", position: str | Position = "last") -> list[int]:
        """Layers at which every item has this hook and position rule stored."""
        rows = self._rows(Position.parse(position))
        return [layer for layer in range(int(self.store.model["n_layers"]))
                if all(self.store.has(row, hook, layer, self.storage_dtype) for row in rows)]


def _span(key: str) -> tuple[int, int]:
    _, start, end = parse_position_key(key)
    return start, end


def load_activations(store_dir: str | os.PathLike, items: Sequence[str | Item], *,
                     labels: Sequence[Any] | np.ndarray | None = None,
                     storage_dtype: str | None = None) -> ActivationView:
    """A view over an existing store, without the model: items must have been extracted into it before."""
    return ActivationView(ActivationStore.open(store_dir, create=False), items, labels=labels,
                          storage_dtype=storage_dtype)


__all__ = ["ActivationMatrix", "ActivationView", "LayerReader", "load_activations"]
