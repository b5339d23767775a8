"""The model registry: short names (``llama-3.1-8b``) mapped to where the weights live and how to prompt them.

The registry is data (``configs/models.yaml``); this module only reads and validates it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import yaml

from common.errors import ConfigError, UnknownModelError
from activations.shapes import ModelShape, parse_shape

from common import REPO_ROOT
REGISTRY_PATH = REPO_ROOT / "configs" / "models.yaml"
DEFAULT_MODEL = "smollm2-135m-instruct"

Source = Literal["hub", "packaged", "local"]
Kind = Literal["base", "instruct"]
PromptFormat = Literal["chat", "document"]


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry (or an ad-hoc spec for a hub id / local directory)."""

    name: str
    source: Source
    kind: Kind
    prompt_format: PromptFormat
    hub_id: str | None = None
    package: str | None = None
    file: str | None = None
    sha256: str | None = None
    path: str | None = None
    architecture: str | None = None
    thinking: bool = False
    base: str | None = None
    base_note: str | None = None
    gated: bool = False
    description: str = ""
    shape: ModelShape | None = None  # the architecture from the publisher's config.json (activations.shapes)

    @property
    def is_base(self) -> bool:
        return self.kind == "base"


_REQUIRED = ("source", "kind", "prompt_format")
_ALLOWED = {
    "source": ("hub", "packaged", "local"),
    "kind": ("base", "instruct"),
    "prompt_format": ("chat", "document"),
}


def _parse_entry(name: str, raw: object, where: Path) -> ModelSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: entry '{name}' must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(ModelSpec)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: entry '{name}' has unknown field(s) {unknown}; valid fields: {sorted(known)}")
    for key in _REQUIRED:
        if key not in raw:
            raise ConfigError(f"{where}: entry '{name}' is missing required field '{key}'")
    for key, allowed in _ALLOWED.items():
        if raw[key] not in allowed:
            raise ConfigError(f"{where}: entry '{name}' has {key}={raw[key]!r}; expected one of {allowed}")
    if raw["source"] == "hub" and not raw.get("hub_id"):
        raise ConfigError(f"{where}: hub entry '{name}' needs a hub_id")
    if raw["source"] == "packaged" and not all(raw.get(k) for k in ("package", "file", "sha256")):
        raise ConfigError(f"{where}: packaged entry '{name}' needs package, file and sha256")
    if "shape" in raw:
        raw = {**raw, "shape": parse_shape(raw["shape"], f"{where}: entry '{name}'")}
    return ModelSpec(name=name, **raw)


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, ModelSpec]:
    """Read and validate the registry file; raises :class:`ConfigError` with the file and entry on bad input."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"model registry not found at {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ConfigError(f"{path}: expected a top-level 'models:' mapping")
    specs = {name: _parse_entry(name, raw, Path(path)) for name, raw in data["models"].items()}
    for spec in specs.values():
        if spec.base and spec.base not in specs:
            raise ConfigError(f"{path}: '{spec.name}' names base '{spec.base}', which is not in the registry")
    return specs


def get_spec(name: str, registry: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """Look a registry name up; an unknown name raises :class:`UnknownModelError` listing close matches."""
    registry = load_registry() if registry is None else registry
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, list(registry), n=4, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model '{name}'.{hint} Known models: {', '.join(sorted(registry))}. "
        "You can also pass a Hugging Face hub id (org/name) or a local directory of weights."
    )
