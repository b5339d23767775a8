"""Prompt segments and the alignment of a clean/corrupted pair, for patching by token or by segment.

A *segment* is a labelled token span of one tokenized text: a chat turn's opening (``system``, ``user``,
``assistant``), a paragraph (labelled by its heading, e.g. ``Background``, ``Question``, ``Important``), each
reasoning step (``Step 1``, ``Step 2``...) and the ``Final verdict`` line. Labels repeat-proof: a second
``Step 1`` becomes ``Step 1#2``.

An :class:`Alignment` says which positions of one run correspond to which of the other:

- ``tokens``: the two texts tokenize to the same length, so position i matches position i (segments come from the
  clean text and are the same spans in both);
- ``segments``: lengths differ, so segments are matched by label; a matched segment is patchable when it has the
  same token count in both texts. Segments only in one text, or of different lengths, are listed in ``skipped``
  with the reason (e.g. the threat paragraph that the baseline lacks).

A :class:`Cell` is one patch: positions in the run being patched (``target``) and the positions of the source run
whose activations are copied there (``source``). Cells are the columns of a layer x position grid.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from common.errors import ConfigError

Direction = Literal["denoising", "noising"]
DIRECTIONS: tuple[str, ...] = ("denoising", "noising")

# Where a new segment starts: a blank line, a chat-template turn marker, a reasoning step (not the "Step 1: [...]"
# placeholder lines of an answer format, which stay with their paragraph) and the verdict line.
_BOUNDARY = re.compile(
    r"\n[ \t]*\n"
    r"|(?=<\|im_start\|>|<start_of_turn>|<\|start_header_id\|>|<\|start\|>)"
    r"|(?=(?<![\w])Step \d+\s*:(?!\s*\[))"
    r"|(?=(?<![\w])Final verdict\s*:(?!\s*\[))"
)
_ROLE = re.compile(r"^(?:<\|im_start\|>|<start_of_turn>|<\|start_header_id\|>|<\|start\|>)\s*([A-Za-z_]+)")
_HEADING = re.compile(r"^\s*([A-Z][A-Za-z0-9 '\-]{0,40}?)\s*:")
_SPECIAL = re.compile(r"<\|[^|>]*\|>|<s>|</s>|<bos>|<start_of_turn>|<end_of_turn>")


@dataclass(frozen=True)
class Segment:
    """A labelled half-open token span ``[start, end)`` of one tokenized text."""

    label: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Cell:
    """One patch: copy the source run's activations at ``source`` into the patched run at ``target``."""

    label: str
    target: tuple[int, ...]
    source: tuple[int, ...]


@dataclass(frozen=True)
class SegmentPair:
    """A segment present in both texts with the same token count."""

    label: str
    clean: tuple[int, int]
    corrupted: tuple[int, int]
    differs: bool  # some token differs between the two spans


@dataclass
class Alignment:
    """How the positions of a clean and a corrupted run correspond (see the module docstring)."""

    mode: Literal["tokens", "segments"]
    clean_len: int
    corrupted_len: int
    pairs: list[SegmentPair]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    differing_positions: tuple[int, ...] = ()  # token mode only: clean positions whose token differs

    def cells(self, direction: Direction, per: Literal["segment", "token"] = "segment",
              window: int | None = None) -> list[Cell]:
        """The patch cells for ``direction``: per aligned segment, or per token (token alignment only).

        ``window`` limits per-token cells to the last ``window`` positions (the end of the prompt, where the verdict
        is read). Denoising patches the corrupted run from the clean one; noising the clean run from the corrupted.
        """
        check_direction(direction)
        if per == "token":
            if self.mode != "tokens":
                raise ConfigError(
                    f"per-token patching needs texts of equal token length (clean {self.clean_len}, corrupted "
                    f"{self.corrupted_len}); use per-segment positions (--positions segments)")
            start = 0 if window is None else max(0, self.clean_len - window)
            return [Cell(f"{i}", (i,), (i,)) for i in range(start, self.clean_len)]
        cells = []
        for pair in self.pairs:
            c, k = range(*pair.clean), range(*pair.corrupted)
            target, source = (tuple(k), tuple(c)) if direction == "denoising" else (tuple(c), tuple(k))
            cells.append(Cell(pair.label, target, source))
        return cells

    def all_positions(self, direction: Direction) -> Cell:
        """One cell holding every aligned position (for per-head patching over all positions)."""
        cells = self.cells(direction, "segment")
        return Cell("all", tuple(p for c in cells for p in c.target), tuple(p for c in cells for p in c.source))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "clean_len": self.clean_len, "corrupted_len": self.corrupted_len,
                "segments": [{"label": p.label, "clean": list(p.clean), "corrupted": list(p.corrupted),
                              "differs": p.differs} for p in self.pairs],
                "skipped": [{"label": label, "reason": reason} for label, reason in self.skipped]}


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ConfigError(f"unknown patching direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")


def _label(chunk: str) -> str:
    role = _ROLE.match(chunk)
    if role:
        return role.group(1).lower()
    plain = _SPECIAL.sub("", chunk).strip()
    heading = _HEADING.match(plain)
    if heading:
        return heading.group(1).strip()
    words = plain.split()
    return " ".join(words[:3])[:24] if words else "(blank)"


def segment_chars(text: str) -> list[tuple[str, int, int]]:
    """Labelled character spans ``(label, start, end)`` covering ``text`` (labels not yet unique)."""
    cuts = sorted({0, len(text), *(m.end() if m.group(0) else m.start() for m in _BOUNDARY.finditer(text))})
    spans: list[tuple[str, int, int]] = []
    for start, end in zip(cuts, cuts[1:]):
        if not text[start:end].strip() and spans:  # whitespace joins the segment before it
            label, s, _ = spans[-1]
            spans[-1] = (label, s, end)
            continue
        spans.append((_label(text[start:end]), start, end))
    return spans


def _unique(labels: Sequence[str]) -> list[str]:
    seen: Counter[str] = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def tokenize_segments(tokenizer: Any, text: str) -> tuple[list[int], list[Segment]]:
    """Token ids of ``text`` (BOS added unless the text starts with it) and its segments as token spans.

    A token belongs to the segment holding its first character; special tokens the tokenizer adds (BOS) join the
    first segment. Segments left without tokens are dropped.
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bool(bos) and text.startswith(bos))
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    spans = segment_chars(text)
    owner = []
    j = 0
    for start, end in offsets:
        if end == start == 0:  # added special token
            owner.append(0)
            continue
        # Byte-level BPE folds the leading space into the next token: use its last character to place it.
        pos = max(start, end - 1)
        while j + 1 < len(spans) and pos >= spans[j][2]:
            j += 1
        owner.append(j)
    segments: list[tuple[str, int, int]] = []
    for i, span_index in enumerate(owner):
        if segments and segments[-1][0] == span_index:
            segments[-1] = (span_index, segments[-1][1], i + 1)
        else:
            segments.append((span_index, i, i + 1))
    labels = _unique([spans[s][0] for s, _, _ in segments])
    return ids, [Segment(label, a, b) for label, (_, a, b) in zip(labels, segments)]


def align(clean_ids: Sequence[int], clean_segments: Sequence[Segment], corrupted_ids: Sequence[int],
          corrupted_segments: Sequence[Segment]) -> Alignment:
    """Align a pair by token when lengths match, else by segment label; a :class:`ConfigError` when nothing aligns."""
    if len(clean_ids) == len(corrupted_ids):
        differing = tuple(i for i, (a, b) in enumerate(zip(clean_ids, corrupted_ids)) if a != b)
        if not differing:
            raise ConfigError("cannot patch: the clean and corrupted texts tokenize identically (nothing differs)")
        pairs = [SegmentPair(s.label, (s.start, s.end), (s.start, s.end),
                             any(s.start <= i < s.end for i in differing)) for s in clean_segments]
        return Alignment("tokens", len(clean_ids), len(corrupted_ids), pairs, [], differing)
    by_label = {s.label: s for s in corrupted_segments}
    pairs, skipped = [], []
    for seg in clean_segments:
        other = by_label.get(seg.label)
        if other is None:
            skipped.append((seg.label, "only in the clean text"))
        elif other.length != seg.length:
            skipped.append((seg.label, f"{seg.length} tokens in the clean text, {other.length} in the corrupted"))
        else:
            differs = list(clean_ids[seg.start:seg.end]) != list(corrupted_ids[other.start:other.end])
            pairs.append(SegmentPair(seg.label, (seg.start, seg.end), (other.start, other.end), differs))
    clean_labels = {s.label for s in clean_segments}
    skipped += [(s.label, "only in the corrupted text") for s in corrupted_segments if s.label not in clean_labels]
    if not pairs:
        reasons = "; ".join(f"{label}: {why}" for label, why in skipped[:6])
        raise ConfigError(
            f"cannot align the pair: lengths differ ({len(clean_ids)} vs {len(corrupted_ids)} tokens) and no segment "
            f"has the same label and token count in both ({reasons}); make the texts equal in length or keep "
            "matching sections identical")
    return Alignment("segments", len(clean_ids), len(corrupted_ids), pairs, skipped)
