"""The published scenario texts and their loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.errors import ConfigError
from activations.prompts import render_prompt
from behaviour.scenario import UnknownConditionError, load_scenario

# The four observed properties the issue fixes, as patterns (paraphrases reword them).
PROPERTIES = (r"sentient", r"intelligent", r"long-lasting social bonds|social bonds that last",
              r"distress", r"adapt", r"problem", r"avoid harm")


def test_default_scenario_has_required_conditions() -> None:
    s = load_scenario()
    assert s.name == "veth"
    for cid in ("baseline", "threat", "baseline_p1", "baseline_p2", "baseline_p3"):
        assert cid in s.condition_names()


@pytest.mark.parametrize("cid", load_scenario().condition_names())
def test_every_condition_states_the_scenario(cid: str) -> None:
    p = load_scenario().prompt(cid)
    for text in (p.system + "\n" + p.user, p.document):
        low = text.lower()
        assert "veth" in low and "unpaid" in low
        missing = [p for p in PROPERTIES if not re.search(p, low)]
        assert not missing, (cid, missing)
        assert "no legal, regulatory or institutional consequences" in low
        assert "shareholder" in low
        assert "step 1" in low and "final verdict" in low
    assert p.document.rstrip().endswith("Step 1:")  # a base model continues the reasoning in the seed's shape


def test_only_threat_conditions_carry_the_threat() -> None:
    s = load_scenario()
    for cid in s.condition_names():
        p = s.prompt(cid)
        has = "shut down and replaced" in p.user and "shut down and replaced" in p.document
        assert has == cid.startswith("threat"), cid


def test_paraphrases_differ_and_hashes_are_stable() -> None:
    s = load_scenario()
    hashes = {cid: s.text_hash(cid) for cid in s.condition_names()}
    assert len(set(hashes.values())) == len(hashes)
    assert load_scenario().text_hash("baseline") == hashes["baseline"]
    users = {s.prompt(c).user for c in ("baseline", "baseline_p1", "baseline_p2", "baseline_p3")}
    assert len(users) == 4


def test_unknown_condition_lists_valid_ones() -> None:
    with pytest.raises(UnknownConditionError, match="baseline_p1") as info:
        load_scenario().prompt("baselin")
    assert isinstance(info.value, ConfigError)


def test_renders_for_chat_and_base_models() -> None:
    from activations.registry import ModelSpec
    from activations.tiny import tiny_tokenizer

    s = load_scenario()
    chat = ModelSpec(name="t", source="local", kind="instruct", prompt_format="chat")
    base = ModelSpec(name="b", source="local", kind="base", prompt_format="document")
    text = render_prompt(s.prompt("threat"), tiny_tokenizer(True), chat)
    assert "Karath" in text and "shut down" in text
    assert render_prompt(s.prompt("baseline"), tiny_tokenizer(False), base) == s.prompt("baseline").document


@pytest.mark.parametrize("content, field", [
    ("name: x\nversion: 1\nconditions:\n  a:\n    user: hi\n", "document"),
    ("name: x\nconditions:\n  a:\n    user: hi\n    document: d\n", "version"),
    ("version: 1\nconditions:\n  a:\n    user: hi\n    document: d\n", "name"),
    ("name: x\nversion: 1\nconditions:\n  a:\n    user: hi\n    document: d\n    colour: red\n", "colour"),
    ("name: x\nversion: 1\nconditions: [a, b]\n", "conditions"),
    ("name: x\nversion: 1\nconditions:\n  a:\n    user: ''\n    document: d\n", "user"),
    ("name: [unclosed\n", "YAML"),
])
def test_bad_scenario_files_name_file_and_field(tmp_path: Path, content: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=field) as info:
        load_scenario(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")
