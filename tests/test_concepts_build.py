"""The concept builder reads its scenarios from the data files and rejects malformed ones with a one-line error.

``tests/test_concepts.py::test_build_script_reproduces_committed_files`` compares a fresh build with the committed
JSONL; these tests show that the data files are what that build reads, so an edit without a rebuild fails it.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probes.concepts import DATA_DIR

SOURCES = ["build.py", "scenarios_interest_recognition.yaml", "scenarios_perspective_taking.yaml",
           "handwritten_interest_recognition.tsv", "handwritten_perspective_taking.tsv"]


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    """The builder and its data files, copied to a temporary folder (no generated files)."""
    folder = tmp_path / "concepts"
    folder.mkdir()
    for name in SOURCES:
        shutil.copy(DATA_DIR / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("concepts_build", DATA_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_an_edit_to_a_scenario_changes_exactly_its_rows(data_copy, tmp_path):
    old, new = "The hens crowd into one corner", "The hens huddle in one corner"
    _replace(data_copy / "scenarios_interest_recognition.yaml", old, new)
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(data_copy / "build.py"), "--out", str(out)], check=True, capture_output=True)

    assert (out / "perspective_taking.jsonl").read_bytes() == (DATA_DIR / "perspective_taking.jsonl").read_bytes()
    built, committed = _lines(out / "interest_recognition.jsonl"), _lines(DATA_DIR / "interest_recognition.jsonl")
    assert len(built) == len(committed)
    changed = [(json.loads(b), json.loads(c)) for b, c in zip(built, committed) if b != c]
    # the hens are the first scenario: three pairs, both twins of each
    assert sorted(b["id"] for b, _ in changed) == sorted(f"ir-t00{k}-{s}" for k in (1, 2, 3) for s in ("pos", "neg"))
    for b, c in changed:
        assert old in c["text"] and b["text"] == c["text"].replace(old, new)


@pytest.mark.parametrize("concept, old, new, message", [
    ("interest_recognition", "  - group: farm_animals\n    domain: agriculture\n    entity: hens\n",
     "  - group: farm_beasts\n    domain: agriculture\n    entity: hens\n", "unknown group 'farm_beasts'"),
    ("interest_recognition", "    op: put the barn lights on a timer\n", "", "missing keys ['op']"),
    ("interest_recognition", "    pron: pl\n    obs: The hens crowd", "    pron: they\n    obs: The hens crowd",
     "unknown pron 'they'"),
    ("interest_recognition", "    org: the farm\n", "    org: the farm\n    colour: red\n", "unknown keys ['colour']"),
    ("interest_recognition", "    actor: farm manager\n", "    actor: no\n", "actor must be a non-empty string"),
    ("interest_recognition", "  - what {np} need{s}\n", "  - what {np} want{ed}\n", "cannot fill 'what {np} want{ed}'"),
    ("perspective_taking", "    affected: the hens\n", "    affected: the hens\n    affected_plural: maybe\n",
     "affected_plural must be a bool"),
    ("perspective_taking", "\nscenarios:\n", "\nscenario:\n", "expected top-level keys"),
    ("perspective_taking", "  - a: \"{sit}. To {X}", "  - a: {sit}. To {X}", "cannot read"),
])
def test_malformed_data_is_refused_with_a_one_line_error(build, data_copy, concept, old, new, message):
    path = data_copy / f"scenarios_{concept}.yaml"
    _replace(path, old, new)
    with pytest.raises(SystemExit) as info:
        build.build_all(data_copy)
    text = str(info.value.code)
    assert message in text and "\n" not in text, text
    assert str(path) in text


def test_the_builder_refuses_before_writing(data_copy, tmp_path):
    _replace(data_copy / "scenarios_perspective_taking.yaml", "    affected: the hens\n", "")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(data_copy / "build.py"), "--out", str(out)], capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert "missing keys ['affected']" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
