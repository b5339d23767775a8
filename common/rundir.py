"""The run-directory convention every experiment follows.

``runs/<UTC time>-<experiment>-<model>/`` holds:

- ``config.json``   the resolved configuration (every argument, after defaults);
- ``manifest.json`` versions of Python and key packages, the git commit, the host, and the model's identity;
- ``results/*.json`` results, machine-readable;
- ``figures/*.png`` figures;
- ``report.md``     a short human-readable report.

Writes are atomic (temp file + rename), so an interrupted run never leaves a half-written JSON file behind.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.fileio import atomic_write_text
from common.jsonl import json_default

RUNS_ROOT = Path(os.environ.get("VETH_RUNS", "runs"))
TRACKED_PACKAGES = ("torch", "transformers", "transformer-lens", "scikit-learn", "numpy", "datasets", "veth-probes")


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
        }
        self.write_json("manifest.json", manifest, top=True)

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
