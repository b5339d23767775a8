"""Atomic file writes, shared by the run directories, the activation store, saved directions and trial files.

A write goes to a temp file in the target's directory, is fsynced, and replaces the target with ``os.replace``, so a
reader (or a run killed midway) sees the old file or the new one, never half of one. A failed write removes its temp
file and re-raises the ``OSError`` (callers such as the activation store turn it into their own error).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), write ``data`` and fsync it: a seam for tests that simulate a full disk.

    Created with mode 0o666 less the umask, like any file the user writes (``tempfile.mkstemp`` would give 0o600 and
    make a shared activation store or run directory unreadable to the rest of a group).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (creating its directory if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes, read in chunks (model files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
