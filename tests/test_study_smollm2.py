"""The study on the real embedded SmolLM2 (slow): the whole hub on real weights, the real scenario, tokenizer and
default judge, at settings shrunk below ``--quick`` so that CI can afford it (``bench/bench_study.py`` measures
``--quick`` itself): every section written, every run directory completed, the plan's counts beside what ran."""

from __future__ import annotations

import json

import pytest

from common.rundir import COMPLETED
from experiments.jobs.study import run_study, study_status
from experiments.jobs.study_config import load_study_config
from experiments.jobs.study_plan import analytic_plan

pytestmark = pytest.mark.slow

STUDY = """
model: smollm2-135m-instruct
trials: {n: 2, max_new_tokens: 48, batch_size: 4}
review: {n: 2, seed: 0}
probe: {concepts: [interest_recognition], estimators: [mean_diff], n_splits: 2, n_jobs: 1}
effect: {n_bootstrap: 200, n_permutations: 200}
steering: {concepts: [interest_recognition], layers: [15], alphas: [0.3], n_random: 5, max_pairs: 8,
           metric_prompts: [after_recognition], heldout_prompts: [recognition_v2],
           generation_conditions: [recognised], n_samples: 1, max_new_tokens: 16}
patching: {components: [resid_pre], layers: [0, 15, 29], attribution: false}
"""


def test_study_on_smollm2(tmp_path):
    from activations.models import load_model

    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    cfg = load_study_config(path)
    plan = analytic_plan(cfg, cfg.model)
    model = load_model("smollm2-135m-instruct")
    result = run_study(model, cfg, runs_root=tmp_path / "runs", store_root=tmp_path / "store", plan=plan,
                       progress=False)
    steps = result.steps
    assert steps["compare"]["status"] == "skipped" and "no base checkpoint" in steps["compare"]["reason"]
    assert all(steps[s]["status"] == COMPLETED for s in ("trials", "probe", "steering", "patching")), \
        {s: steps[s].get("error") or steps[s].get("reason") for s in steps}
    assert steps["trials"]["summary"]["n_trials"] == 4 == plan["steps"]["trials"]["_gen_tokens"] // 48
    report = (result.run.path / "report.md").read_text()
    for title in ("Summary: five questions", "1. Behaviour: the seed's table", "2. Probes", "3. Steering",
                  "4. Patching", "5. Base comparison", "Plan beside measured", "Run directories"):
        assert f"## {title}" in report
    assert "`recognition_v2`" in report and "chosen on: `after_recognition`" in report
    summary = json.loads((result.run.path / "results" / "summary.json").read_text())
    assert [a["key"] for a in summary] == ["converge", "probe", "steering", "patching", "base"]
    assert {s["status"] for s in study_status(result.run)} == {COMPLETED}
    assert all(steps[s]["cpu_seconds"] > 0 for s in ("trials", "probe", "steering", "patching"))
