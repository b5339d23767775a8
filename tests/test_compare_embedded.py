"""The comparison's plan on the two embedded real models: different families, so only probes and behaviour apply."""

from __future__ import annotations

import pytest

from activations.models import load_model
from common.errors import ConfigError
from experiments.jobs.compare import CompareConfig, plan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair():
    return {"base": load_model("gemma-3-270m"), "instruct": load_model("smollm2-135m-instruct")}


def test_different_families_skip_every_same_width_analysis_with_the_reason(pair):
    skipped = plan(pair, CompareConfig())
    assert set(skipped) == {"cosine", "transfer", "patching", "kl"}
    for why in skipped.values():
        assert "18 layers of width 640" in why and "30 layers of width 576" in why


def test_asking_for_a_same_width_analysis_is_an_error(pair):
    with pytest.raises(ConfigError, match="--analyses kl cannot run"):
        plan(pair, CompareConfig(analyses=("probes", "kl")))
