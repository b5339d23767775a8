"""The run-directory convention every experiment follows.

``runs/<UTC time>-<experiment>-<model>/`` holds:

- ``config.json``   the resolved configuration (every argument, after defaults);
- ``manifest.json`` versions of Python and key packages, the git commit, the host, the model's identity, and the
                    run's ``status``: ``running``, then ``completed``, ``failed`` or ``interrupted``;
- ``error.txt``     only in a run that failed or was interrupted: what went wrong (and, for a bug, the traceback);
- ``results/*.json`` results, machine-readable;
- ``figures/*.png`` figures;
- ``report.md``     a short human-readable report.

Writes are atomic (temp file + rename), so an interrupted run never leaves a half-written JSON file behind.

How a run ended is recorded by :meth:`RunDir.finish`: use a run as a context manager (``with RunDir.create(...) as
run:``), or let :func:`track_runs` (which every command line goes through, via ``experiments.cli.run_main``) finish
every run created or restarted inside it. A ``running`` status on a run nobody is working on means it ended without
either (a library call that never finished it, or a killed process).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from common.errors import ConfigError, ToolkitError
from common.fileio import atomic_write_text
from common.jsonl import json_default
from common.threads import thread_settings

RUNS_ROOT = Path(os.environ.get("VETH_RUNS", "runs"))
TRACKED_PACKAGES = ("torch", "transformers", "transformer-lens", "scikit-learn", "numpy", "datasets", "veth-probes")
ERROR_FILE = "error.txt"
RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"

log = logging.getLogger(__name__)

# Runs created (or restarted) inside each active track_runs() block, innermost last.
_TRACKERS: list[list[RunDir]] = []


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=json_default, allow_nan=True) + "\n"


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


@dataclass(frozen=True)
class RunDir:
    """A run directory. Create with :meth:`create`; reopen an existing one (to resume) with :meth:`open`."""

    path: Path

    @classmethod
    def create(cls, experiment: str, model: str, config: dict[str, Any], *, root: Path | None = None,
               model_identity: dict[str, Any] | None = None) -> RunDir:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        root = RUNS_ROOT if root is None else Path(root)
        path = root / f"{stamp}-{_slug(experiment)}-{_slug(Path(model).name if os.sep in model else model)}"
        root.mkdir(parents=True, exist_ok=True)
        suffix = 1
        while True:  # two runs in the same second (even in two processes) never share a directory
            try:
                path.mkdir()
                break
            except FileExistsError:
                suffix += 1
                path = path.with_name(f"{path.name.rsplit('~', 1)[0]}~{suffix}")
        run = cls(path)
        run.write_json("config.json", {"experiment": experiment, "model": model, **config}, top=True)
        run.write_manifest(model_identity)
        if _TRACKERS:
            _TRACKERS[-1].append(run)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        path = Path(path)
        if not (path / "config.json").exists():
            raise ConfigError(f"{path} is not a run directory (no config.json); pass a directory under runs/")
        return cls(path)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads((self.path / "config.json").read_text())

    def write_manifest(self, model_identity: dict[str, Any] | None = None) -> None:
        manifest = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "git_commit": git_commit(),
            "host": platform.node(),
            "platform": platform.platform(),
            "versions": versions(),
            "model": model_identity,
            "threads": thread_settings(),
            "status": RUNNING,
            "pid": os.getpid(),
        }
        self.write_json("manifest.json", manifest, top=True)

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / "manifest.json").read_text())

    @property
    def status(self) -> str | None:
        """``running``, ``completed``, ``failed`` or ``interrupted`` (None for a run made before statuses)."""
        return self.manifest.get("status")

    def start(self) -> RunDir:
        """Mark the run ``running`` again (resuming a run): drops the error of an earlier attempt, and lets the
        innermost :func:`track_runs` finish it. A new run is already running; calling this again does no harm."""
        (self.path / ERROR_FILE).unlink(missing_ok=True)
        manifest = self.manifest
        if manifest.get("status") != RUNNING:
            previous = {k: manifest.pop(k) for k in ("status", "finished", "error") if k in manifest}
            manifest.setdefault("earlier_attempts", []).append(previous)
            manifest["status"] = RUNNING
        if manifest.get("pid") != os.getpid() or manifest.get("host") != platform.node():
            manifest.update(pid=os.getpid(), host=platform.node())  # who is working on it now (see reap_if_stale)
        self.write_json("manifest.json", manifest, top=True)
        if _TRACKERS and self not in _TRACKERS[-1]:
            _TRACKERS[-1].append(self)
        return self

    def finish(self, error: BaseException | None = None) -> None:
        """Record how the run ended: ``completed``; or ``failed`` (``interrupted`` for Ctrl-C) with ``error.txt``.

        Never raises: a run that cannot record its end (disk gone) must not hide the error that ended it.
        """
        try:
            manifest = self.manifest
            manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            if error is None:
                manifest["status"] = COMPLETED
                manifest.pop("error", None)
                (self.path / ERROR_FILE).unlink(missing_ok=True)
            else:
                interrupted = isinstance(error, KeyboardInterrupt)
                message = ("interrupted (Ctrl-C); work written so far is kept" if interrupted
                           else f"{type(error).__name__}: {error}")
                detail = message + "\n"
                if not interrupted and not isinstance(error, ToolkitError):  # a bug: keep where it happened
                    detail += "\n" + "".join(traceback.format_exception(error))
                atomic_write_text(self.path / ERROR_FILE, detail)
                manifest["status"] = INTERRUPTED if interrupted else FAILED
                manifest["error"] = message.splitlines()[0] if message else type(error).__name__
            self.write_json("manifest.json", manifest, top=True)
        except (OSError, ValueError) as exc:
            log.warning("could not record the end of run %s: %s", self.path, exc)

    def reap_if_stale(self) -> bool:
        """Mark a ``running`` run whose process is gone (killed with -9, machine restarted) ``failed`` with that
        reason; True when it did. A run on another host, or with no recorded pid, is left alone (it cannot be told
        from a live one)."""
        try:
            manifest = self.manifest
        except (OSError, ValueError):
            return False
        pid = manifest.get("pid")
        if manifest.get("status") != RUNNING or not isinstance(pid, int) or manifest.get("host") != platform.node():
            return False
        if pid == os.getpid() or _alive(pid):
            return False
        self.finish(StaleRunError(f"the process that ran it (pid {pid} on {manifest.get('host')}) stopped without "
                                  "recording an end (killed, or the machine restarted); work written so far is kept"))
        return True

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(exc)

    def write_json(self, name: str, obj: Any, *, top: bool = False) -> Path:
        """Write a result (``results/<name>``) or, with ``top``, a top-level file such as ``config.json``."""
        target = self.path / name if top else self.path / "results" / name
        atomic_write_text(target, to_json(obj))
        return target

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` and close it."""
        import matplotlib.pyplot as plt

        target = self.path / "figures" / f"{Path(name).stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp.png")
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, target)
        plt.close(fig)
        return target

    def write_report(self, markdown: str) -> Path:
        target = self.path / "report.md"
        atomic_write_text(target, markdown.rstrip() + "\n")
        return target

    def subdir(self, name: str) -> Path:
        target = self.path / name
        target.mkdir(parents=True, exist_ok=True)
        return target


class StaleRunError(ToolkitError):
    """A run found ``running`` whose process no longer exists."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


@contextmanager
def track_runs() -> Iterator[list[RunDir]]:
    """Finish every run created (or :meth:`RunDir.start`-ed) inside the block when it ends: ``completed`` when it
    returns, ``failed``/``interrupted`` with ``error.txt`` when it raises. Runs already finished are left alone."""
    runs: list[RunDir] = []
    _TRACKERS.append(runs)
    try:
        yield runs
    except BaseException as exc:
        _finish_running(runs, exc)
        raise
    else:
        _finish_running(runs, None)
    finally:
        _TRACKERS.remove(runs)


def _finish_running(runs: list[RunDir], error: BaseException | None) -> None:
    for run in runs:
        try:
            still_running = run.status == RUNNING
        except (OSError, ValueError):
            still_running = True  # finish() says why it cannot record
        if still_running:
            run.finish(error)
