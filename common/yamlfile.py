"""One way to read a YAML file the toolkit depends on: a missing file, unreadable bytes or malformed YAML become one
:class:`~common.errors.ConfigError` line naming the file, the line and column, and what to do (never a raw
``yaml.parser.ParserError`` traceback)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError

__all__ = ["load_yaml", "load_yaml_mapping"]


def load_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """The parsed contents of ``path`` (``what`` names it in errors, e.g. "steering config")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found at {path} (cannot read it); check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}; fix the file (an unquoted ':' or a tab "
                          "in indentation is the usual cause)") from None


def load_yaml_mapping(path: str | os.PathLike, what: str = "YAML file", *, empty_ok: bool = True) -> dict[str, Any]:
    """Like :func:`load_yaml` for a file whose top level must be a mapping (an empty file is ``{}`` if allowed)."""
    raw = load_yaml(path, what)
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(raw).__name__}")
    return raw
