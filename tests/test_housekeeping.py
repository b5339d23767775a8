"""`python -m experiments.models cache`: listing and removing cache entries on a temporary cache root; entries in use
(a store's write lock held, a file open) are never removed; removal is a dry run without --yes."""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from activations.housekeeping import list_entries, remove_entries, select
from activations.store import ActivationStore
from common.errors import ConfigError
from experiments.models import main

IDENTITY = {"name": "tiny", "key": "0123456789abcdef", "d_model": 4, "dtype": "float32", "location": "x"}
DAY = 86400


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    converted = tmp_path / "converted" / "abc-transformers5-float32"
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(b"\0" * 1000)
    (converted / "manifest.json").write_text(json.dumps({"source": "tiny (tiny.gguf)"}))
    (tmp_path / "converted" / ".abc-transformers5-float32.x1.tmp").mkdir()  # a write in progress: never listed
    ActivationStore.open(tmp_path / "activations" / "tiny-0123456789abcdef", IDENTITY)
    (tmp_path / "model.gguf").write_bytes(b"\0" * 500)
    old = time.time() - 30 * DAY
    os.utime(converted, (old, old))
    return tmp_path


def names(root: Path) -> set[str]:
    return {e.name for e in list_entries(root)}


def test_list_shows_each_entry_with_size_last_use_and_model(root: Path, capsys) -> None:
    entries = {e.name: e for e in list_entries(root)}
    assert set(entries) == {"converted/abc-transformers5-float32", "activations/tiny-0123456789abcdef", "model.gguf"}
    assert entries["converted/abc-transformers5-float32"].bytes > 1000
    assert entries["converted/abc-transformers5-float32"].what == "tiny (tiny.gguf)"
    assert entries["activations/tiny-0123456789abcdef"].what == "tiny (float32)"
    assert not any(e.in_use for e in entries.values())
    assert main(["cache", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 entries" in out and "activation-store" in out and "tiny (tiny.gguf)" in out


def test_remove_is_a_dry_run_without_yes(root: Path, capsys) -> None:
    before = names(root)
    assert main(["cache", "remove", "model.gguf", "--root", str(root)]) == 0
    assert "would remove model.gguf" in capsys.readouterr().out
    assert names(root) == before
    assert main(["cache", "remove", "model.gguf", "--yes", "--root", str(root)]) == 0
    assert names(root) == before - {"model.gguf"} and not (root / "model.gguf").exists()


def test_older_than_removes_only_what_was_last_used_before_the_date(root: Path) -> None:
    cutoff = datetime.fromtimestamp(time.time() - 10 * DAY, timezone.utc).strftime("%Y-%m-%d")
    assert main(["cache", "remove", "--older-than", cutoff, "--yes", "--root", str(root)]) == 0
    assert names(root) == {"activations/tiny-0123456789abcdef", "model.gguf"}
    assert (root / "converted" / ".abc-transformers5-float32.x1.tmp").exists()  # an in-progress write is untouched


def test_opening_a_store_counts_as_use(root: Path) -> None:
    store = root / "activations" / "tiny-0123456789abcdef"
    old = time.time() - 30 * DAY
    os.utime(store, (old, old))
    ActivationStore.open(store, IDENTITY)
    entry = next(e for e in list_entries(root) if e.kind == "activation-store")
    assert (datetime.now(timezone.utc) - entry.last_used).total_seconds() < 60


def test_a_store_being_written_is_kept(root: Path) -> None:
    store = root / "activations" / "tiny-0123456789abcdef"
    with open(store / "store.lock", "a+b") as handle:  # what a StoreWriter holds while it writes
        fcntl.flock(handle, fcntl.LOCK_EX)
        entry = next(e for e in list_entries(root) if e.kind == "activation-store")
        assert entry.in_use and "store.lock" in entry.in_use
        [(_, why)] = remove_entries([entry])
        assert why is not None
    assert store.exists()


def test_an_open_file_keeps_its_entry_and_the_cli_says_so(root: Path, capsys) -> None:
    name = "converted/abc-transformers5-float32"
    with open(root / name / "model.safetensors", "rb"):
        assert main(["cache", "remove", name, "--yes", "--root", str(root)]) == 1
        assert "kept converted/abc-transformers5-float32: a process has model.safetensors open" in \
            capsys.readouterr().out
    assert (root / name).exists()


def test_bad_names_and_dates_are_one_clear_error(root: Path) -> None:
    with pytest.raises(ConfigError, match="no cache entry named nope"):
        select(list_entries(root), ["nope"])
    with pytest.raises(ConfigError, match="not a date"):
        main(["cache", "remove", "--older-than", "last week", "--root", str(root)])
    with pytest.raises(ConfigError, match="needs entry names"):
        main(["cache", "remove", "--root", str(root)])
