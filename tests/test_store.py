"""The on-disk store by itself (no model): keying, commit log, mismatch, corruption, kills and a full disk."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from activations import store as store_module
from common import fileio
from activations.selection import Item, ResolvedItem
from activations.store import (
    ActivationStore,
    MissingActivationsError,
    RowBlock,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    StoreWriteError,
    item_key,
    store_dir_for,
    text_key,
)

D = 8
MODEL = {"name": "fake-model", "source": "local", "location": "in-memory:fake", "revision": None, "sha256": "ab" * 32,
         "dtype": "float32", "architecture": "FakeForCausalLM", "n_layers": 3, "d_model": D, "key": "feedfacefeedface"}
OTHER = dict(MODEL, name="other-model", sha256="cd" * 32, key="0123456789abcdef")


def dense_block(keys: list[str], layers: range = range(3), seed: int = 0, dtype=torch.float32) -> RowBlock:
    gen = torch.Generator().manual_seed(seed)
    return RowBlock(rows=[(k, "last@4") for k in keys],
                    tensors={("resid_post", layer): torch.randn(len(keys), D, generator=gen).to(dtype)
                             for layer in layers})


def snapshot(root: Path) -> dict[str, str]:
    """Digest of every file under root (to show that nothing was touched)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> ActivationStore:
    return ActivationStore.open(tmp_path / "store", MODEL)


def test_rows_round_trip_and_persist(store: ActivationStore) -> None:
    block = dense_block(["a", "b", "c"])
    with store.writer() as writer:
        writer.write([block], dtype="float32")
    rows = [("c", "last@4"), ("a", "last@4")]
    X = store.read(rows, "resid_post", 1)
    expected = block.tensors[("resid_post", 1)].numpy()[[2, 0]]
    np.testing.assert_array_equal(X, expected)
    reopened = ActivationStore.open(store.root, MODEL)
    np.testing.assert_array_equal(reopened.read(rows, "resid_post", 1), expected)
    assert reopened.has(("b", "last@4"), "resid_post", 2)
    assert not reopened.has(("b", "last@4"), "resid_pre", 2)
    assert not reopened.has(("b", "last@4"), "resid_post", 2, "float16")
    assert reopened.stats().n_cells == 9 and reopened.stats().n_texts == 3


def test_ragged_rows_round_trip(store: ActivationStore) -> None:
    runs = [torch.randn(3, D), torch.randn(5, D)]
    block = RowBlock(rows=[("a", "all[1:4]"), ("b", "all[2:7]")], ragged=True,
                     tensors={("mlp_out", 0): torch.cat(runs)}, offsets=torch.tensor([0, 3, 8]))
    with store.writer() as writer:
        writer.write([block], dtype="float32")
    X = store.read([("b", "all[2:7]"), ("a", "all[1:4]")], "mlp_out", 0)
    np.testing.assert_array_equal(X, torch.cat([runs[1], runs[0]]).numpy())


@pytest.mark.parametrize("dtype, tol", [("float16", 1e-3), ("bfloat16", 1e-2)])
def test_half_precision_storage(store: ActivationStore, dtype: str, tol: float) -> None:
    full = dense_block(["a", "b"])
    half = RowBlock(full.rows, {c: t.to(store_module.STORAGE_DTYPES[dtype]) for c, t in full.tensors.items()})
    with store.writer() as writer:
        writer.write([full], dtype="float32")
        writer.write([half], dtype=dtype)
        sizes = [s.n_bytes for s in store._shards if s is not None]
    low = store.read([("a", "last@4")], "resid_post", 0, dtype=dtype)
    exact = store.read([("a", "last@4")], "resid_post", 0, dtype="float32")
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, exact, rtol=tol, atol=tol)
    assert not np.array_equal(low, exact)  # really the half-precision copy
    assert sizes[1] < sizes[0]
    # Without a dtype the most precise copy is served.
    np.testing.assert_array_equal(store.read([("a", "last@4")], "resid_post", 0), exact)


def test_missing_rows_are_a_clear_error(store: ActivationStore) -> None:
    with store.writer() as writer:
        writer.write([dense_block(["a"])], dtype="float32")
    with pytest.raises(MissingActivationsError, match="1 of 2 row.*resid_post layer 0.*first: item 1"):
        store.read([("a", "last@4"), ("zzz", "last@4")], "resid_post", 0)


def test_write_rejects_wrong_width_or_dtype(store: ActivationStore) -> None:
    with store.writer() as writer:
        with pytest.raises(ValueError, match="expected"):
            writer.write([RowBlock([("a", "last@4")], {("resid_post", 0): torch.randn(1, D + 1)})], dtype="float32")
        with pytest.raises(ValueError, match="expected"):
            writer.write([dense_block(["a"])], dtype="float16")
    assert store.stats().n_shards == 0


def test_mismatched_model_is_refused_and_nothing_touched(store: ActivationStore) -> None:
    with store.writer() as writer:
        writer.write([dense_block(["a"])], dtype="float32")
    before = snapshot(store.root)
    with pytest.raises(StoreMismatchError) as info:
        ActivationStore.open(store.root, OTHER)
    message = str(info.value)
    assert "fake-model" in message and "other-model" in message and MODEL["key"] in message
    assert "store_dir_for" in message
    assert snapshot(store.root) == before


def test_store_dir_for_separates_models(tmp_path: Path) -> None:
    a, b = store_dir_for(tmp_path, MODEL), store_dir_for(tmp_path, OTHER)
    assert a != b and a.parent == tmp_path and MODEL["key"] in a.name
    ActivationStore.open(a, MODEL)
    ActivationStore.open(b, OTHER)


def test_open_refuses_non_store_directories(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not an activation store"):
        ActivationStore.open(tmp_path, MODEL)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(StoreError, match="no activation store"):
        ActivationStore.open(tmp_path / "new", None)
    assert not (tmp_path / "new").exists()


def test_keys_depend_on_identity_tokens_and_span() -> None:
    assert text_key("k1", [1, 2, 3]) == text_key("k1", np.array([1, 2, 3], dtype=np.int32))
    assert text_key("k1", [1, 2, 3]) != text_key("k2", [1, 2, 3])
    assert text_key("k1", [1, 2, 3]) != text_key("k1", [1, 2, 4])
    assert item_key(Item("abc")) != item_key(Item("abc", (0, 1))) != item_key(Item("abd", (0, 1)))


def test_item_records_survive_reopen(store: ActivationStore) -> None:
    record = ResolvedItem("a", 5, (1, 5), (2, 4))
    with store.writer() as writer:
        writer.write([dense_block(["a"])], dtype="float32", items={item_key(Item("hello", (1, 3))): record})
        writer.write_items({item_key(Item("bye")): ResolvedItem("b", 3, (1, 3))})
    reopened = ActivationStore.open(store.root)
    assert reopened.resolved_item(Item("hello", (1, 3))) == record
    assert reopened.resolved_item(Item("bye")) == ResolvedItem("b", 3, (1, 3))
    assert reopened.resolved_item(Item("hello")) is None


def test_writer_holds_an_exclusive_lock(store: ActivationStore) -> None:
    with store.writer():
        with open(store.root / "store.lock", "a+b") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(store.root / "store.lock", "a+b") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit


# ---- corruption ------------------------------------------------------------------------------------------------

def _one_shard(store: ActivationStore) -> Path:
    with store.writer() as writer:
        writer.write([dense_block(["a", "b"])], dtype="float32")
        writer.write([dense_block(["c"], seed=1)], dtype="float32")
    return store.root / store._shards[1].file  # type: ignore[union-attr]


def test_flipped_bytes_fail_the_checksum_and_verify_repairs(store: ActivationStore) -> None:
    shard = _one_shard(store)
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's values; the size stays the same
    shard.write_bytes(bytes(data))
    store.refresh()
    np.testing.assert_array_equal(store.read([("a", "last@4")], "resid_post", 0).shape, (1, D))  # other shard fine
    with pytest.raises(StoreCorruptError, match="checksum.*verify\\(repair=True\\)"):
        store.read([("c", "last@4")], "resid_post", 2)
    report = store.verify()
    assert report.bad == (store._shards[1].file,) and not report.repaired  # type: ignore[union-attr]
    assert shard.exists()
    report = store.verify(repair=True)
    assert report.repaired and not shard.exists()
    assert not store.has(("c", "last@4"), "resid_post", 0)
    assert store.has(("a", "last@4"), "resid_post", 0)
    assert store.verify().ok


def test_truncated_shard_is_dropped_and_redone(store: ActivationStore) -> None:
    shard = _one_shard(store)
    shard.write_bytes(shard.read_bytes()[:100])
    reopened = ActivationStore.open(store.root, MODEL)
    assert not reopened.has(("c", "last@4"), "resid_post", 0)  # not served
    assert reopened.has(("a", "last@4"), "resid_post", 0)
    with reopened.writer() as writer:  # the next writer removes it from the index and the disk
        assert not shard.exists()
        writer.write([dense_block(["c"], seed=1)], dtype="float32")
    lines = (store.root / "index.jsonl").read_text().splitlines()
    assert len(lines) == 2
    np.testing.assert_array_equal(reopened.read([("c", "last@4")], "resid_post", 2),
                                  dense_block(["c"], seed=1).tensors[("resid_post", 2)].numpy())


def test_edited_index_is_a_clear_error(store: ActivationStore) -> None:
    _one_shard(store)
    index = store.root / "index.jsonl"
    index.write_text("not json\n" + index.read_text())
    with pytest.raises(StoreCorruptError, match="line 1 is not valid JSON"):
        ActivationStore.open(store.root)


# ---- a full disk -------------------------------------------------------------------------------------------------

def test_full_disk_while_writing_a_shard(store: ActivationStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = dense_block(["a", "b"])
    with store.writer() as writer:
        writer.write([first], dtype="float32")
    before = snapshot(store.root)

    def full_disk(path: Path, data: bytes) -> None:
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio, "_write_file", full_disk)
    with pytest.raises(StoreWriteError, match="disk is full.*intact.*resume") as info:
        with store.writer() as writer:
            writer.write([dense_block(["c"])], dtype="float32")
    assert info.value.errno == errno.ENOSPC
    assert snapshot(store.root) == before  # no half-written shard or temp file left behind
    monkeypatch.undo()
    reopened = ActivationStore.open(store.root, MODEL)
    np.testing.assert_array_equal(reopened.read([("b", "last@4")], "resid_post", 0),
                                  first.tensors[("resid_post", 0)].numpy()[[1]])
    with reopened.writer() as writer:
        writer.write([dense_block(["c"])], dtype="float32")
    assert reopened.has(("c", "last@4"), "resid_post", 0)


def test_full_disk_while_committing_the_index(store: ActivationStore, monkeypatch: pytest.MonkeyPatch) -> None:
    with store.writer() as writer:
        writer.write([dense_block(["a"])], dtype="float32")
    before = snapshot(store.root)

    def half_line(handle, line: bytes) -> None:
        handle.write(line[: len(line) // 2])
        handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_module, "_write_index_line", half_line)
    with pytest.raises(StoreWriteError, match="disk is full"):
        with store.writer() as writer:
            writer.write([dense_block(["c"])], dtype="float32")
    assert snapshot(store.root) == before  # partial line cut, uncommitted shard removed
    monkeypatch.undo()
    assert not ActivationStore.open(store.root).has(("c", "last@4"), "resid_post", 0)


class FailingIndex:
    """The commit log's handle on a disk that fills up at ``fail_at``: write (half the line lands), flush (a buffered
    handle's pending bytes: half land, the rest stay pending and fail again at close, as in ``BufferedWriter``), or
    close (everything written and fsynced, then close reports the error, as NFS may)."""

    def __init__(self, path: Path, fail_at: str) -> None:
        self.raw, self.fail_at, self.pending = open(path, "ab", buffering=0), fail_at, b""

    @staticmethod
    def enospc() -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, data) -> int:
        data = bytes(data)
        if self.fail_at == "write":
            self.raw.write(data[: len(data) // 2])
            raise self.enospc()
        self.pending += data
        return len(data)

    def flush(self) -> None:
        if self.fail_at == "flush" and self.pending:
            self.raw.write(self.pending[: len(self.pending) // 2])
            self.pending = self.pending[len(self.pending) // 2:]
            raise self.enospc()
        self.raw.write(self.pending)
        self.pending = b""

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()
        if self.pending or self.fail_at == "close":
            raise self.enospc()


@pytest.mark.parametrize("fail_at", ["write", "flush", "close"])
def test_full_disk_while_appending_to_the_index_is_a_store_write_error(store: ActivationStore, fail_at: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: the StoreWriteError was built, then replaced by a raw OSError when the buffered handle flushed
    # its pending bytes again on close.
    first = dense_block(["a", "b"])
    with store.writer() as writer:
        writer.write([first], dtype="float32")
        writer.write_items({"k": ResolvedItem("a", 4, (0, 4), None)})
    before = snapshot(store.root)
    monkeypatch.setattr(store_module, "_open_index", lambda path: FailingIndex(path, fail_at))
    for attempt in (lambda w: w.write([dense_block(["c"])], dtype="float32"),
                    lambda w: w.write_items({"k2": ResolvedItem("c", 4, (0, 4), None)})):
        with pytest.raises(StoreWriteError, match="disk is full.*Rows committed before are intact; rerun the same "
                                                  "extraction to resume") as info:
            with store.writer() as writer:
                attempt(writer)
        assert info.value.errno == errno.ENOSPC
        assert snapshot(store.root) == before  # partial line cut, uncommitted shard removed
    monkeypatch.undo()
    reopened = ActivationStore.open(store.root, MODEL)
    np.testing.assert_array_equal(reopened.read([("a", "last@4"), ("b", "last@4")], "resid_post", 2),
                                  first.tensors[("resid_post", 2)].numpy())
    assert not reopened.has(("c", "last@4"), "resid_post", 0)
    with reopened.writer() as writer:  # and the next write commits normally
        writer.write([dense_block(["c"])], dtype="float32")
    assert len((store.root / "index.jsonl").read_text().splitlines()) == 3


def read_only(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """Simulate a read-only file system (tests may run as root, which chmod cannot stop)."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    if target == "mkdir":
        monkeypatch.setattr(Path, "mkdir", refuse)
    else:
        monkeypatch.setattr(fileio, "_write_file", refuse)


@pytest.mark.parametrize("target", ["mkdir", "files"])
def test_read_only_location_without_a_store_does_not_claim_rows_are_intact(tmp_path: Path, target: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "new-store"
    if target == "files":
        root.mkdir()  # an empty directory in which no file can be created
    read_only(monkeypatch, target)
    with pytest.raises(StoreWriteError, match="not writable") as info:
        ActivationStore.open(root, MODEL)
    message = str(info.value)
    assert "intact" not in message and "No rows had been stored there yet, so nothing was lost" in message
    assert info.value.errno == errno.EROFS
    monkeypatch.undo()
    assert not (root / "manifest.json").exists()
    ActivationStore.open(root, MODEL)  # once writable, the store starts normally


def test_read_only_store_says_rows_are_intact_only_when_it_holds_rows(store: ActivationStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    read_only(monkeypatch, "files")
    with pytest.raises(StoreWriteError) as info:  # a store that exists but holds no rows yet
        with store.writer() as writer:
            writer.write([dense_block(["a"])], dtype="float32")
    assert "intact" not in str(info.value) and "No rows had been stored" in str(info.value)
    monkeypatch.undo()
    with store.writer() as writer:
        writer.write([dense_block(["a"])], dtype="float32")
    read_only(monkeypatch, "files")
    with pytest.raises(StoreWriteError, match="not writable.*Rows committed before are intact"):
        with store.writer() as writer:
            writer.write([dense_block(["b"])], dtype="float32")
    assert ActivationStore.open(store.root).has(("a", "last@4"), "resid_post", 0)


# ---- killed writers (a real process exit, no cleanup handlers) ---------------------------------------------------

KILL_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from activations import store as s
    from common import fileio
    point = sys.argv[2]
    def die(*args, **kwargs):
        os._exit(9)
    if point == "temp_written":  # temp shard fsynced, not yet renamed
        real = fileio._write_file
        def write_then_die(path, data):
            real(path, data)
            if path.name.endswith(".tmp") and "safetensors" in path.name:
                die()
        fileio._write_file = write_then_die
    elif point == "shard_renamed":  # shard in place, index line not written
        s._write_index_line = die
    elif point == "half_line":  # half of the commit line written
        def half(handle, line):
            handle.write(line[: len(line) // 2]); handle.flush(); die()
        s._write_index_line = half
    model = dict(MODEL)
    store = s.ActivationStore.open(sys.argv[1], model)
    with store.writer() as writer:
        writer.write([s.RowBlock([("c", "last@4")], {("resid_post", 0): torch.ones(1, %d)})], dtype="float32")
    print("not killed")
""")


@pytest.mark.parametrize("point", ["temp_written", "shard_renamed", "half_line"])
def test_killed_writer_leaves_no_committed_damage(store: ActivationStore, point: str) -> None:
    first = dense_block(["a", "b"])
    with store.writer() as writer:
        writer.write([first], dtype="float32")
    script = f"MODEL = {json.dumps(MODEL).replace('null', 'None')}\n" + KILL_SCRIPT % D
    result = subprocess.run([sys.executable, "-c", script, str(store.root), point], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 9, result.stderr
    leftovers = sorted(p.name for p in (store.root / "shards").iterdir())
    assert len(leftovers) == 2  # the committed shard and the killed writer's debris

    reader = ActivationStore.open(store.root, MODEL)  # a reader ignores the debris
    assert not reader.has(("c", "last@4"), "resid_post", 0)
    np.testing.assert_array_equal(reader.read([("a", "last@4"), ("b", "last@4")], "resid_post", 1),
                                  first.tensors[("resid_post", 1)].numpy())
    with reader.writer() as writer:  # the next writer cleans it up and commits normally
        assert len(list((store.root / "shards").iterdir())) == 1
        writer.write([RowBlock([("c", "last@4")], {("resid_post", 0): torch.ones(1, D)})], dtype="float32")
    lines = (store.root / "index.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    np.testing.assert_array_equal(ActivationStore.open(store.root).read([("c", "last@4")], "resid_post", 0),
                                  np.ones((1, D), dtype=np.float32))
