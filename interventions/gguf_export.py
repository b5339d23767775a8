"""Export a steering direction as a llama.cpp control vector (GGUF), to steer a quantised model at llama.cpp speed.

The format is llama.cpp's (written with the ``gguf`` package): architecture ``controlvector``, keys
``controlvector.model_hint`` (the model type, e.g. ``llama``) and ``controlvector.layer_count`` (how many direction
tensors), and one float32 tensor ``direction.{k}`` per layer.

Layer numbering: llama.cpp adds ``direction.{k}`` to the output of its (0-based) layer ``k`` (the ``build_cvec`` call
after the layer's MLP residual), and rejects ``k = 0``. The output of layer ``k`` is our ``blocks.{k}.hook_resid_post``,
which equals ``blocks.{k+1}.hook_resid_pre``. So ``resid_post`` at layer ``L`` is exported as ``direction.{L}``
(``L >= 1``) and ``resid_pre`` at ``L`` as ``direction.{L-1}`` (``L >= 2``).

Each tensor is the vector added (``alpha * norm[L] * unit``, or the raw vector); llama.cpp multiplies it by the
``--control-vector-scaled FILE:SCALE`` factor (the steering job exports each selected setting at its own alpha, so
SCALE 1 reproduces it). Checked inside llama.cpp's own server by ``bench/bench_llamacpp_cvec.py`` (docs/llamacpp.md).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError

ARCH = "controlvector"


def llama_cpp_layer(layer: int, hook: str) -> int:
    """The ``direction.{k}`` index llama.cpp uses for our ``blocks.{layer}.hook_{hook}``."""
    if hook == "resid_post":
        k = int(layer)
    elif hook == "resid_pre":
        k = int(layer) - 1
    else:
        raise ConfigError(f"control vectors act on the residual stream; hook {hook!r} cannot be exported")
    if k < 1:
        raise ConfigError(f"{hook} of layer {layer} is llama.cpp layer index {k}; llama.cpp cannot steer before "
                          "the output of its layer 1 (resid_post of layer >= 1 or resid_pre of layer >= 2)")
    return k


def export_control_vector(path: str | os.PathLike, vectors: Mapping[int, Any], *, hook: str, model_hint: str,
                          n_layers: int, d_model: int, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``vectors`` (our layer -> vector added at ``hook``) as a llama.cpp control vector file."""
    import gguf

    if not vectors:
        raise ConfigError("no vectors to export")
    tensors: dict[int, np.ndarray] = {}
    for layer, vec in vectors.items():
        if not 0 <= int(layer) < n_layers:
            raise ConfigError(f"layer {layer} out of range; this model has layers 0..{n_layers - 1}")
        arr = np.asarray(vec, dtype=np.float32).reshape(-1)
        if arr.shape[0] != d_model:
            raise ConfigError(f"layer {layer}: vector has width {arr.shape[0]}, the model's is {d_model}")
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"layer {layer}: vector contains NaN or inf")
        tensors[llama_cpp_layer(int(layer), hook)] = arr
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), ARCH)
    writer.add_string(f"{ARCH}.model_hint", model_hint)
    writer.add_uint32(f"{ARCH}.layer_count", len(tensors))
    for key, value in (metadata or {}).items():
        writer.add_string(f"{ARCH}.veth.{key}", str(value))
    for k in sorted(tensors):
        writer.add_tensor(f"direction.{k}", tensors[k])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


def read_control_vector(path: str | os.PathLike) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """Read a control vector back: (metadata fields, llama.cpp layer index -> vector)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, Any] = {}
    for name, fld in reader.fields.items():
        if name.startswith("GGUF.") or not fld.types:
            continue
        value = fld.parts[fld.data[0]]
        if fld.types[0] == gguf.GGUFValueType.STRING:
            meta[name] = bytes(value).decode("utf-8")
        else:
            meta[name] = value.tolist()[0] if len(value) == 1 else value.tolist()
    vectors = {int(t.name.split(".", 1)[1]): np.array(t.data, dtype=np.float32).reshape(-1)
               for t in reader.tensors if t.name.startswith("direction.")}
    return meta, vectors


def steering_vector(unit: np.ndarray, alpha: float, norm: float) -> np.ndarray:
    """``alpha * norm * unit / |unit|``: the vector a relative alpha adds at a layer of typical norm ``norm``."""
    if not math.isfinite(alpha):
        raise ConfigError(f"alpha must be finite, got {alpha}")
    unit = np.asarray(unit, dtype=np.float64)
    return (alpha * norm * unit / np.linalg.norm(unit)).astype(np.float32)


def served_control_vector(path: str | os.PathLike, scale: float | None) -> dict[str, Any]:
    """What a server steered with ``--control-vector-scaled FILE:SCALE`` depends on: the file's sha256 and the scale.

    The file must be a control vector (read back here); ``scale`` None is llama.cpp's ``--control-vector`` (1.0).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"control vector {path} not found; pass the file the server was started with")
    try:
        meta, vectors = read_control_vector(path)
    except Exception as exc:  # the gguf reader raises assorted errors on foreign or truncated files
        raise ConfigError(f"{path} is not a readable GGUF file ({exc}); pass the control vector the server "
                          "was started with") from None
    if meta.get("general.architecture") != ARCH or not vectors:
        raise ConfigError(f"{path} is not a llama.cpp control vector (architecture "
                          f"{meta.get('general.architecture')!r}, {len(vectors)} direction tensors)")
    scale = 1.0 if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ConfigError(f"--served-control-scale must be finite, got {scale}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"sha256": digest, "scale": scale}
