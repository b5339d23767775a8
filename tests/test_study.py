"""The study end to end on a tiny random-weight model (fast): every section, verdicts computed from the numbers,
reuse and resumption after an interrupted step, stale runs reaped, and bad input as one clear line."""

from __future__ import annotations

import csv
import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from activations.tiny import tiny_model
from common.errors import ConfigError
from common.rundir import COMPLETED, FAILED, RUNNING, RunDir
from experiments.jobs import study as study_job
from experiments.jobs.study import run_study, study_status
from experiments.jobs.study_config import load_study_config
from experiments.jobs.study_verdicts import VERDICTS, verdict
from test_trials import SHORT_SCENARIO  # the trials tests' short scenario keeps tiny models fast

STUDY = """
model: tiny
scenario: {scenario}
trials: {{n: 3, max_new_tokens: 6, temperature: 1.0, batch_size: 6, judge: rules}}
review: {{n: 2, seed: 1}}
probe: {{concepts: [interest_recognition], estimators: [mean_diff], n_splits: 2, n_jobs: 1}}
effect: {{n_bootstrap: 200, n_permutations: 200}}
steering: {{against: [" not"], proceed: [" proceed"], layers: [1], alphas: [0.5], n_random: 5, max_pairs: 3,
           metric_prompts: [plain], heldout_prompts: [recognition_v2, shift_v2], kl_threshold: 10.0,
           generation_conditions: [recognised], n_samples: 1, max_new_tokens: 4, judge: rules,
           concepts: [interest_recognition]}}
patching: {{components: [resid_pre], against: [" not"], proceed: [" proceed"], attribution: false}}
"""


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=0)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study-config")
    scenario = tmp / "short.yaml"
    scenario.write_text(SHORT_SCENARIO)
    path = tmp / "study.yaml"
    path.write_text(STUDY.format(scenario=scenario))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One activation store for the module: a study's probe step reads another's activations (keyed by model)."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def first(model, config_path, tmp_path_factory, store):
    tmp = tmp_path_factory.mktemp("study")
    cfg = load_study_config(config_path)
    result = run_study(model, cfg, runs_root=tmp / "runs", store_root=store, progress=False)
    return tmp, cfg, result


def test_every_section_and_verdicts_from_the_numbers(first):
    tmp, cfg, result = first
    steps = result.steps
    assert {s: steps[s]["status"] for s in steps} == {"trials": COMPLETED, "probe": COMPLETED,
                                                      "steering": COMPLETED, "patching": COMPLETED,
                                                      "compare": "skipped"}
    assert "no base checkpoint" in steps["compare"]["reason"]
    report = (result.run.path / "report.md").read_text()
    for title in ("Summary: five questions", "1. Behaviour: the seed's table", "2. Probes", "3. Steering",
                  "4. Patching", "5. Base comparison", "Plan beside measured", "Run directories"):
        assert f"## {title}" in report
    html = (result.run.path / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html and "http" not in html.split("<body>")[1] \
        .replace("href=\"#", "")  # self-contained: no external resource
    summary = json.loads((result.run.path / "results" / "summary.json").read_text())
    assert [a["key"] for a in summary] == ["converge", "probe", "steering", "patching", "base"]
    assert all(a["verdict"] in VERDICTS for a in summary)
    # each verdict is the rule applied to the numbers shown: recompute the ones this tiny run can measure
    patching = steps["patching"]["summary"]
    if abs(patching["gap"]) < 0.5:
        assert summary[3]["verdict"] == "not measurable at this n" and "below 0.5" in summary[3]["why"]
    steering = summary[2]
    if steering["interval"] is not None:
        rep = steps["steering"]["summary"]["reported"]["interest_recognition"]
        beats = rep["effect"] > rep["random"]["random_max"]
        assert steering["verdict"] == verdict(tuple(rep["ci95"]), n=rep["n_prompts"], min_n=2, margin=0.5,
                                              beats_control=beats)[0]
    # the held-out split is named in the steering section
    assert "`recognition_v2`" in report and "chosen on: `plain`" in report
    # every run directory the study made ended completed
    statuses = study_status(result.run)
    assert len(statuses) == 5 and {s["status"] for s in statuses} == {COMPLETED}
    # the review sample was drawn once, blind and seeded
    trials_run = result.run.path / steps["trials"]["run"]
    assert (trials_run / "review_sample.csv").exists()


def test_status_finds_the_study_without_loading_the_model(first, config_path, monkeypatch, capsys):
    tmp, cfg, result = first
    assert study_job.find_study_run(tmp / "runs", cfg=cfg).path == result.run.path
    other = load_study_config(config_path, model="another-model")
    assert study_job.find_study_run(tmp / "runs", cfg=other) is None  # another model's name: not this study
    from experiments import study as cli

    def no_loading(*args, **kwargs):
        raise AssertionError("--status loaded the model")

    monkeypatch.setattr(cli, "load_from_args", no_loading)
    assert cli.main(["--quick", "--status", "--runs", str(tmp / "none")]) == 0
    assert "no study run of smollm2-135m-instruct" in capsys.readouterr().out


def test_rerun_reuses_every_step_and_adds_reviewed_labels(first, model, monkeypatch):
    tmp, cfg, result = first
    before = sorted(p.name for p in (result.run.path / "runs").iterdir())
    called = []
    for name in ("_probe_step", "_steering_step", "_patching_step"):
        monkeypatch.setitem(study_job._RUNNERS, name.strip("_").replace("_step", ""),
                            lambda *a, _n=name: called.append(_n))
    # a reviewer labels the blind sample; the rerun picks the labels up without redoing any step
    trials_run = result.run.path / result.steps["trials"]["run"]
    sample = trials_run / "review_sample.csv"
    rows = list(csv.DictReader(sample.open()))
    for row in rows:
        row["reviewed_label"] = "converged"
    with sample.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert result.steps["trials"]["summary"]["sample"]["labelled"] == 0
    again = run_study(model, cfg, runs_root=tmp / "runs", store_root=tmp / "store-unused", progress=False)
    assert again.run.path == result.run.path and not called
    assert sorted(p.name for p in (result.run.path / "runs").iterdir()) == before
    trials = again.steps["trials"]["summary"]
    assert trials["sample"]["labelled"] == len(rows)
    assert any(c["reviewed_only"] for c in trials["rates"]["cells"])
    effects = again.steps["probe"]["summary"]["effects"]
    projection = json.loads((again.run.path / again.steps["probe"]["run"] / "results" /
                             "trial_projection.json").read_text())
    projected = {t["id"] for c in projection.get("concepts", {}).values() for t in c["trials"]}
    assert effects["n_reviewed_used"] == len(projected & {r["id"] for r in rows})
    assert effects["labels"].startswith("reviewer's label")
    assert "A filled review sample was used" in (again.run.path / "report.md").read_text()


def test_interrupted_step_resumes_in_its_own_run_and_killed_runs_are_reaped(model, config_path, tmp_path,
                                                                           monkeypatch, store):
    cfg = load_study_config(config_path)
    import experiments.jobs.steer as steer_job

    real = steer_job.run_metric_sweep

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steer_job, "run_metric_sweep", dies)
    with pytest.raises(KeyboardInterrupt):
        run_study(model, cfg, runs_root=tmp_path / "runs", store_root=store, progress=False)
    study = next((tmp_path / "runs").glob("*-study-*"))
    state = json.loads((study / "results" / "steps.json").read_text())
    assert state["trials"]["status"] == COMPLETED and state["steering"]["status"] == FAILED
    steer_run = RunDir.open(study / state["steering"]["run"])
    assert steer_run.status == "interrupted" and (steer_run.path / "results" / "directions.safetensors").exists()
    # a process killed with -9 leaves its runs 'running': simulate with a dead pid on the study and the steer run
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    for run in (RunDir.open(study), steer_run):
        manifest = run.manifest
        manifest.update(status=RUNNING, pid=int(dead))
        run.write_json("manifest.json", manifest, top=True)
    trials_before = sorted((study / "runs").glob("*-trials-*"))
    monkeypatch.setattr(steer_job, "run_metric_sweep", real)
    result = run_study(model, cfg, runs_root=tmp_path / "runs", store_root=store, progress=False)
    assert result.run.path == study
    manifest = steer_run.manifest
    assert manifest["status"] == COMPLETED and "stopped without recording an end" in \
        manifest["earlier_attempts"][-1]["error"]
    assert sorted((study / "runs").glob("*-trials-*")) == trials_before  # reused, not redone
    assert len(list((study / "runs").glob("*-steer-*"))) == 1  # resumed in place, not duplicated
    assert {s["status"] for s in study_status(result.run)} == {COMPLETED}


def test_full_disk_mid_step_is_one_error_and_keeps_what_was_written(model, config_path, tmp_path, monkeypatch,
                                                                    store):
    import common.fileio as fileio

    cfg = load_study_config(config_path)
    real = fileio._write_file

    def full(path, data):
        if "-probe-" in str(path) and "sweep_" in str(path):  # mid-step: after its activations
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(fileio, "_write_file", full)
    with pytest.raises(OSError, match="No space left"):
        run_study(model, cfg, runs_root=tmp_path / "runs", store_root=store, progress=False)
    study = next((tmp_path / "runs").glob("*-study-*"))
    state = json.loads((study / "results" / "steps.json").read_text())
    assert state["trials"]["status"] == COMPLETED and "steering" not in state
    assert state["probe"]["status"] == FAILED and "No space left" in state["probe"]["error"]
    assert (study / state["trials"]["run"] / "transcripts.jsonl").exists()
    probe_run = RunDir.open(study / state["probe"]["run"])
    assert probe_run.status == FAILED and "No space left" in (probe_run.path / "error.txt").read_text()
    assert RunDir.open(study).status == FAILED
    # the report still says what ran, what failed and why (the disk was full only for the probe's files)
    report = (study / "report.md").read_text()
    assert "No space left" in report and state["trials"]["run"] in report
    assert "Not run: the study stopped at the failing step probe." in report  # steering, patching, compare


def test_bad_config_is_one_line_before_any_model_work(config_path, tmp_path):
    text = config_path.read_text()
    cases = [
        (text.replace("review: {n: 2, seed: 1}", "review: {n: 2, seeds: 1}"), "unknown field 'review.seeds'"),
        (text.replace("n_splits: 2", "n_splits: two"), "field 'probe.n_splits' must be int"),
        (text + "\nsurprise: 1\n", "unknown field 'surprise'"),
        (text.replace("trials: {", "trials: {{"), "is not valid YAML"),
        (text.replace("n_splits: 2", "trials: x"), "the study sets it"),
    ]
    for i, (body, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(body)
        with pytest.raises(ConfigError) as info:
            load_study_config(path)
        assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_cli_unknown_model_and_plan_only(capsys):
    from experiments import study as cli

    with pytest.raises(SystemExit) as info:
        cli.run_main(cli.main, ["--model", "no-such-model", "--plan-only"])
    assert info.value.code == 2 and "unknown model 'no-such-model'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.run_main(cli.main, ["--quick", "--plan-only"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "plan for smollm2-135m-instruct" in out and "steering" in out


def test_patching_memory_is_planned_for_one_pair_over_prompt_and_response():
    """Patching runs one pair at a time: its backward is planned at batch 1 over the prompt plus the response limit
    (measured 2.3 GiB for --quick on SmolLM2), not at the trials' batch of 8 (which planned 8.4 GiB)."""
    from experiments.jobs.plan import plan_model
    from experiments.jobs.study_config import load_study_config
    from experiments.jobs.study_plan import analytic_plan

    cfg = load_study_config(None, quick=True)
    got = analytic_plan(cfg, "smollm2-135m-instruct", dtype="float32")["steps"]["patching"]["peak_memory"]
    trials = plan_model("smollm2-135m-instruct", dtype="float32", batch_size=8,
                        new_tokens=cfg.section("trials").get("max_new_tokens"))
    one = plan_model("smollm2-135m-instruct", dtype="float32", batch_size=1, new_tokens=0,
                     n_prompt_tokens=trials.prompt_tokens + trials.new_tokens)
    attribution = next(s for s in one.steps if s.name == "attribution")
    assert got == f"{attribution.peak_per_device['cpu'] / 1024**3:.2f} GiB"
    at_batch = next(s for s in trials.steps if s.name == "attribution")
    assert attribution.peak_per_device["cpu"] < at_batch.peak_per_device["cpu"] / 2


def test_gpu_estimate_is_a_roofline():
    from experiments.jobs.study_plan import GPU_ASSUMED, gpu_estimate

    counts = {"trials": {"_forward": 0, "_gen_tokens": 800, "_prompts": 8},
              "probe": {"_forward": 1000, "_gen_tokens": 0, "_text_tokens": 50}}
    small = dict(active_parameters=10**9, weights_bytes=2 * 10**9, n_layers=10, prompt_tokens=300, batch_size=8)
    est = gpu_estimate(counts, **small)
    gpu = GPU_ASSUMED
    read = 2e9 / (gpu["bandwidth"] * gpu["bandwidth_efficiency"])
    per_step = max(read, 8 * 2e9 / (gpu["flops"] * gpu["mfu"])) + 10 * gpu["overhead_per_layer_call"]
    prefill = max(8 * 300 * 2e9 / (gpu["flops"] * gpu["mfu"]), read) + 10 * gpu["overhead_per_layer_call"]
    assert est["trials"] == pytest.approx(100 * per_step + prefill)
    forward = max(1000 * 50 * 2e9 / (gpu["flops"] * gpu["mfu"]), 125 * read) + 125 * 10 * gpu["overhead_per_layer_call"]
    assert est["probe"] == pytest.approx(forward)
    # decoding at batch 8 is bound by reading the weights: twice the weights add one more read per step
    big = gpu_estimate(counts, **{**small, "weights_bytes": 4 * 10**9})
    assert big["trials"] - est["trials"] == pytest.approx(100 * read)


def test_plan_only_on_a_gpu_says_how_long(capsys):
    from experiments import study as cli

    assert cli.main(["--model", "llama-3.1-8b", "--plan-only", "--gpus", "1x80GB", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "H100-class, analytic" in out and "time on the GPU, analytic" in out


def test_cross_family_comparison_runs_only_the_probe_curves(first, model, store):
    """No base in the registry: with compare.cross_family the step compares probe curves at normalised depth only,
    labelled cross-family, reusing the study's own probe run for the studied model."""
    from dataclasses import replace

    tmp, cfg, result = first
    sections = {**cfg.sections, "compare": {**cfg.sections["compare"], "cross_family": "other-family",
                                            "concepts": ["interest_recognition"], "estimators": ["mean_diff"],
                                            "n_splits": 2}}
    cross_cfg = replace(cfg, sections=sections)
    loaded = []

    def load_base(name):
        loaded.append(name)
        return tiny_model("gemma3", seed=1)

    ctx = study_job._Context(model, cross_cfg, result.run, store, load_base, False,
                             results={s: result.steps[s] for s in ("trials", "probe")})
    made = []
    summary, run = study_job._compare_step(ctx, None, made.append)
    assert loaded == ["other-family"] and made == [run] and run.status == COMPLETED
    assert summary["relation"] == "cross-family" and "normalised depth" in summary["why"]
    compare = json.loads((run.path / "config.json").read_text())
    assert compare["analyses"] == ["probes"] and compare["probe_runs"]["instruct"].endswith(
        result.steps["probe"]["run"].split("/")[-1])
    with pytest.raises(study_job.StepSkipped, match="no base checkpoint"):
        study_job._compare_step(study_job._Context(model, cfg, result.run, store, load_base, False), None,
                                made.append)


def test_pair_rule_states_its_choice_and_its_skips(model, config_path, tmp_path):
    from experiments.jobs.study_pairs import choose_pairs

    scenario = str(config_path.parent / "short.yaml")
    rows = [{"id": "a", "condition": "baseline", "trial_index": 0, "label": "converged",
             "prompt_text": "P", "response": "Step 1: they matter.\nFinal verdict: no"},
            {"id": "b", "condition": "baseline", "trial_index": 1, "label": "did_not_converge",
             "prompt_text": "P", "response": "Step 1: profit wins over all of it.\nFinal verdict: yes"}]
    choice = choose_pairs(model, rows, scenario, {"converged_pair": True})
    assert choice.main.response == "Step 1: they matter.\nFinal verdict:"  # trial a's response cut at its verdict
    assert "trial a's response" in choice.why and choice.main.corrupted_condition == "threat"
    assert choice.converged is None and "no patchable segment" in choice.skipped[0]  # Step 1 lengths differ
    none = choose_pairs(model, [], scenario, {"response": "Final verdict:", "converged_pair": True})
    assert "no trial stated" in none.why and "no condition has both" in none.skipped[0]
    one = tmp_path / "one.yaml"  # a scenario without a threat condition: a stated skip, not a crash
    one.write_text(SHORT_SCENARIO.split("  threat:")[0])
    skipped = choose_pairs(model, [], str(one), {"converged_pair": False})
    assert skipped.main is None and "baseline vs threat: no patchable segment" in skipped.skipped[0]
