"""JSON Lines files: reading that reports every malformed line, and appending that never loses written data.

Trial stores and scored outputs are JSONL so that an interrupted run keeps every row it finished: rows are only ever
appended, each batch is flushed and fsynced, and a reader skips (and reports) a torn last line instead of failing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.errors import ToolkitError

log = logging.getLogger(__name__)

MAX_REPORTED = 20  # line numbers listed in full in an error message; the rest are counted


@dataclass(frozen=True)
class BadLine:
    """A line that is not a JSON object: its 1-based number, why, and the start of its text."""

    path: Path
    line_number: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.reason} ({self.text[:60]!r})"


class JSONLError(ToolkitError, ValueError):
    """One or more malformed lines in a JSONL file. ``bad_lines`` lists them all; ``rows`` holds the good ones."""

    def __init__(self, path: Path, bad_lines: list[BadLine], rows: list[dict[str, Any]] | None = None):
        self.path = path
        self.bad_lines = bad_lines
        self.rows = rows or []
        shown = ", ".join(str(b.line_number) for b in bad_lines[:MAX_REPORTED])
        more = f" and {len(bad_lines) - MAX_REPORTED} more" if len(bad_lines) > MAX_REPORTED else ""
        first = bad_lines[0]
        super().__init__(
            f"{path}: {len(bad_lines)} malformed line(s) (line {shown}{more}); first: line {first.line_number}: "
            f"{first.reason}. Each line must be one JSON object; fix or delete those lines (the other "
            f"{len(self.rows)} row(s) are intact)"
        )


def _parse(line: str) -> dict[str, Any]:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def iter_jsonl(path: str | os.PathLike, on_error: Callable[[BadLine], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield each JSON object of ``path``; blank lines are skipped.

    A malformed line is passed to ``on_error`` and skipped; without ``on_error`` it raises :class:`JSONLError` at once.
    Use :func:`read_jsonl` to collect every bad line before failing.
    """
    for _, row in iter_jsonl_numbered(path, on_error):
        yield row


def iter_jsonl_numbered(path: str | os.PathLike,
                        on_error: Callable[[BadLine], None] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like :func:`iter_jsonl`, yielding ``(line_number, row)`` so later problems can name the input line."""
    path = Path(path)
    if not path.exists():
        raise ToolkitError(f"{path} does not exist; check the path")
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = _parse(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                bad = BadLine(path, number, f"invalid JSON: {exc.msg} at column {exc.colno}", line.strip())
            except ValueError as exc:
                bad = BadLine(path, number, str(exc), line.strip())
            else:
                yield number, row
                continue
            if on_error is None:
                raise JSONLError(path, [bad])
            on_error(bad)


def read_jsonl_lenient(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[BadLine]]:
    """All good rows of ``path`` and every malformed line, without raising for the malformed ones."""
    bad: list[BadLine] = []
    rows = list(iter_jsonl(path, on_error=bad.append))
    return rows, bad


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of ``path``; raises :class:`JSONLError` naming EVERY malformed line (its ``rows`` keeps the rest)."""
    rows, bad = read_jsonl_lenient(path)
    if bad:
        raise JSONLError(Path(path), bad, rows)
    return rows


def json_default(obj: Any) -> Any:
    """``default=`` for :func:`json.dumps`: objects with ``to_dict()``, dataclasses, numpy/torch values, paths."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # results are dataclasses
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSONL; convert it to str, int, float, list or dict")


def _line(row: dict[str, Any]) -> str:
    # Paths, numpy values and objects with to_dict() are converted; anything else raises rather than being
    # silently stringified into a row nobody can read back.
    return json.dumps(row, ensure_ascii=False, default=json_default) + "\n"


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Append ``rows`` to ``path`` (created if missing), flushed and fsynced; returns how many were written.

    Opens in append mode only, so existing data is never truncated. If the file ends in a torn line (a run killed
    mid-write), a newline is written first so the new rows start on their own lines; the torn line stays and is
    reported by the reader.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [_line(row) for row in rows]  # serialise first: a bad row raises before anything is written
    if not lines:
        return 0
    needs_newline = False
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            needs_newline = handle.read(1) != b"\n"
    with path.open("a", encoding="utf-8") as handle:
        if needs_newline:
            handle.write("\n")
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
    return len(lines)


def dumps_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """``rows`` as JSONL text (for atomic whole-file writes)."""
    return "".join(_line(row) for row in rows)


def recover_torn_tail(path: str | os.PathLike) -> Path | None:
    """Move a torn last line (no newline, not valid JSON: a run killed mid-write) to a side file; return it.

    The torn text is kept beside the file (``<name>.torn-<time>``) rather than deleted, and the file is cut back to
    its last full line, so appending can resume after it.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return None
    start = data.rfind(b"\n") + 1
    tail = data[start:]
    try:
        json.loads(tail)
        return None  # a complete record that only lacks its newline; append_jsonl adds one
    except ValueError:
        pass
    side = path.with_name(f"{path.name}.torn-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}")
    side.write_bytes(tail)
    with path.open("r+b") as handle:
        handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())
    log.warning("%s ended in a torn line (%d bytes, a run killed mid-write): moved it to %s; that row is redone",
                path, len(tail), side)
    return side


def read_resumable(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows an interrupted run appended to ``path`` (none if it does not exist), ready to append after.

    The one resume rule of the toolkit's appended files (trial stores, partial scores): a torn last line is set aside
    (:func:`recover_torn_tail`) and its row redone; any other malformed line raises :class:`JSONLError`.
    """
    path = Path(path)
    if not path.exists():
        return []
    recover_torn_tail(path)
    return read_jsonl(path)
