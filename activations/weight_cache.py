"""A cache of GGUF models converted to Hugging Face format, so an embedded model is parsed and dequantised once.

transformers reads a GGUF three times (tokenizer, config, weights) and dequantises every tensor on each load; the
converted model saved with ``save_pretrained`` (safetensors) loads several times faster. The cache is an
optimisation only: the model's identity stays the verified sha256 of the GGUF (the caller checks it before asking
the cache), and the entry is keyed by that sha256, the transformers version (another version may convert
differently) and the dtype.

An entry is a directory written under a temp name and renamed into place, with ``manifest.json`` listing the sha256
of every file, so a killed writer never leaves an entry that is used, and a damaged entry is detected, logged and
rebuilt rather than silently loaded. ``VETH_NO_WEIGHT_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from common.fileio import atomic_write_text, fsync_dir, sha256_file
from activations.housekeeping import touch

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1  # bump when the layout of an entry changes
OPT_OUT_ENV = "VETH_NO_WEIGHT_CACHE"


def cache_enabled() -> bool:
    return os.environ.get(OPT_OUT_ENV, "").strip().lower() not in ("1", "true", "yes", "on")


def entry_dir(root: Path, source_sha256: str, dtype: str) -> Path:
    """Where the converted model of a source file with ``source_sha256`` lives for this transformers and dtype."""
    import transformers

    return root / "converted" / f"{source_sha256}-transformers{transformers.__version__}-{dtype}"


@dataclass(frozen=True)
class CacheCheck:
    """Whether an entry can be used; ``problem`` says why not (None when absent, which is not a problem)."""

    usable: bool
    problem: str | None = None


def check_entry(path: Path, source_sha256: str) -> CacheCheck:
    """Verify an entry against its manifest: every listed file present with its sha256, and no file missing from it.

    Hashing the cached files costs about a second for a few hundred MB; it is what makes a garbled safetensors file
    (which could still load, with wrong numbers) detectable.
    """
    if not path.exists():
        return CacheCheck(False)
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CacheCheck(False, f"unreadable manifest ({type(exc).__name__})")
    if manifest.get("format") != FORMAT or manifest.get("source_sha256") != source_sha256:
        return CacheCheck(False, "manifest is for another format or source file")
    try:
        present = {p.name for p in path.iterdir() if p.is_file() and p.name != MANIFEST}
    except OSError as exc:
        return CacheCheck(False, f"unreadable directory ({exc})")
    if present != set(files):
        return CacheCheck(False, f"files differ from the manifest ({sorted(present ^ set(files))})")
    for name, digest in files.items():
        try:
            actual = sha256_file(path / name)
        except OSError as exc:  # removed meanwhile by a process rebuilding the entry
            return CacheCheck(False, f"{name} unreadable ({exc})")
        if actual != digest:
            return CacheCheck(False, f"{name} does not match its sha256")
    return CacheCheck(True)


def save_entry(path: Path, model: Any, tokenizer: Any, *, source_sha256: str, meta: dict[str, Any]) -> bool:
    """Write ``model`` and ``tokenizer`` as the entry ``path``, atomically. Returns False (logged) if it could not.

    A failed write (full disk, read-only cache) never fails the load that produced the model: the caller already has
    it, and the next load simply converts again.
    """
    if not all(t.is_floating_point() for t in model.state_dict().values()):
        # transformers kept GGUF blocks (a GGUF matmul kernel was available): not representable as plain weights.
        log.info("not caching %s: its weights are still quantised", path.name)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with _dequantised_view(model):
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        origin = {"tokenizer": tokenizer.name_or_path, "model": model.config.name_or_path}
        manifest = {"format": FORMAT, "source_sha256": source_sha256, "files": files, "name_or_path": origin, **meta}
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        _replace_dir(tmp, path)
        fsync_dir(path.parent)
        return True
    except OSError as exc:
        log.warning("could not write the converted-weights cache %s (%s); the next load converts again", path, exc)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _dequantised_view(model: Any) -> Iterator[None]:
    """Let ``save_pretrained`` write a GGUF-loaded model whose weights transformers already dequantised.

    The model still carries the GGUF quantizer (which refuses to serialise) and a ``quantization_config``; its
    tensors are plain floats, so it is saved as an ordinary checkpoint, and both are put back afterwards.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    had_config = hasattr(model.config, "quantization_config")
    qconfig = getattr(model.config, "quantization_config", None)
    if quantizer is not None:
        model.hf_quantizer = None
    if had_config:
        del model.config.quantization_config
    try:
        yield
    finally:
        if quantizer is not None:
            model.hf_quantizer = quantizer
        if had_config:
            model.config.quantization_config = qconfig


def _replace_dir(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``, unless another process renamed its own complete entry into place meanwhile (the
    caller removed any damaged entry before converting): then keep theirs, which the next load verifies as usual."""
    try:
        os.rename(tmp, path)
    except OSError:
        if not path.exists():
            raise


def remove_entry(path: Path) -> None:
    """Move a damaged entry aside and delete it (moving first so a reader never sees a half-deleted entry)."""
    trash = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def load_entry(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load an entry, pointing the objects' ``name_or_path`` back at the source, as a direct load leaves them.

    TransformerLens re-reads a tokenizer from its ``name_or_path`` to get a BOS-adding variant: from a GGUF's
    directory that fails and it keeps the tokenizer it was given, while from the cache directory it would succeed
    and change every tokenisation. Restoring the source's paths keeps the bridge's behaviour identical.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    origin = json.loads((path / MANIFEST).read_text()).get("name_or_path", {})
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if "tokenizer" in origin:
        tokenizer.name_or_path = origin["tokenizer"]
        tokenizer.init_kwargs["name_or_path"] = origin["tokenizer"]
    if "model" in origin:
        model.config.name_or_path = origin["model"]
        model.name_or_path = origin["model"]
    return model, tokenizer


def load_or_convert(
    root: Path,
    source_sha256: str,
    dtype_name: str,
    dtype: torch.dtype,
    convert: Callable[[], tuple[Any, Any]],
    *,
    label: str,
) -> tuple[Any, Any]:
    """The (model, tokenizer) converted from a verified source file: from the cache if a sound entry exists, else
    from ``convert()`` (then cached). ``label`` names the source in log lines."""
    if not cache_enabled():
        return convert()
    path = entry_dir(root, source_sha256, dtype_name)
    check = check_entry(path, source_sha256)
    if check.usable:
        try:
            loaded = load_entry(path, dtype)
            touch(path)  # the entry's mtime is its last use (python -m experiments.models cache list)
            return loaded
        except Exception as exc:  # sound by its manifest but unloadable (e.g. written by a broken transformers)
            check = CacheCheck(False, f"load failed: {type(exc).__name__}: {exc}")
    if check.problem is not None:
        log.warning("converted-weights cache for %s at %s is damaged (%s); rebuilding it from the source file",
                    label, path, check.problem)
        remove_entry(path)
    model, tokenizer = convert()
    import transformers

    if save_entry(path, model, tokenizer, source_sha256=source_sha256,
                  meta={"source": label, "transformers": transformers.__version__, "dtype": dtype_name}):
        log.info("cached the converted weights of %s at %s", label, path)
    return model, tokenizer
