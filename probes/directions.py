"""Save and load probe directions for steering / patching experiments.

A direction is stored as a pair: ``<path>.safetensors`` (tensor ``"direction"``, float32, shape (d,)) and
``<path>.json`` (everything else). Both are written to temporary files and moved into place with ``os.replace``,
the JSON last, so a reader never sees a half-written pair; the JSON records the SHA-256 of the vector so a pair
that got out of sync is detected. Loading checks that the direction was trained on the expected model: a direction
read in the residual stream of one model means nothing in another's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from common.errors import ToolkitError
from common.fileio import atomic_write_bytes

__all__ = [
    "Direction",
    "DirectionError",
    "DirectionFileError",
    "DirectionMismatchError",
    "save_direction",
    "load_direction",
    "save_directions",
    "load_directions",
    "data_fingerprint",
    "direction_filename",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1
_TENSOR = "direction"


class DirectionError(ToolkitError):
    """Base class for direction I/O errors."""


class DirectionFileError(DirectionError):
    """A direction file is missing, unreadable, or inconsistent with its pair."""


class DirectionMismatchError(DirectionError):
    """The stored direction was trained for a different model (or dimension) than the caller expects."""


@dataclass
class Direction:
    """A probe direction in one model's activation space at one hook.

    ``model_identity``: dict describing the model; if it has a ``"key"`` entry (e.g. ``"HuggingFaceTB/SmolLM2-135M@rev"``)
    that alone decides compatibility, else the whole dict must match. ``bias``: the probe's intercept for the raw
    (unnormalised) vector, if any. ``scale``: magnitudes needed to turn a unit direction into a steering vector,
    e.g. ``{"diff_of_means_norm": ..., "mean_activation_norm": ..., "projection_std": ...}``.
    """

    vector: np.ndarray
    concept: str
    layer: int
    hook: str
    estimator: str
    model_identity: dict
    metrics: dict = field(default_factory=dict)
    data_hash: str = ""
    bias: float | None = None
    scale: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.vector = np.asarray(self.vector, dtype=np.float32).reshape(-1)

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    def metadata(self) -> dict:
        meta = {k: v for k, v in asdict(self).items() if k != "vector"}
        meta.update(format_version=FORMAT_VERSION, dim=self.dim, vector_sha256=_sha256(self.vector))
        return meta


def _sha256(v: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(v, dtype="<f4").tobytes()).hexdigest()


def data_fingerprint(*arrays, extra: str = "") -> str:
    """SHA-256 over arrays (shape, dtype and bytes; strings via their repr) to record which data trained a probe."""
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        a = np.asarray(a)
        h.update(f"{a.shape}|{a.dtype.str}|".encode())
        h.update(np.ascontiguousarray(a).tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if hasattr(x, "to_dict"):
        return _jsonable(x.to_dict())
    return x


def save_direction(direction: Direction, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` and ``<path>.json`` atomically; returns both paths."""
    st_path, js_path = _paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    if not np.all(np.isfinite(direction.vector)):
        raise ValueError("direction vector contains NaN or inf")
    atomic_write_bytes(st_path, st_save({_TENSOR: direction.vector}, metadata={"format_version": str(FORMAT_VERSION)}))
    meta = json.dumps(_jsonable(direction.metadata()), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(js_path, meta.encode())  # last: the JSON marks the pair complete
    return st_path, js_path


def _same_model(stored: dict, expected: dict) -> bool:
    if "key" in stored and "key" in expected:
        return stored["key"] == expected["key"]
    return _jsonable(stored) == _jsonable(expected)


def load_direction(
    path: str | os.PathLike, *, expected_model: dict | None = None, expected_dim: int | None = None
) -> Direction:
    """Load a direction written by ``save_direction``.

    Raises ``DirectionFileError`` for missing, corrupt or mismatched files, and ``DirectionMismatchError`` when
    ``expected_model`` (compared by ``"key"`` if both have one, else as whole dicts) or ``expected_dim`` (or
    ``expected_model["d_model"]``) differs from what the direction was trained on.
    """
    st_path, js_path = _paths(path)
    for p in (js_path, st_path):
        if not p.exists():
            raise DirectionFileError(f"missing {p}: a direction is a .safetensors + .json pair from save_direction()")
    try:
        meta = json.loads(js_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("top level is not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise DirectionFileError(f"corrupt metadata {js_path}: {e}; re-save the direction") from e
    try:
        tensors = st_load(st_path.read_bytes())
    except (SafetensorError, ValueError, OSError) as e:
        raise DirectionFileError(f"corrupt tensor file {st_path}: {e}; re-save the direction") from e
    if _TENSOR not in tensors:
        raise DirectionFileError(f"{st_path} has no tensor named {_TENSOR!r} (found {sorted(tensors)})")
    vec = tensors[_TENSOR]
    missing = {"concept", "layer", "hook", "estimator", "model_identity", "dim", "vector_sha256"} - meta.keys()
    if missing:
        raise DirectionFileError(f"metadata {js_path} lacks {sorted(missing)}; re-save the direction")
    if vec.ndim != 1 or vec.shape[0] != meta["dim"] or _sha256(vec) != meta["vector_sha256"]:
        raise DirectionFileError(
            f"{st_path} does not match {js_path} (shape {vec.shape} vs dim {meta['dim']}, or checksum differs):"
            " the pair is out of sync; re-save the direction"
        )
    stored_model = meta["model_identity"]
    where = f"{meta['concept']!r} at layer {meta['layer']} ({meta['hook']})"
    if expected_model is not None and not _same_model(stored_model, expected_model):
        raise DirectionMismatchError(
            f"direction {where} in {js_path} was trained for model {stored_model}, but the expected model is"
            f" {expected_model}. Directions do not transfer between models' activation spaces: re-run the probe"
            " sweep on this model's activations, or load the directions trained for it."
        )
    dims = {"expected_dim": expected_dim}
    if expected_model is not None and "d_model" in expected_model:
        dims["expected_model['d_model']"] = expected_model["d_model"]
    for what, d in dims.items():
        if d is not None and int(d) != vec.shape[0]:
            raise DirectionMismatchError(
                f"direction {where} in {js_path} has dimension {vec.shape[0]} (model {stored_model}), but {what}"
                f" is {d}: it was trained on a different model or hook; re-train it for this one."
            )
    known = {"concept", "layer", "hook", "estimator", "model_identity", "metrics", "data_hash", "bias", "scale", "extra"}
    return Direction(vector=vec, **{k: meta[k] for k in known if k in meta})


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "x"


def direction_filename(d: Direction) -> str:
    """``<concept>__L<layer>__<estimator>``: stable and unique per (concept, layer, estimator)."""
    return f"{_slug(d.concept)}__L{int(d.layer):03d}__{_slug(d.estimator)}"


def save_directions(directions: Iterable[Direction], directory: str | os.PathLike) -> list[Path]:
    """Save many directions into ``directory`` (one pair each, named by ``direction_filename``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out, seen = [], set()
    for d in directions:
        name = direction_filename(d)
        if name in seen:
            raise ValueError(f"two directions map to the same file name {name!r}")
        seen.add(name)
        out.append(save_direction(d, directory / name)[1])
    return out


def load_directions(
    directory: str | os.PathLike, *, expected_model: dict | None = None, expected_dim: int | None = None
) -> list[Direction]:
    """Load every direction pair in ``directory``, sorted by (concept, layer, estimator)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DirectionFileError(f"no directory {directory}")
    dirs = [
        load_direction(p, expected_model=expected_model, expected_dim=expected_dim)
        for p in sorted(directory.glob("*.json"))
        if not p.name.startswith(".")
    ]
    return sorted(dirs, key=lambda d: (d.concept, d.layer, d.estimator))
