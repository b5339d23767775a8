"""What to extract: hooks, layers and position rules, and how marked character spans become token positions.

A :class:`Selection` names

- **hooks** by short canonical name: ``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out`` (the bridge's
  ``blocks.{L}.hook_{name}``, the same on every architecture);
- **layers**: a list of block indices, or ``"all"``;
- **positions**: one or more :class:`Position` rules.

A position rule is a reduction (``last`` token, ``mean`` over tokens, ``all`` tokens) over a scope: the whole text
(``last``, ``mean``, ``all``) or a character span the caller marked in it (``marked:last``, ``marked:mean``,
``marked:all``; plain ``marked`` means ``marked:all``). The text scope leaves out a leading BOS token: its
activations are an attention sink with outsized norms and would dominate a mean. Examples: "the last token of the
prompt" is ``last`` on the rendered prompt; "the tokens of the final verdict" is ``marked:mean`` (or ``marked:all``)
on a response whose verdict is marked with :meth:`Item.find` or :meth:`Item.from_markers`.

Rules are small frozen values with a canonical string (``str(rule)``). For keying, a rule applied to one text is
resolved to the tokens it actually reads (:func:`position_key`: ``last@41``, ``mean[1:42]``, ``all[30:42]``), so two
rules that read the same tokens share stored rows, and a different span never reuses a stale row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from common.errors import ConfigError

HOOKS: tuple[str, ...] = ("resid_pre", "resid_post", "attn_out", "mlp_out")
REDUCTIONS: tuple[str, ...] = ("last", "mean", "all")

Reduce = Literal["last", "mean", "all"]


class SelectionError(ConfigError):
    """A hook, layer, position rule or marked span that cannot be used with this model or text."""


def hook_point_name(hook: str, layer: int) -> str:
    """The bridge's canonical hook name, e.g. ``blocks.12.hook_resid_post``."""
    return f"blocks.{layer}.hook_{hook}"


@dataclass(frozen=True)
class Position:
    """A position rule: ``reduce`` over the whole text (``marked=False``) or over the item's marked span."""

    reduce: Reduce = "last"
    marked: bool = False

    def __post_init__(self) -> None:
        if self.reduce not in REDUCTIONS:
            raise SelectionError(f"unknown position reduction {self.reduce!r}; choose one of {REDUCTIONS}")

    def __str__(self) -> str:
        return f"marked:{self.reduce}" if self.marked else self.reduce

    @classmethod
    def parse(cls, value: str | Position) -> Position:
        """``last``, ``mean``, ``all``, ``marked`` (= ``marked:all``), ``marked:last``, ``marked:mean``."""
        if isinstance(value, Position):
            return value
        text = str(value).strip().lower()
        marked = text.startswith("marked")
        reduce = text.split(":", 1)[1] if marked and ":" in text else ("all" if marked else text)
        if reduce not in REDUCTIONS or (marked and text not in ("marked", f"marked:{reduce}")):
            valid = [*REDUCTIONS, "marked", *(f"marked:{r}" for r in REDUCTIONS)]
            raise SelectionError(f"unknown position rule {value!r}; choose one of {valid}")
        return cls(reduce, marked)  # type: ignore[arg-type]

    @property
    def ragged(self) -> bool:
        """True when a text yields a variable number of rows (``all``) rather than one vector."""
        return self.reduce == "all"


LAST = Position("last")
MEAN = Position("mean")
ALL = Position("all")


@dataclass(frozen=True)
class Selection:
    """Hooks x layers x position rules to extract. Strings are accepted and normalised (``hooks="resid_post"``)."""

    hooks: tuple[str, ...] = ("resid_post",)
    layers: tuple[int, ...] | Literal["all"] = "all"
    positions: tuple[Position, ...] = (LAST,)

    def __post_init__(self) -> None:
        hooks = (self.hooks,) if isinstance(self.hooks, str) else tuple(self.hooks)
        unknown = [h for h in hooks if h not in HOOKS]
        if unknown or not hooks:
            raise SelectionError(f"unknown hook(s) {unknown or hooks}; valid hooks: {', '.join(HOOKS)}")
        layers: Any = self.layers
        if isinstance(layers, str):
            if layers != "all":
                raise SelectionError(f"layers must be a list of block indices or 'all', got {layers!r}")
        else:
            layers = (layers,) if isinstance(layers, int) else tuple(layers)
            if not layers or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers):
                raise SelectionError(f"layers must be a non-empty list of integers or 'all', got {self.layers!r}")
            layers = tuple(sorted(set(layers)))
        positions = (self.positions,) if isinstance(self.positions, (str, Position)) else tuple(self.positions)
        if not positions:
            raise SelectionError("a selection needs at least one position rule, e.g. positions=('last',)")
        object.__setattr__(self, "hooks", tuple(dict.fromkeys(hooks)))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "positions", tuple(dict.fromkeys(Position.parse(p) for p in positions)))

    def layer_list(self, n_layers: int) -> tuple[int, ...]:
        """The concrete layers for a model with ``n_layers`` blocks; an out-of-range layer lists the valid ones."""
        if self.layers == "all":
            return tuple(range(n_layers))
        bad = [x for x in self.layers if not 0 <= x < n_layers]
        if bad:
            raise SelectionError(f"layer(s) {bad} out of range: this model has {n_layers} blocks, "
                                 f"valid layers are 0..{n_layers - 1}")
        return tuple(self.layers)

    def columns(self, n_layers: int, hook_names: Iterable[str] | None = None) -> tuple[tuple[str, int], ...]:
        """All (hook, layer) pairs, checked against the model's hook names when given."""
        layers = self.layer_list(n_layers)
        cols = tuple((h, layer) for h in self.hooks for layer in layers)
        if hook_names is not None:
            available = set(hook_names)
            missing = [hook_point_name(h, layer) for h, layer in cols if hook_point_name(h, layer) not in available]
            if missing:
                served = [h for h in HOOKS if hook_point_name(h, 0) in available]
                raise SelectionError(f"this model's bridge has no hook point(s) {missing[:4]}"
                                     f"{' ...' if len(missing) > 4 else ''}; it serves: {', '.join(served)}")
        return cols

    def to_dict(self) -> dict[str, Any]:
        return {"hooks": list(self.hooks), "layers": self.layers if self.layers == "all" else list(self.layers),
                "positions": [str(p) for p in self.positions]}


@dataclass(frozen=True)
class Item:
    """A text to run, optionally with a marked character span ``[start, end)`` for the ``marked:*`` rules."""

    text: str
    span: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise SelectionError(f"an item's text must be a str, got {type(self.text).__name__}")
        if self.span is not None:
            start, end = (int(x) for x in self.span)
            if not 0 <= start < end <= len(self.text):
                raise SelectionError(f"span {self.span} is not a non-empty character range inside the text "
                                     f"(length {len(self.text)}); pass (start, end) with 0 <= start < end <= length")
            object.__setattr__(self, "span", (start, end))

    @classmethod
    def find(cls, text: str, substring: str, occurrence: int = -1) -> Item:
        """Mark an occurrence of ``substring`` in ``text`` (the last one by default, e.g. a final verdict)."""
        starts: list[int] = []
        at = text.find(substring) if substring else -1
        while at >= 0:
            starts.append(at)
            at = text.find(substring, at + 1)
        if not starts:
            raise SelectionError(f"cannot mark {substring!r}: it does not occur in the text ({text[:60]!r}...)")
        try:
            start = starts[occurrence]
        except IndexError:
            raise SelectionError(f"cannot mark occurrence {occurrence} of {substring!r}: "
                                 f"it occurs {len(starts)} time(s)") from None
        return cls(text, (start, start + len(substring)))

    @classmethod
    def from_markers(cls, marked_text: str, open: str = "[[", close: str = "]]") -> Item:
        """Strip one ``open ... close`` marker pair from the text and mark what was between them."""
        start = marked_text.find(open)
        end = marked_text.find(close, start + len(open)) if start >= 0 else -1
        if start < 0 or end < 0 or marked_text.count(open) != 1 or marked_text.count(close) != 1:
            raise SelectionError(f"expected exactly one {open}...{close} marker pair in the text; "
                                 "pass other markers with open=/close= if the text contains these")
        text = marked_text[:start] + marked_text[start + len(open):end] + marked_text[end + len(close):]
        return cls(text, (start, end - len(open)))


def as_items(texts: Sequence[str | Item]) -> list[Item]:
    """Accept plain strings and :class:`Item`s alike."""
    return [t if isinstance(t, Item) else Item(t) for t in texts]


@dataclass(frozen=True)
class ResolvedItem:
    """An item after tokenization: which token sequence it is and which token ranges its rules read.

    ``scope`` is the text scope ``[start, end)`` (without a leading BOS); ``span`` the marked span in tokens.
    """

    text_key: str
    n_tokens: int
    scope: tuple[int, int]
    span: tuple[int, int] | None = None


def text_scope(ids: Sequence[int], bos_token_id: int | None) -> tuple[int, int]:
    """Token range of the text proper: all tokens except a leading BOS."""
    start = 1 if len(ids) > 1 and bos_token_id is not None and ids[0] == bos_token_id else 0
    return start, len(ids)


def span_to_tokens(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> tuple[int, int]:
    """Token range ``[first, last + 1)`` of the tokens whose characters overlap ``span``.

    ``offsets`` is a fast tokenizer's offsets mapping; special tokens (empty offsets) never match. A token that
    straddles a span edge (e.g. a leading space merged into a word) counts as inside.
    """
    start, end = span
    hits = [i for i, (a, b) in enumerate(offsets) if a < b and a < end and b > start]
    if not hits:
        raise SelectionError(f"marked span {span} covers no tokens; mark at least one visible character")
    return hits[0], hits[-1] + 1


def token_range(position: Position, item: ResolvedItem) -> tuple[int, int]:
    """The token range a rule reads on an item; ``marked:*`` on an unmarked item is an error."""
    if not position.marked:
        return item.scope
    if item.span is None:
        raise SelectionError(f"position rule '{position}' needs items with a marked span; build them with "
                             "Item(text, span=(start, end)), Item.find(text, substring) or Item.from_markers(text)")
    return item.span


def position_key(position: Position, item: ResolvedItem) -> str:
    """Canonical string of the tokens a rule reads on one item: ``last@41``, ``mean[1:42]``, ``all[30:42]``."""
    start, end = token_range(position, item)
    if position.reduce == "last":
        return f"last@{end - 1}"
    return f"{position.reduce}[{start}:{end}]"


def parse_position_key(key: str) -> tuple[str, int, int]:
    """Inverse of :func:`position_key`: (reduce, start, end) with ``last@k`` read as ``[k, k + 1)``."""
    if key.startswith("last@"):
        k = int(key[5:])
        return "last", k, k + 1
    reduce, rest = key.split("[", 1)
    start, end = rest.rstrip("]").split(":")
    return reduce, int(start), int(end)


__all__ = [
    "HOOKS", "REDUCTIONS", "Position", "LAST", "MEAN", "ALL", "Selection", "Item", "ResolvedItem", "SelectionError",
    "as_items", "hook_point_name", "position_key", "parse_position_key", "span_to_tokens", "text_scope", "token_range",
]
