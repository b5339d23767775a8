"""Clean/corrupted pairs for patching: from two texts, from trials of a run, by symmetric token replacement, or by
Gaussian noise on named segments.

Symmetric token replacement (STR, Zhang & Nanda 2023) is the in-distribution corruption the patching literature
recommends: swap a few words for others of the same token length, so every position keeps its meaning except the
swapped ones. Gaussian noise (ROME) is the option when no natural counterfactual exists (e.g. "which parts of this
one trial's reasoning carry the verdict?": noise one reasoning step).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from common.errors import ConfigError
from common.jsonl import read_jsonl
from interventions.patching import GaussianNoise, PatchPair
from interventions.segments import Alignment, SegmentPair, align, tokenize_segments

#: Where the response is cut: the verdict is read as the next token after this marker.
VERDICT_MARKER = re.compile(r"final verdict\s*:", re.I)
TRANSCRIPTS = "transcripts.jsonl"


def text_pair(tokenizer: Any, clean: str, corrupted: str, corruption: str = "corrupted text given") -> PatchPair:
    """A pair from two texts, aligned by token when they tokenize to the same length, else by segment."""
    clean_ids, clean_segs = tokenize_segments(tokenizer, clean)
    corr_ids, corr_segs = tokenize_segments(tokenizer, corrupted)
    alignment = align(clean_ids, clean_segs, corr_ids, corr_segs)
    return PatchPair(torch.tensor([clean_ids]), torch.tensor([corr_ids]), alignment, corruption,
                     clean_text=clean, corrupted_text=corrupted)


def parse_replacements(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``OLD=NEW`` strings as pairs; a one-line error for a malformed one."""
    out = []
    for spec in specs:
        old, sep, new = spec.partition("=")
        if not sep or not old:
            raise ConfigError(f"--replace {spec!r}: write OLD=NEW (e.g. --replace ' sentient= mobile')")
        out.append((old, new))
    return out


def symmetric_replace(tokenizer: Any, text: str, replacements: Sequence[tuple[str, str]]) -> PatchPair:
    """The STR pair: ``text`` against ``text`` with each ``old`` replaced by ``new`` (every occurrence).

    Each replacement must keep the token count, so the pair aligns token by token; otherwise the error says how
    many tokens each side has.
    """
    if not replacements:
        raise ConfigError("symmetric token replacement needs at least one OLD=NEW replacement")
    corrupted = text
    for old, new in replacements:
        if old not in corrupted:
            raise ConfigError(f"replacement {old!r}={new!r}: {old!r} does not occur in the clean text")
        corrupted = corrupted.replace(old, new)
    n_clean = len(tokenize_segments(tokenizer, text)[0])
    n_corr = len(tokenize_segments(tokenizer, corrupted)[0])
    if n_clean != n_corr:
        detail = ", ".join(f"{old!r} -> {tokenizer.tokenize(old)}, {new!r} -> {tokenizer.tokenize(new)}"
                           for old, new in replacements)
        raise ConfigError(f"symmetric token replacement must keep the token count, but it goes {n_clean} -> {n_corr} "
                          f"({detail}); choose words of equal token length")
    desc = "symmetric token replacement: " + ", ".join(f"{old!r} -> {new!r}" for old, new in replacements)
    return text_pair(tokenizer, text, corrupted, desc)


def noise_pair(tokenizer: Any, text: str, segment_labels: Sequence[str], *, scale: float = 3.0, samples: int = 8,
               seed: int = 0) -> PatchPair:
    """The Gaussian-noise pair: ``text`` against itself with noised embeddings on the named segments."""
    ids, segments = tokenize_segments(tokenizer, text)
    by_label = {s.label: s for s in segments}
    unknown = [label for label in segment_labels if label not in by_label]
    if unknown or not segment_labels:
        raise ConfigError(f"noise segment(s) {unknown or '(none)'} not in the text; its segments are "
                          f"{[s.label for s in segments]}")
    positions = tuple(p for label in segment_labels for p in range(by_label[label].start, by_label[label].end))
    noise = GaussianNoise(positions, scale=scale, samples=samples, seed=seed)
    pairs = [SegmentPair(s.label, (s.start, s.end), (s.start, s.end), s.label in segment_labels) for s in segments]
    alignment = Alignment("tokens", len(ids), len(ids), pairs, [], positions)
    tensor = torch.tensor([ids])
    return PatchPair(tensor, tensor.clone(), alignment, noise.describe() + f" on {list(segment_labels)}", noise,
                     clean_text=text, corrupted_text=text)


def cut_at_verdict(text: str, where: str = "text") -> str:
    """``text`` up to and including its last ``Final verdict:`` (the verdict is the next token)."""
    matches = list(VERDICT_MARKER.finditer(text))
    if not matches:
        raise ConfigError(f"{where} has no 'Final verdict:' to read the verdict at; patch a response that states one")
    return text[:matches[-1].end()]


def load_trial_text(run_dir: str | os.PathLike, trial_id: str) -> str:
    """A trial's prompt plus its response up to the verdict (``prompt_text + response`` cut after the marker)."""
    path = Path(run_dir)
    path = path / TRANSCRIPTS if path.is_dir() else path
    if not path.exists():
        raise ConfigError(f"--trials {run_dir}: no {TRANSCRIPTS}; pass a trials run directory")
    rows = {row.get("id"): row for row in read_jsonl(path)}
    if trial_id not in rows:
        some = ", ".join(sorted(str(k) for k in rows)[:5])
        raise ConfigError(f"trial {trial_id!r} is not in {path} ({len(rows)} trials, e.g. {some})")
    row = rows[trial_id]
    return row["prompt_text"] + cut_at_verdict(row["response"], f"the response of trial {trial_id}")
