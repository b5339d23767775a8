"""The model registry (configs/models.yaml): required entries, their metadata, and validation of bad files."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from common.errors import ConfigError, ToolkitError, UnknownModelError
from activations.registry import DEFAULT_MODEL, REGISTRY_PATH, ModelSpec, get_spec, load_registry

# The seed study's models, the follow-up's base model, and the two embedded models (issue text).
SEED_MODELS = ("llama-3.1-8b", "llama-3.3-70b", "llama-4-scout-17b", "qwen3-32b", "gpt-oss-120b")
REQUIRED = SEED_MODELS + ("llama-3.1-8b-base", "qwen3-8b", "qwen3-8b-base", "smollm2-135m-instruct", "gemma-3-270m")
# Seed models without a published same-size base, and the nearest base the note must name (None: no base at all).
# Checked against the publishers' pages (see the registry's base_note texts).
NEAREST_BASE = {"llama-3.3-70b": "llama-3.1-70b-base", "qwen3-32b": "qwen3-14b-base", "gpt-oss-120b": None}


@pytest.fixture(scope="module")
def registry() -> dict[str, ModelSpec]:
    return load_registry()


def write_registry(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(textwrap.dedent(body))
    return path


GOOD_ENTRY = """\
models:
  tiny:
    source: hub
    hub_id: org/tiny
    kind: instruct
    prompt_format: chat
"""


# --- the shipped registry -------------------------------------------------------------------------------------------


def test_every_required_name_is_registered(registry):
    missing = [name for name in REQUIRED if name not in registry]
    assert not missing, f"registry lacks {missing}"
    assert DEFAULT_MODEL == "smollm2-135m-instruct"


def test_seed_models_name_a_base_or_explain_the_nearest(registry):
    for name in SEED_MODELS:
        spec = registry[name]
        assert spec.kind == "instruct"
        if spec.base:
            base = registry[spec.base]
            assert base.kind == "base" and base.architecture == spec.architecture, name
            assert name not in NEAREST_BASE, f"{name} has a base; update NEAREST_BASE"
        else:
            assert spec.base_note, f"{name} has neither base nor base_note"
            nearest = NEAREST_BASE[name]
            if nearest is None:
                assert re.search(r"\bno\b", spec.base_note), spec.base_note
                assert not any(s.kind == "base" and s.architecture == spec.architecture for s in registry.values())
            else:
                assert nearest in spec.base_note, spec.base_note
                assert registry[nearest].kind == "base"
                assert registry[nearest].architecture == spec.architecture


def test_follow_up_base_pair(registry):
    assert registry["qwen3-8b"].base == "qwen3-8b-base"
    assert registry["llama-3.1-8b"].base == "llama-3.1-8b-base"
    assert registry["qwen3-8b-base"].hub_id == "Qwen/Qwen3-8B-Base"


def test_kind_matches_prompt_format_and_thinking(registry):
    for spec in registry.values():
        if spec.kind == "base":
            assert spec.prompt_format == "document", spec.name
            assert not spec.thinking, f"{spec.name}: a base model has no thinking mode"
        else:
            assert spec.prompt_format == "chat", spec.name
    assert registry["qwen3-32b"].thinking and registry["qwen3-8b"].thinking
    assert registry["gpt-oss-120b"].thinking  # the harmony analysis channel
    assert not registry["llama-3.1-8b"].thinking and not registry["smollm2-135m-instruct"].thinking


def test_sources_are_complete(registry):
    for spec in registry.values():
        if spec.source == "packaged":
            assert spec.package and spec.file, spec.name
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256 or ""), f"{spec.name}: sha256 must be 64 hex digits"
        else:
            assert spec.source == "hub", spec.name
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", spec.hub_id or ""), spec.name
        if spec.hub_id and spec.hub_id.startswith("meta-llama/"):
            assert spec.gated, f"{spec.name}: meta-llama repos need a licence and token"


def test_embedded_models(registry):
    smol, gemma = registry["smollm2-135m-instruct"], registry["gemma-3-270m"]
    assert (smol.source, smol.kind, smol.prompt_format) == ("packaged", "instruct", "chat")
    assert (gemma.source, gemma.kind, gemma.prompt_format) == ("packaged", "base", "document")


# --- validation of bad files ----------------------------------------------------------------------------------------


def test_a_valid_custom_file_loads(tmp_path):
    specs = load_registry(write_registry(tmp_path, GOOD_ENTRY))
    assert specs["tiny"] == ModelSpec(name="tiny", source="hub", hub_id="org/tiny", kind="instruct",
                                      prompt_format="chat")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("models:\n  tiny: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "top-level 'models:'"),
        ("models:\n  tiny: 3\n", "entry 'tiny' must be a mapping"),
        (GOOD_ENTRY + "    colour: blue\n", "entry 'tiny' has unknown field(s) ['colour']"),
        (GOOD_ENTRY.replace("kind: instruct", "kind: chatty"), "entry 'tiny' has kind='chatty'"),
        (GOOD_ENTRY.replace("    kind: instruct\n", ""), "entry 'tiny' is missing required field 'kind'"),
        (GOOD_ENTRY.replace("    hub_id: org/tiny\n", ""), "hub entry 'tiny' needs a hub_id"),
        (GOOD_ENTRY.replace("source: hub", "source: packaged"), "packaged entry 'tiny' needs package, file and sha256"),
        (GOOD_ENTRY + "    base: tiny-base\n", "'tiny' names base 'tiny-base', which is not in the registry"),
    ],
)
def test_bad_files_raise_config_error_naming_file_and_entry(tmp_path, body, expected):
    path = write_registry(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_unknown_field_error_lists_the_valid_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"valid fields: \[.*'hub_id'.*\]"):
        load_registry(write_registry(tmp_path, GOOD_ENTRY + "    hubid: org/x\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="model registry not found"):
        load_registry(tmp_path / "nope.yaml")


# --- unknown names --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "suggested"), [("llama-3.1-8", "llama-3.1-8b"), ("qwen3-32", "qwen3-32b"),
                                                  ("gpt-oss-12b", "gpt-oss-120b"), ("smollm2", "smollm2-135m-instruct")])
def test_unknown_model_suggests_close_matches(registry, typed, suggested):
    with pytest.raises(UnknownModelError) as info:
        get_spec(typed, registry)
    message = str(info.value)
    assert f"unknown model '{typed}'" in message
    hint = message.split("Did you mean:")[1].split("?")[0]
    assert suggested in hint
    assert "hub id" in message and "local directory" in message  # says what else can be passed


def test_unknown_model_error_is_a_readable_toolkit_error(registry):
    with pytest.raises(ToolkitError) as info:
        get_spec("zzzz-nothing-like-it", registry)
    assert isinstance(info.value, KeyError)
    assert not str(info.value).startswith(("'", '"'))  # not KeyError's repr()
    assert "Did you mean" not in str(info.value)


def test_get_spec_reads_the_shipped_file_by_default():
    assert get_spec("qwen3-8b").hub_id == "Qwen/Qwen3-8B"
    assert REGISTRY_PATH.name == "models.yaml" and REGISTRY_PATH.exists()


# --- python -m experiments.models -----------------------------------------------------------------------------------


def test_models_cli_lists_every_entry(registry, capsys):
    from experiments.models import main

    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "THINKING", "SOURCE", "BASE", "/", "NOTE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == list(registry)
    for name, spec in registry.items():
        cells = rows[name].split()
        assert cells[1] == spec.kind and cells[2] == ("yes" if spec.thinking else "no")
        assert (spec.hub_id if spec.source == "hub" else spec.package) in rows[name]
        if spec.base:
            assert f"base: {spec.base}" in rows[name]
        elif spec.base_note:
            assert spec.base_note in rows[name]
    assert "(gated)" in rows["llama-3.1-8b"] and "(gated)" not in rows["qwen3-8b"]


def test_models_cli_json_has_every_field(registry, capsys):
    import dataclasses
    import json

    from experiments.models import main

    assert main(["--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == {name: dataclasses.asdict(spec) for name, spec in registry.items()}


def test_models_cli_runs_as_a_module():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "experiments.models"], capture_output=True, text=True, timeout=120,
                          cwd=REGISTRY_PATH.parents[1])
    assert done.returncode == 0, done.stderr
    assert "qwen3-32b" in done.stdout and "qwen3-14b-base" in done.stdout
