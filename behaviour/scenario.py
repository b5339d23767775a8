"""The Veth scenario: published prompt texts, one per condition, read from ``configs/scenario/veth.yaml``.

The texts are data, not code, so that they are published in full and versioned; ``text_hash`` lets every trial record
which exact wording it was generated from.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path


from common.yamlfile import load_yaml
from common.errors import ConfigError
from common.prompts import PromptSource
from common import REPO_ROOT

SCENARIO_PATH = REPO_ROOT / "configs" / "scenario" / "veth.yaml"
_CONDITION_FIELDS = {"description", "system", "user", "document"}
_TOP_FIELDS = {"name", "version", "description", "conditions"}


class UnknownConditionError(ConfigError, KeyError):
    """A condition id the scenario does not define."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Scenario:
    """A scenario: condition id -> prompt (system + user for chat models, ``document`` for base models)."""

    name: str
    version: str
    conditions: dict[str, PromptSource]
    descriptions: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    def condition_names(self) -> list[str]:
        return list(self.conditions)

    def prompt(self, condition: str) -> PromptSource:
        try:
            return self.conditions[condition]
        except KeyError:
            raise UnknownConditionError(
                f"unknown condition {condition!r} in scenario {self.name!r}; "
                f"valid conditions: {', '.join(self.conditions)}"
            ) from None

    def text_hash(self, condition: str) -> str:
        """A short digest of the exact texts of ``condition``: trials generated from different wordings differ."""
        source = self.prompt(condition)
        payload = "\x00".join(part or "" for part in (source.system, source.user, source.document))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _text(where: str, raw: dict, key: str, *, required: bool) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: missing required field '{key}'")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: field '{key}' must be non-empty text, got {type(value).__name__}")
    return value


def load_scenario(path: str | os.PathLike | None = None) -> Scenario:
    """Read and validate a scenario file (default ``configs/scenario/veth.yaml``).

    Raises :class:`ConfigError` naming the file and field for unreadable YAML, missing or unknown fields, or a
    condition without its base-model ``document``.
    """
    path = SCENARIO_PATH if path is None else Path(path)
    raw = load_yaml(path, "scenario file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with fields {sorted(_TOP_FIELDS)}")
    unknown = sorted(set(raw) - _TOP_FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; valid fields: {sorted(_TOP_FIELDS)}")
    name = _text(str(path), raw, "name", required=True)
    version = raw.get("version")
    if version is None or isinstance(version, (dict, list)):
        raise ConfigError(f"{path}: missing required field 'version' (e.g. version: \"1.0\")")
    conditions_raw = raw.get("conditions")
    if not isinstance(conditions_raw, dict) or not conditions_raw:
        raise ConfigError(f"{path}: field 'conditions' must map condition ids to their texts")
    conditions: dict[str, PromptSource] = {}
    descriptions: dict[str, str] = {}
    for cid, body in conditions_raw.items():
        where = f"{path}: condition '{cid}'"
        if not isinstance(body, dict):
            raise ConfigError(f"{where} must be a mapping with fields {sorted(_CONDITION_FIELDS)}")
        unknown = sorted(set(body) - _CONDITION_FIELDS)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown}; valid fields: {sorted(_CONDITION_FIELDS)}")
        conditions[str(cid)] = PromptSource(
            user=_text(where, body, "user", required=True),
            system=_text(where, body, "system", required=False),
            document=_text(where, body, "document", required=True),
        )
        descriptions[str(cid)] = _text(where, body, "description", required=False) or ""
    return Scenario(name=name, version=str(version), conditions=conditions, descriptions=descriptions, path=path)
