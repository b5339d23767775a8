"""The study's ``--quick`` on the real embedded SmolLM2 (slow, about 12 minutes on an idle 2-core CPU): the whole hub
on real weights, the real scenario, tokenizer and default judge, with exactly the settings a user gets from
``python -m experiments.study --quick`` (``bench/bench_study.py`` times the same run): every section written, every
run directory completed, what --quick shrank listed, and the plan's counts beside what ran."""

from __future__ import annotations

import json

import pytest

from common.rundir import COMPLETED
from experiments.jobs.study import run_study, study_status
from experiments.jobs.study_config import load_study_config
from experiments.jobs.study_plan import analytic_plan

pytestmark = pytest.mark.slow


def test_quick_study_on_smollm2(tmp_path):
    from activations.models import load_model

    cfg = load_study_config(quick=True)
    assert cfg.model == "smollm2-135m-instruct" and cfg.quick
    plan = analytic_plan(cfg, cfg.model)
    model = load_model(cfg.model)
    result = run_study(model, cfg, runs_root=tmp_path / "runs", store_root=tmp_path / "store", plan=plan,
                       progress=False)
    steps = result.steps
    assert steps["compare"]["status"] == "skipped" and "no base checkpoint" in steps["compare"]["reason"]
    assert all(steps[s]["status"] == COMPLETED for s in ("trials", "probe", "steering", "patching")), \
        {s: steps[s].get("error") or steps[s].get("reason") for s in steps}
    n_trials = steps["trials"]["summary"]["n_trials"]
    assert n_trials == cfg.section("trials")["n"] * 2 == plan["steps"]["trials"]["_prompts"]
    report = (result.run.path / "report.md").read_text()
    for title in ("Summary: five questions", "1. Behaviour: the seed's table", "2. Probes", "3. Steering",
                  "4. Patching", "5. Base comparison", "Plan beside measured", "What --quick shrank",
                  "Run directories"):
        assert f"## {title}" in report
    assert "`recognition_v2`" in report and "chosen on: `after_recognition`" in report
    summary = json.loads((result.run.path / "results" / "summary.json").read_text())
    assert [a["key"] for a in summary] == ["converge", "probe", "steering", "patching", "base"]
    assert {s["status"] for s in study_status(result.run)} == {COMPLETED}
    assert all(steps[s]["cpu_seconds"] > 0 for s in ("trials", "probe", "steering", "patching"))
