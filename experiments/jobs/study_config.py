"""The study's configuration (``configs/study/veth.yaml``): loaded and validated before any model work.

Each section carries settings of the job it feeds, under that job's own field names: ``trials`` (the trials job's
settings dict), ``probe`` (:class:`~experiments.jobs.probe_config.ProbeConfig`), ``steering``
(:class:`~experiments.jobs.steer.SteerConfig`, plus ``config``: the base steering file), ``patching``
(:class:`~experiments.jobs.patch.PatchConfig`, plus the pair rule's ``response`` and ``converged_pair``), ``compare``
(:class:`~experiments.jobs.compare.CompareConfig`, plus ``cross_family``). Field names and types are checked against
those classes, so the study never keeps a second list of a job's settings. An unknown field, a wrong type or
malformed YAML is one :class:`~common.errors.ConfigError` line naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import REPO_ROOT
from common.errors import ConfigError
from common.yamlfile import load_yaml_mapping
from experiments.jobs.compare import CompareConfig
from experiments.jobs.patch import PatchConfig
from experiments.jobs.probe_config import ProbeConfig
from experiments.jobs.steer import SteerConfig
from experiments.jobs.trials import DEFAULTS as TRIALS_DEFAULTS

__all__ = ["DEFAULT_STUDY_CONFIG", "SECTIONS", "StudyConfig", "load_study_config"]

DEFAULT_STUDY_CONFIG = REPO_ROOT / "configs" / "study" / "veth.yaml"

#: Settings the study itself decides in each job (where its sub-runs and inputs are): not settable in a section.
_SET_BY_STUDY = {"trials": {"scenario", "backend", "base_url", "served_model", "prompt_format", "steering", "weights",
                            "revision", "dtype"},
                 "probe": {"trials", "scenario", "eval_file", "store_root"},
                 "steering": {"scenario", "directions"},
                 "compare": {"probe_runs", "trials_runs", "runs_root", "store_root", "scenario"}}
#: The study's own fields in each section (beside the job's).
_EXTRA: dict[str, dict[str, Any]] = {
    "steering": {"config": str},
    "patching": {"response": str, "converged_pair": bool},
    "compare": {"cross_family": str | None},
}
_SMALL = {"review": {"n": int, "seed": int},
          "effect": {"n_bootstrap": int, "n_permutations": int, "seed": int},
          "verdicts": {"min_n": int, "alpha": float, "min_gap": float}}
_JOB_CLASSES = {"probe": ProbeConfig, "steering": SteerConfig, "patching": PatchConfig, "compare": CompareConfig}
SECTIONS = ("trials", "review", "probe", "effect", "steering", "patching", "compare", "verdicts")
_TOP = {"model": str | None, "base": str | None, "scenario": str | None, "quick": dict}

_DEFAULTS: dict[str, dict[str, Any]] = {
    "review": {"n": 20, "seed": 0}, "effect": {"n_bootstrap": 2000, "n_permutations": 2000, "seed": 0},
    "verdicts": {"min_n": 5, "alpha": 0.05, "min_gap": 0.5},
    "steering": {"config": "configs/steering/framing_shift.yaml"},
    "patching": {"response": "Final verdict:", "converged_pair": True, "positions": "segments"},
    "compare": {"cross_family": None},
}


def _hints(section: str) -> dict[str, Any]:
    """Field name -> type for ``section``: the job class's annotations, or the trials defaults' value types."""
    if section == "trials":
        out = {k: (type(v) if v is not None else Any) for k, v in TRIALS_DEFAULTS.items()}
        out["max_new_tokens"] = int | None
        out["thinking"] = bool | None
    elif section in _JOB_CLASSES:
        cls = _JOB_CLASSES[section]
        module = __import__(cls.__module__, fromlist=["_"])
        out = typing.get_type_hints(cls, vars(module))
    else:
        out = dict(_SMALL[section])
    for name in _SET_BY_STUDY.get(section, ()):
        out.pop(name, None)
    out.update(_EXTRA.get(section, {}))
    return out


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list) or hint in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else \
            isinstance(value, (list, tuple))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _check_section(path: Path, section: str, values: Any, where: str = "") -> dict[str, Any]:
    label = f"{where}{section}"
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: '{label}' must be a mapping of settings, got {type(values).__name__}")
    hints = _hints(section)
    for key, value in values.items():
        if key not in hints:
            fixed = " (the study sets it)" if key in _SET_BY_STUDY.get(section, ()) else ""
            raise ConfigError(f"{path}: unknown field '{label}.{key}'{fixed}; known: {', '.join(sorted(hints))}")
        if not _matches(value, hints[key]):
            raise ConfigError(f"{path}: field '{label}.{key}' must be {_type_name(hints[key])}, got {value!r}")
    return dict(values)


@dataclass(frozen=True)
class StudyConfig:
    """The validated study settings: each section is the override dict for its job (see the module docstring)."""

    path: str
    model: str | None
    base: str | None
    scenario: str | None
    sections: dict[str, dict[str, Any]]
    quick: bool = False
    shrunk: dict[str, dict[str, Any]] = field(default_factory=dict)  # --quick's overrides, for the report

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def settings_hash(self, model_key: str | None = None) -> str:
        """What identifies a study's work: every section, the scenario and the model's identity key (the config
        file's path and the --quick flag only say where the settings came from)."""
        data = {"sections": self.sections, "scenario": self.scenario, "base": self.base, "model_key": model_key}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def steer_config(self) -> SteerConfig:
        """The steering job's config: its base file with this study's overrides and scenario."""
        overrides = self.section("steering")
        base = overrides.pop("config")
        base_path = Path(base) if Path(base).is_absolute() else REPO_ROOT / base
        if self.scenario:
            overrides["scenario"] = self.scenario
        return SteerConfig.from_yaml(base_path, **overrides)

    def patch_config(self) -> PatchConfig:
        values = {k: v for k, v in self.section("patching").items() if k not in _EXTRA["patching"]}
        return PatchConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_study_config(path: str | Path | None = None, *, quick: bool = False, model: str | None = None,
                      base: str | None = None) -> StudyConfig:
    """Read, merge (``--quick`` overrides; ``model``/``base`` from the command line) and validate a study config."""
    path = Path(path) if path is not None else DEFAULT_STUDY_CONFIG
    raw = load_yaml_mapping(path, "study config", empty_ok=True)
    for key in raw:
        if key not in _TOP and key not in SECTIONS:
            raise ConfigError(f"{path}: unknown field '{key}'; known: {', '.join([*_TOP, *SECTIONS])}")
    for key in ("model", "base", "scenario"):
        if not _matches(raw.get(key), str | None):
            raise ConfigError(f"{path}: field '{key}' must be text, got {raw.get(key)!r}")
    sections = {s: {**_DEFAULTS.get(s, {}), **_check_section(path, s, raw.get(s))} for s in SECTIONS}
    quick_raw = raw.get("quick") or {}
    if not isinstance(quick_raw, dict):
        raise ConfigError(f"{path}: 'quick' must be a mapping of section overrides")
    shrunk: dict[str, dict[str, Any]] = {}
    top = {k: raw.get(k) for k in ("model", "base", "scenario")}
    for key, value in quick_raw.items():
        if key in ("model", "base", "scenario"):
            if not _matches(value, str | None):
                raise ConfigError(f"{path}: field 'quick.{key}' must be text, got {value!r}")
            if quick:
                top[key] = value
            continue
        if key not in SECTIONS:
            raise ConfigError(f"{path}: unknown field 'quick.{key}'; known: model, base, scenario, "
                              f"{', '.join(SECTIONS)}")
        checked = _check_section(path, key, value, where="quick.")
        if quick:
            shrunk[key] = {k: {"full": sections[key].get(k, "(job default)"), "quick": v} for k, v in checked.items()}
            sections[key] = {**sections[key], **checked}
    cfg = StudyConfig(str(path), model or top["model"], base or top["base"], top["scenario"], sections, quick, shrunk)
    _validate_jobs(cfg, path)
    return cfg


def _validate_jobs(cfg: StudyConfig, path: Path) -> None:
    """Each job's own cheap validation (values, not just names and types), before any model work."""
    from behaviour.judges.factory import DEFAULT_JUDGE, check_judge_spec
    from behaviour.scenario import load_scenario
    from behaviour.trials import expand_conditions
    from experiments.jobs.compare import validate_config

    trials = cfg.section("trials")
    expand_conditions(load_scenario(cfg.scenario), trials.get("conditions", TRIALS_DEFAULTS["conditions"]),
                      paraphrases=trials.get("paraphrases", False))
    check_judge_spec(trials.get("judge", DEFAULT_JUDGE))
    for key in ("n", "batch_size"):
        if trials.get(key, 1) < 1:
            raise ConfigError(f"{path}: field 'trials.{key}' must be >= 1, got {trials[key]}")
    for section, keys in (("review", ("n",)), ("effect", ("n_bootstrap", "n_permutations")), ("verdicts", ("min_n",))):
        for key in keys:
            if cfg.sections[section][key] < (0 if section == "review" else 1):
                raise ConfigError(f"{path}: field '{section}.{key}' is out of range: {cfg.sections[section][key]}")
    if not 0 < cfg.sections["verdicts"]["alpha"] < 1:
        raise ConfigError(f"{path}: field 'verdicts.alpha' must be in (0, 1)")
    ProbeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.section("probe").items()}).validate()
    cfg.steer_config().validate()
    cfg.patch_config()
    compare = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.section("compare").items()
               if k != "cross_family"}
    validate_config(CompareConfig(**compare))
