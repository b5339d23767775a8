"""Every YAML the toolkit reads fails on malformed input with one ConfigError line naming the file and the line."""

from __future__ import annotations

import pytest

from activations.registry import load_registry
from behaviour.scenario import load_scenario
from common.errors import ConfigError
from common.yamlfile import load_yaml, load_yaml_mapping
from experiments.jobs.steer import SteerConfig, load_neutral, load_prefills
from interventions.steered_trials import SteeringSpec

BROKEN = "alphas: [0.1\nlayers: 3\n"


@pytest.mark.parametrize("read", [load_yaml, SteerConfig.from_yaml, load_prefills, load_neutral, load_scenario,
                                  load_registry, SteeringSpec.from_file])
def test_malformed_yaml_is_one_line_naming_file_and_line(tmp_path, read):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as info:
        read(path)
    message = str(info.value)
    assert str(path) in message and "line 2" in message and "\n" not in message


def test_missing_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "nope.yaml", "study config")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml_mapping(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml_mapping(tmp_path / "empty.yaml") == {}
