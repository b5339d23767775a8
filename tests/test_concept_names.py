"""Concept names are accepted with hyphens or underscores everywhere (``interest-recognition`` = ``interest_recognition``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import ConfigError
from experiments.jobs.probe_config import ProbeConfig
from probes.concepts import CONCEPTS, canonical_concept, load_concept, load_concepts, read_labelled_jsonl


@pytest.mark.parametrize("spelling", ["interest-recognition", "interest_recognition", " Interest-Recognition "])
def test_spellings_name_the_same_concept(spelling: str) -> None:
    assert canonical_concept(spelling) == "interest_recognition"
    assert load_concept(spelling).data_hash == load_concept("interest_recognition").data_hash
    assert list(load_concepts([spelling])) == ["interest_recognition"]


def test_outside_file_with_hyphenated_concepts(tmp_path: Path) -> None:
    rows = [{"concept": "perspective-taking", "text": "a", "label": 1},
            {"concept": "perspective_taking", "text": "b", "label": 0}]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = read_labelled_jsonl(path)
    assert [r["concept"] for r in read] == ["perspective_taking", "perspective_taking"]  # one concept, both classes


def test_probe_config_takes_either_spelling_and_still_rejects_unknown_names() -> None:
    cfg = ProbeConfig(concepts=("interest-recognition", "perspective_taking"))
    assert cfg.concepts == CONCEPTS
    cfg.validate()
    with pytest.raises(ConfigError, match="unknown concept"):
        ProbeConfig(concepts=("interest-recogniton",)).validate()


def test_probe_cli_accepts_hyphens_before_loading_a_model(tmp_path: Path) -> None:
    from experiments.probe import main

    # A bad estimator fails in validation, after the concept names were accepted and before any model loads.
    with pytest.raises(ConfigError, match="unknown estimator"):
        main(["--model", "/no/such/model", "--concepts", "interest-recognition,perspective-taking",
              "--estimators", "nope", "--runs", str(tmp_path / "runs")])
    with pytest.raises(ConfigError, match="unknown concept"):
        main(["--model", "/no/such/model", "--concepts", "empathy", "--runs", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()
