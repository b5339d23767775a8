"""The on-disk activation store: rows keyed by content, written batch by batch, read back lazily.

Layout of a store directory (one per model identity)::

    manifest.json      format version and the ModelIdentity of the weights that wrote it
    index.jsonl        the commit log: one JSON line per committed shard (or per batch of item records)
    shards/*.safetensors
    store.lock         held (flock) by the one process writing

**Why safetensors, not Arrow.** A shard is one batch: one tensor per (row block, hook, layer). ``safe_open`` reads
the header and memory-maps only the tensor asked for, so reading layer 12 never touches the other 29 layers, and
safetensors stores bfloat16 natively (Arrow has no bfloat16). Probes want one (n, d_model) matrix per layer; with
Arrow the layer would be a column of a row-oriented table per batch, with no gain for that access pattern.

**Keying.** A row is one vector (``last``/``mean``) or one token run (``all``) for one text, and is keyed by
``(text key, position key, hook, layer, storage dtype)``. The text key is a digest of the model identity key (weights
+ model dtype) and the exact token ids; the position key names the tokens read (``last@41``, ``mean[1:42]``; see
:mod:`activations.selection`). Rows of a different model never enter a store: the manifest names the identity and
opening with another one raises :class:`StoreMismatchError` before anything is touched.

**Atomicity and resume.** A shard is written to a temp file, fsynced and renamed into place; only then is its line
appended (and fsynced) to ``index.jsonl``: that line is the commit point. A run killed at any moment leaves at most a
temp file, an unreferenced shard or a partial last line, all detected and removed by the next writer, so their rows
are recomputed; committed rows are never rewritten. Each tensor carries a blake2b digest checked on every read; a
shard whose size or digest is wrong is reported (:class:`StoreCorruptError`) and dropped by :meth:`verify` with
``repair=True`` so the next extraction redoes it. A failed write (full disk) removes its own partial files and
raises :class:`StoreWriteError`; earlier rows stay readable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from common.errors import ToolkitError
from common.fileio import atomic_write_bytes
from activations.housekeeping import touch
from activations.selection import Item, ResolvedItem, parse_position_key

log = logging.getLogger(__name__)

FORMAT = "veth-activation-store"
VERSION = 1
STORAGE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16,
                                          "bfloat16": torch.bfloat16}
# When a row exists in several storage dtypes and the reader does not say which, prefer the most precise.
_PRECISION_ORDER = ("float32", "bfloat16", "float16")
MANIFEST, INDEX, LOCK, SHARDS = "manifest.json", "index.jsonl", "store.lock", "shards"


class StoreError(ToolkitError):
    """A store directory that cannot be used as asked."""


class StoreMismatchError(StoreError):
    """The store was written by different weights (or dtype) than the model in hand."""


class StoreCorruptError(StoreError):
    """A committed shard is missing, truncated or fails its checksum."""


class StoreWriteError(StoreError, OSError):
    """Writing a shard or the index failed (full disk, permissions); nothing committed before was harmed."""


class MissingActivationsError(StoreError, KeyError):
    """Rows asked for that the store does not hold."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def text_key(identity_key: str, ids: Sequence[int] | np.ndarray) -> str:
    """Content key of a token sequence under one model identity (weights + dtype)."""
    digest = hashlib.sha256(identity_key.encode() + b"\0")
    digest.update(np.asarray(ids, dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


def item_key(item: Item) -> str:
    """Digest of an item's text and marked span, for looking rows up by text without a tokenizer."""
    digest = hashlib.sha256(item.text.encode())
    digest.update(f"\0{item.span}".encode())
    return digest.hexdigest()[:32]


def column_name(hook: str, layer: int) -> str:
    return f"{hook}/{layer}"


def _digest(tensor: torch.Tensor) -> str:
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


@dataclass
class RowBlock:
    """Rows that share one reduction and one set of columns, as handed to :meth:`StoreWriter.write`.

    ``tensors`` maps (hook, layer) to a CPU tensor: ``(len(rows), d)`` for dense blocks; for ragged (``all``) blocks
    ``(sum of run lengths, d)``, run ``i`` being ``tensor[offsets[i]:offsets[i + 1]]``.
    """

    rows: list[tuple[str, str]]
    tensors: dict[tuple[str, int], torch.Tensor]
    ragged: bool = False
    offsets: torch.Tensor | None = None


@dataclass(frozen=True)
class _BlockRecord:
    ragged: bool
    rows: tuple[tuple[str, str], ...]
    tensors: Mapping[str, tuple[str, str]]  # column -> (tensor name, digest)
    offsets: tuple[str, str] | None


@dataclass(frozen=True)
class _ShardRecord:
    file: str
    n_bytes: int
    dtype: str
    blocks: tuple[_BlockRecord, ...]


@dataclass(frozen=True)
class StoreStats:
    """Size of a store: committed shards, distinct texts, cells (one vector or token run at one hook and layer),
    bytes of shard files."""

    n_shards: int
    n_texts: int
    n_cells: int
    n_bytes: int


@dataclass(frozen=True)
class VerifyReport:
    n_shards: int
    bad: tuple[str, ...]
    repaired: bool

    @property
    def ok(self) -> bool:
        return not self.bad


def _write_error(what: Path, exc: OSError, *, rows_before: bool) -> StoreWriteError:
    """The one error every failed store write raises; ``rows_before`` says whether the store held rows to keep."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "the disk is full: free space or pass a store directory on another disk"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "the location is not writable: pass a store directory you can write to"
    else:
        hint = "check the directory's permissions and disk"
    after = ("Rows committed before are intact; rerun the same extraction to resume" if rows_before else
             "No rows had been stored there yet, so nothing was lost; rerun the extraction once this is fixed")
    error = StoreWriteError(f"could not write {what}: {exc.strerror or exc}; {hint}. {after}")
    error.errno = exc.errno
    return error


def _atomic_write(path: Path, data: bytes, *, rows_before: bool) -> None:
    """:func:`common.fileio.atomic_write_bytes`, with a failure (full disk, permissions) as a StoreWriteError."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise _write_error(path, exc, rows_before=rows_before) from exc


def _identity_line(model: Mapping[str, Any]) -> str:
    where = model.get("revision") or (f"sha256 {str(model.get('sha256'))[:12]}" if model.get("sha256") else "")
    where = f", {where}" if where else ""
    return f"{model.get('name')} ({model.get('location')}{where}, dtype {model.get('dtype')}, key {model.get('key')})"


def _identity_dict(identity: Any) -> dict[str, Any]:
    return identity.to_dict() if hasattr(identity, "to_dict") else dict(identity)


class ActivationStore:
    """A store directory opened for reading; :meth:`writer` adds rows. Picklable (holds no open files)."""

    def __init__(self, root: Path, model: dict[str, Any]) -> None:
        self.root = root
        self.model = model
        self.refresh()

    def refresh(self) -> None:
        """Re-read the index (to see rows another process committed since opening)."""
        self._shards: list[_ShardRecord | None] = []
        self._rows: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
        self._items: dict[str, ResolvedItem] = {}
        self._stale: list[int] = []  # index lines whose shard is missing or truncated
        self._index_bytes = 0
        self._load_index()

    # ---- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike, identity: Any = None, *, create: bool = True) -> ActivationStore:
        """Open (or, with ``identity`` and ``create``, start) the store at ``root``.

        ``identity`` (a ModelIdentity or its dict) must match the manifest; a mismatch raises
        :class:`StoreMismatchError` and leaves the directory untouched.
        """
        root = Path(root)
        manifest_path = root / MANIFEST
        if not manifest_path.exists():
            leftovers = [p.name for p in root.iterdir() if p.name != LOCK] if root.is_dir() else []
            if root.exists() and (not root.is_dir() or leftovers):
                raise StoreError(f"{root} is not an activation store (no {MANIFEST}) and is not empty; "
                                 "pass a new or empty directory")
            if identity is None or not create:
                raise StoreError(f"no activation store at {root}; run an extraction with the model to create one")
            try:
                root.mkdir(parents=True, exist_ok=True)
                with _locked(root, rows_before=False):
                    if not manifest_path.exists():  # another process may have created it meanwhile
                        manifest = {"format": FORMAT, "version": VERSION, "model": _identity_dict(identity),
                                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                        _atomic_write(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode(),
                                      rows_before=False)
                        (root / SHARDS).mkdir(exist_ok=True)  # after the manifest: a failed start leaves no debris
            except StoreWriteError:
                raise
            except OSError as exc:
                raise _write_error(root, exc, rows_before=False) from exc
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreCorruptError(f"{manifest_path} is unreadable ({exc}); this store cannot be trusted: "
                                    "move it aside and extract again") from exc
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise StoreError(f"{root} holds format {manifest.get('format')} v{manifest.get('version')}; this toolkit "
                             f"reads {FORMAT} v{VERSION}: extract into a new directory")
        if identity is not None:
            wanted = _identity_dict(identity)
            if wanted.get("key") != manifest["model"].get("key"):
                raise StoreMismatchError(
                    f"{root} holds activations of {_identity_line(manifest['model'])}, not of the loaded model "
                    f"{_identity_line(wanted)}. Rows of different weights or dtypes are never mixed: pass another "
                    f"store directory (store_dir_for(base, model.identity) gives one per model) or load the model "
                    "that wrote this store")
        touch(root)  # the directory's mtime is the store's last use (python -m experiments.models cache list)
        return cls(root, manifest["model"])

    def _load_index(self) -> None:
        path = self.root / INDEX
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        # Only newline-terminated lines are committed: a partial last line is a killed append.
        end = raw.rfind(b"\n") + 1
        self._index_bytes = end
        for number, line in enumerate(raw[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise StoreCorruptError(f"{path} line {number} is not valid JSON ({exc}); the index was edited or "
                                        "damaged: move the store aside and extract again") from exc
            self._add_record(record)

    def _add_record(self, record: dict[str, Any]) -> None:
        for key, value in record.get("items", {}).items():
            tk, n, s, e, ss, se = value
            self._items[key] = ResolvedItem(tk, n, (s, e), None if ss is None else (ss, se))
        if record.get("shard") is None:
            self._shards.append(None)
            return
        shard = _ShardRecord(
            file=record["shard"], n_bytes=record["bytes"], dtype=record["dtype"],
            blocks=tuple(_BlockRecord(b["ragged"], tuple(map(tuple, b["rows"])),
                                      {c: tuple(v) for c, v in b["tensors"].items()},
                                      tuple(b["offsets"]) if b.get("offsets") else None)
                         for b in record["blocks"]))
        index = len(self._shards)
        self._shards.append(shard)
        try:
            size = (self.root / shard.file).stat().st_size
        except FileNotFoundError:
            size = -1
        if size != shard.n_bytes:
            log.warning("%s: shard %s is %s; its rows will be recomputed", self.root, shard.file,
                        "missing" if size < 0 else f"{size} bytes, expected {shard.n_bytes}")
            self._stale.append(index)
            return
        for b, block in enumerate(shard.blocks):
            for r, row in enumerate(block.rows):
                self._rows.setdefault(row, []).append((index, b, r))

    # ---- lookup ----------------------------------------------------------------------------------------------
    def _locate(self, row: tuple[str, str], hook: str, layer: int,
                dtype: str | None) -> tuple[_ShardRecord, _BlockRecord, int] | None:
        column = column_name(hook, layer)
        found = []
        for s, b, r in self._rows.get(row, ()):
            shard = self._shards[s]
            assert shard is not None
            block = shard.blocks[b]
            if column in block.tensors and (dtype is None or shard.dtype == dtype):
                found.append((shard, block, r))
        if not found:
            return None
        return min(found, key=lambda loc: _PRECISION_ORDER.index(loc[0].dtype))

    def has(self, row: tuple[str, str], hook: str, layer: int, dtype: str | None = None) -> bool:
        """Whether row ``(text key, position key)`` is stored at (hook, layer) in ``dtype`` (any when None)."""
        return self._locate(row, hook, layer, dtype) is not None

    def resolved_item(self, item: Item) -> ResolvedItem | None:
        """How an item was tokenized when it was extracted (None if never extracted into this store)."""
        return self._items.get(item_key(item))

    @property
    def has_rows(self) -> bool:
        """Whether any committed row is readable (what a failed write must say it left intact)."""
        return bool(self._rows)

    def stats(self) -> StoreStats:
        shards = [s for i, s in enumerate(self._shards) if s is not None and i not in self._stale]
        return StoreStats(n_shards=len(shards), n_texts=len({tk for tk, _ in self._rows}),
                          n_cells=sum(len(b.rows) * len(b.tensors) for s in shards for b in s.blocks),
                          n_bytes=sum(s.n_bytes for s in shards))

    # ---- reading ---------------------------------------------------------------------------------------------
    def read(self, rows: Sequence[tuple[str, str]], hook: str, layer: int, *, dtype: str | None = None,
             out_dtype: Any = np.float32) -> np.ndarray:
        """Stack the stored rows for one (hook, layer) into an array, streaming shard by shard.

        Dense rows give ``(len(rows), d)``; ``all``-position rows are concatenated token runs, ``(sum of lengths,
        d)``, in the order of ``rows``. Only the one tensor per shard that holds this column is read.
        """
        locs, missing = [], []
        for i, row in enumerate(rows):
            loc = self._locate(row, hook, layer, dtype)
            if loc is None:
                missing.append(i)
            locs.append(loc)
        if missing:
            raise MissingActivationsError(
                f"{len(missing)} of {len(rows)} row(s) are not in {self.root} at {hook} layer {layer}"
                f"{' in ' + dtype if dtype else ''} (first: item {missing[0]}, position {rows[missing[0]][1]}); "
                "run the extraction with a selection that includes them")
        lengths = np.array([_row_length(row[1]) for row in rows], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        out = np.empty((int(starts[-1]), int(self.model["d_model"])), dtype=out_dtype)
        by_shard: dict[str, list[int]] = {}
        for i, (shard, _, _) in enumerate(locs):  # type: ignore[misc]
            by_shard.setdefault(shard.file, []).append(i)
        column = column_name(hook, layer)
        for file, members in by_shard.items():
            try:
                with safe_open(self.root / file, framework="pt") as handle:
                    cache: dict[str, torch.Tensor] = {}
                    for i in members:
                        _, block, r = locs[i]  # type: ignore[misc]
                        name, digest = block.tensors[column]
                        tensor = self._checked(handle, file, name, digest, cache)
                        if block.ragged:
                            assert block.offsets is not None
                            offsets = self._checked(handle, file, *block.offsets, cache)
                            run = tensor[int(offsets[r]):int(offsets[r + 1])]
                        else:
                            run = tensor[r:r + 1]
                        out[starts[i]:starts[i + 1]] = run.float().numpy()
            except (OSError, SafetensorError) as exc:
                raise StoreCorruptError(f"{self.root / file} cannot be read ({exc}); run "
                                        f"ActivationStore.open({str(self.root)!r}).verify(repair=True) and extract "
                                        "again to recompute its rows") from exc
        return out

    def _checked(self, handle: Any, file: str, name: str, digest: str, cache: dict[str, torch.Tensor]) -> torch.Tensor:
        if name not in cache:
            tensor = handle.get_tensor(name)
            if _digest(tensor) != digest:
                raise StoreCorruptError(f"{self.root / file}: tensor {name} fails its checksum; run "
                                        f"ActivationStore.open({str(self.root)!r}).verify(repair=True) and extract "
                                        "again to recompute its rows")
            cache[name] = tensor
        return cache[name]

    # ---- writing and maintenance -------------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[StoreWriter]:
        """Hold the store's write lock, clean up after any killed writer, and yield a :class:`StoreWriter`."""
        with _locked(self.root, rows_before=self.has_rows):
            self.refresh()
            writer = StoreWriter(self)
            writer.recover()
            yield writer

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Check every committed shard's size and tensor digests; ``repair`` drops bad shards from the index."""
        self.refresh()
        bad = [i for i in self._stale]
        for i, shard in enumerate(self._shards):
            if shard is None or i in self._stale:
                continue
            try:
                with safe_open(self.root / shard.file, framework="pt") as handle:
                    for block in shard.blocks:
                        refs = [*block.tensors.values(), *([block.offsets] if block.offsets else [])]
                        for name, digest in refs:
                            if _digest(handle.get_tensor(name)) != digest:
                                raise StoreCorruptError(name)
            except (OSError, StoreCorruptError, SafetensorError):
                bad.append(i)
        names = tuple(self._shards[i].file for i in sorted(set(bad)))  # type: ignore[union-attr]
        if bad and repair:
            with self.writer() as writer:
                writer.drop(names)
        return VerifyReport(n_shards=sum(s is not None for s in self._shards), bad=names, repaired=repair and bool(bad))


class StoreWriter:
    """Appends committed shards to a store; only exists while the write lock is held."""

    def __init__(self, store: ActivationStore) -> None:
        self.store = store
        self.n_bytes_written = 0

    def recover(self) -> None:
        """Undo what a killed writer left: a partial index line, temp files, unreferenced or truncated shards."""
        store, index = self.store, self.store.root / INDEX
        if index.exists() and index.stat().st_size != store._index_bytes:
            log.warning("%s: dropping a partial last index line left by an interrupted write", store.root)
            with open(index, "r+b") as handle:
                handle.truncate(store._index_bytes)
                os.fsync(handle.fileno())
        if store._stale:
            self.drop(tuple(store._shards[i].file for i in store._stale))  # type: ignore[union-attr]
        referenced = {s.file for s in store._shards if s is not None}
        shard_dir = store.root / SHARDS
        shard_dir.mkdir(exist_ok=True)
        orphans = [p for p in shard_dir.iterdir() if f"{SHARDS}/{p.name}" not in referenced]
        for path in orphans:
            path.unlink(missing_ok=True)
        if orphans:
            log.warning("%s: removed %d uncommitted shard file(s) from an interrupted write", store.root, len(orphans))

    def drop(self, files: Sequence[str]) -> None:
        """Remove shards from the index (atomically rewritten) and delete their files, so their rows are redone."""
        store, index = self.store, self.store.root / INDEX
        drop = set(files)
        kept = [line for line in index.read_bytes().splitlines(keepends=True)
                if line.strip() and json.loads(line).get("shard") not in drop]
        _atomic_write(index, b"".join(kept), rows_before=store.has_rows)
        for file in drop:
            (store.root / file).unlink(missing_ok=True)
        log.warning("%s: dropped %d bad shard(s); their rows will be recomputed", store.root, len(drop))
        store.refresh()

    def write(self, blocks: Sequence[RowBlock], *, dtype: str, items: Mapping[str, ResolvedItem] | None = None) -> None:
        """Commit one shard holding ``blocks`` (already cast to ``dtype``) and the item records of its texts."""
        store = self.store
        d_model = int(store.model["d_model"])
        tensors: dict[str, torch.Tensor] = {}
        block_records = []
        for b, block in enumerate(blocks):
            refs = {}
            for (hook, layer), tensor in block.tensors.items():
                if tensor.dtype != STORAGE_DTYPES[dtype] or tensor.ndim != 2 or tensor.shape[1] != d_model:
                    raise ValueError(f"block {b} {hook}/{layer}: expected ({len(block.rows)}, {d_model}) {dtype}, "
                                     f"got {tuple(tensor.shape)} {tensor.dtype}")
                name = f"{b}/{column_name(hook, layer)}"
                tensors[name] = tensor.contiguous()
                refs[column_name(hook, layer)] = (name, _digest(tensors[name]))
            offsets = None
            if block.ragged:
                assert block.offsets is not None
                tensors[f"{b}/offsets"] = block.offsets.to(torch.int64).contiguous()
                offsets = (f"{b}/offsets", _digest(tensors[f"{b}/offsets"]))
            block_records.append({"ragged": block.ragged, "rows": [list(r) for r in block.rows],
                                  "tensors": {c: list(v) for c, v in refs.items()},
                                  "offsets": list(offsets) if offsets else None})
        file = f"{SHARDS}/{len(store._shards):07d}-{uuid.uuid4().hex[:8]}.safetensors"
        path = store.root / file
        # Serialise in memory and write with plain file I/O: safetensors' own writer reports a full disk as a
        # generic SafetensorError without errno, and the shard of one batch is small.
        data = save(tensors, metadata={"format": FORMAT, "model_key": str(store.model["key"])})
        try:
            _atomic_write(path, data, rows_before=store.has_rows)
        except BaseException:
            path.unlink(missing_ok=True)  # renamed but its directory not synced: not committed, remove it
            raise
        record = {"shard": file, "bytes": path.stat().st_size, "dtype": dtype, "blocks": block_records,
                  "items": _items_json(items or {})}
        try:
            self._append(record)
        except BaseException:
            path.unlink(missing_ok=True)  # never committed: keep the directory clean for the next writer
            raise
        self.n_bytes_written += record["bytes"]

    def write_items(self, items: Mapping[str, ResolvedItem]) -> None:
        """Record how items map to stored texts (for reading by text without the model), without a shard."""
        new = {k: v for k, v in items.items() if self.store._items.get(k) != v}
        if new:
            self._append({"shard": None, "items": _items_json(new)})

    def _append(self, record: dict[str, Any]) -> None:
        """Append one commit line. Any failure (at write, flush, fsync or close) cuts the file back to its last
        whole line and, for an ``OSError``, raises :class:`StoreWriteError`.

        The handle is unbuffered, so closing it has no data left to flush: with a buffered handle a full disk
        failed again at close, and that second raw ``OSError`` replaced the StoreWriteError already raised.
        """
        store, index = self.store, self.store.root / INDEX
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        before = store._index_bytes  # recover() made the file this long when the writer started
        try:
            handle = _open_index(index)
            try:
                _write_index_line(handle, line)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                with contextlib.suppress(OSError):
                    handle.close()
                raise
            handle.close()
        except BaseException as exc:
            # Cut the partial line so the commit log stays a sequence of whole lines (recover() cuts it at the
            # next open if this fails too).
            with contextlib.suppress(OSError):
                os.truncate(index, before)
            if isinstance(exc, OSError):
                raise _write_error(index, exc, rows_before=store.has_rows) from exc
            raise
        store._index_bytes = before + len(line)
        store._add_record(record)


def _items_json(items: Mapping[str, ResolvedItem]) -> dict[str, list[Any]]:
    return {k: [v.text_key, v.n_tokens, *v.scope, *(v.span or (None, None))] for k, v in items.items()}


def _open_index(path: Path) -> Any:
    """Open the commit log for appending, unbuffered (a seam for tests that simulate a full disk)."""
    return open(path, "ab", buffering=0)


def _write_index_line(handle: Any, line: bytes) -> None:
    """Append one commit line, however many calls a short write takes (a seam for tests of a full disk)."""
    view = memoryview(line)
    while view:
        view = view[handle.write(view):]


def _row_length(position_key: str) -> int:
    reduce, start, end = parse_position_key(position_key)
    return end - start if reduce == "all" else 1


@contextmanager
def _locked(root: Path, *, rows_before: bool) -> Iterator[None]:
    """Exclusive write lock on the store (released by the kernel if the process dies)."""
    try:
        handle = open(root / LOCK, "a+b")
    except OSError as exc:
        raise _write_error(root / LOCK, exc, rows_before=rows_before) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: waiting for another process writing to this store", root)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def store_dir_for(base: str | os.PathLike, identity: Any) -> Path:
    """A per-model store directory under ``base``: ``<base>/<model name>-<identity key>``."""
    model = _identity_dict(identity)
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(model["name"])).strip("_") or "model"
    return Path(base) / f"{name}-{model['key']}"


__all__ = [
    "ActivationStore", "StoreWriter", "RowBlock", "StoreStats", "VerifyReport", "StoreError", "StoreMismatchError",
    "StoreCorruptError", "StoreWriteError", "MissingActivationsError", "STORAGE_DTYPES", "text_key", "item_key",
    "column_name", "store_dir_for",
]
