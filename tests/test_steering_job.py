"""The framing-shift steering job: the analysis rule on planted numbers, config errors, and an end-to-end tiny run."""

from __future__ import annotations

import json

import pytest

from activations.tiny import tiny_model
from common.errors import ConfigError
from common.rundir import RunDir
from common.stats import wilson_interval
from experiments.jobs.steer import (
    SteerConfig, assistant_text, check_against_model, confirmation_cells, load_prefills, run_steer_experiment,
)
from interventions.gguf_export import read_control_vector
from interventions.steering_analysis import (
    auto_layers, candidate_layers, compare_to_random, effects, select_setting, side_effect_table,
)


def _records(planted: dict[tuple[int, str, float], float]):
    """Sweep records with a baseline of 1.0 on two prompts and the planted effect added to each."""
    rows = [{"prompt": p, "layer": None, "direction": None, "alpha": 0.0, "metric": 1.0} for p in ("a", "b")]
    for (layer, d, a), v in planted.items():
        rows += [{"prompt": p, "layer": layer, "direction": d, "alpha": a, "metric": 1.0 + v} for p in ("a", "b")]
    return rows


def test_rule_finds_the_planted_setting_and_respects_kl_and_last_layers():
    planted = {}
    for layer in (2, 5, 9):
        for a in (0.5, 1.0):
            planted[(layer, "ir", a)] = 0.1 * a
            for k in range(5):
                planted[(layer, f"random_{k}", a)] = 0.05 * (k - 2) * a
    planted[(5, "ir", 0.5)] = 2.0   # the real effect
    planted[(5, "ir", 1.0)] = 3.0   # larger, but its KL is over the threshold
    planted[(9, "ir", 0.5)] = 5.0   # larger still, but in the last 20% of a 10-layer model
    eff = effects(_records(planted))
    assert eff[(5, "ir", 0.5)] == pytest.approx(2.0)
    side = side_effect_table([{"layer": L, "direction": d, "alpha": a, "kl": 1.0 if (L, a) == (5, 1.0) else 0.01,
                               "perplexity": 10.0} for (L, d, a) in planted])
    sel = select_setting(eff, side, "ir", n_layers=10, kl_threshold=0.1)
    assert (sel.layer, sel.alpha) == (5, 0.5)
    comp = {(c.layer, c.alpha): c for c in compare_to_random(eff, "ir")}
    assert comp[(5, 0.5)].outside and comp[(5, 0.5)].rank == 1
    assert not comp[(2, 0.5)].outside  # 0.05 is inside the random spread -0.05..0.05
    none = select_setting(eff, side, "ir", n_layers=10, kl_threshold=1e-6)
    assert none.layer is None and "KL" in none.reason


def test_layer_helpers():
    assert candidate_layers(30) == list(range(24))
    layers = auto_layers(30, 4)
    assert len(layers) == 4 and max(layers) < 24 and min(layers) >= 3


def test_config_errors_before_the_model(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("alpha: [1]\n")
        SteerConfig.from_yaml(bad)
    for kwargs, needle in [({"alphas": (float("nan"),)}, "finite"), ({"positions": "middle"}, "position rule"),
                           ({"n_random": 3}, "at least 5"), ({"concepts": ("empathy",)}, "unknown concept"),
                           ({"metric_prompts": ("nope",)}, "unknown metric prompt"),
                           ({"directions": str(tmp_path / "none")}, "no such directory")]:
        with pytest.raises(ConfigError, match=needle):
            SteerConfig.from_yaml(None, **kwargs).validate()


def test_prefills_resolve_and_join_with_a_document():
    cfg = SteerConfig.from_yaml(None)
    pre = load_prefills(cfg.path(cfg.prefills))
    assert pre["metric_prompts"]["after_shift"].endswith("Final verdict:")
    assert pre["generation_prefills"]["recognised"].startswith("Step 1:")
    assert assistant_text("memo ...\n\nStep 1:", "Step 1: facts") == "memo ...\n\nStep 1: facts"
    assert assistant_text("<|im_start|>assistant\n", "Step 1: facts") == "<|im_start|>assistant\nStep 1: facts"


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=0)


def test_model_checks(model):
    cfg = SteerConfig.from_yaml(None)  # " No" is three tokens in the tiny tokenizer
    with pytest.raises(ConfigError, match="splits into"):
        check_against_model(model, cfg)
    cfg = SteerConfig.from_yaml(None, against=(" not",), proceed=(" proceed",), layers=(0, 7))
    with pytest.raises(ConfigError, match="out of range"):
        check_against_model(model, cfg)


def _small_config(**overrides) -> SteerConfig:
    """One steering layer and alpha, two concept pairs, short confirmation samples on the recognised prefill."""
    settings = dict(against=(" not",), proceed=(" proceed",), alphas=(0.5,), n_random=5, layers=(1,), max_pairs=2,
                    max_new_tokens=4, kl_threshold=10.0, metric_prompts=("plain",),
                    generation_conditions=("recognised",))
    return SteerConfig.from_yaml(None, **(settings | overrides))


def test_end_to_end_on_a_tiny_model(model, tmp_path):
    cfg = SteerConfig.from_yaml(None, against=(" not",), proceed=(" proceed",), alphas=(0.5, 2.0), n_random=5,
                                layers=(1,),
                                max_pairs=3, n_samples=2, max_new_tokens=6, kl_threshold=10.0,
                                confirm_alpha_range=True,
                                metric_prompts=("plain", "after_shift"))
    run = RunDir.create("steer", "tiny", cfg.to_dict(), root=tmp_path)
    run_steer_experiment(model, cfg, run)
    sweep = json.loads((run.path / "results" / "sweep.json").read_text())
    layers = json.loads((run.path / "results" / "inputs.json").read_text())["layers"]
    n_dirs = 2 * 2 + 5  # two concepts, their negations, five random
    n_prompts = 2 + len(cfg.heldout_prompts)  # selection prompts + held-out prompts
    assert len(sweep) == n_prompts + n_prompts * len(layers) * n_dirs * 2
    analysis = json.loads((run.path / "results" / "analysis.json").read_text())
    # The held-out split: the setting is chosen on the selection prompts, reported on the held-out ones.
    assert analysis["split"]["selection_prompts"] == ["plain", "after_shift"]
    assert analysis["split"]["heldout_prompts"] == list(cfg.heldout_prompts) and analysis["split"]["held_out"]
    for row in analysis["effects"]:
        per = row["per_prompt"]
        assert row["effect"] == pytest.approx((per["plain"] + per["after_shift"]) / 2)
        assert row["heldout_effect"] == pytest.approx(sum(per[p] for p in cfg.heldout_prompts) / 4)
    for concept, rep in analysis["reported"].items():
        assert set(rep["per_prompt"]) == set(cfg.heldout_prompts) and rep["n_prompts"] == 4
        assert rep["random"]["effect"] == pytest.approx(rep["effect"])
        assert rep["ci95"][0] <= rep["effect"] <= rep["ci95"][1]
    assert set(analysis["selections"]) == {"interest_recognition", "perspective_taking"}
    assert analysis["comparisons"]["-interest_recognition"]
    conf = json.loads((run.path / "results" / "confirmation.json").read_text())
    assert conf["cells"] and all(c["trials"] + c["abstained"] == 2 for c in conf["cells"])
    assert conf["rate_definition"].startswith("converged / (trials - refused)")
    for concept, sel in analysis["selections"].items():  # confirm_alpha_range: every swept alpha up to the selected
        mine = [s for s in conf["settings"] if s.startswith(concept)]
        assert len(mine) == len([a for a in cfg.alphas if a <= sel["alpha"]])

    gens = (run.path / "results" / "generations.jsonl").read_text().splitlines()
    assert len(gens) == 2 * len(conf["settings"]) * 2
    rows = [json.loads(g) for g in gens]
    prefills = load_prefills(cfg.path(cfg.prefills))["generation_prefills"]
    # Our prefill and the model's continuation are kept apart, and every row went through the shared row scoring.
    assert all(r["prefill"] == prefills[r["condition"]] and not r["response"].startswith("Step 1") for r in rows)
    assert all(r["judge"] == conf["judge"] and (r["label"] is not None or r["needs_review"]) for r in rows)
    report = (run.path / "report.md").read_text()
    assert "random directions" in report and "small model" in report
    n_abstained = sum(r["label"] is None for r in rows)
    assert f"Abstained: {n_abstained} of {len(rows)} samples" in report
    assert "judge-only; agreement with a reviewer on this model's outputs not measured" in report
    assert "Chosen on (selection prompts): `plain`, `after_shift`" in report and "`recognition_v2`" in report
    for fig in ("dose_response", "side_effects", "convergence"):
        assert (run.path / "figures" / f"{fig}.png").exists()
    for concept, sel in analysis["selections"].items():  # kl_threshold 10: a setting is selected and exported
        assert sel["layer"] == 1
        meta, vectors = read_control_vector(run.path / analysis["control_vectors"][concept])
        assert meta["controlvector.veth.concept"] == concept and list(vectors) == [1]
    norms = json.loads((run.path / "results" / "norms.json").read_text())
    assert len(norms["norms"]) == model.n_layers and all(x > 0 for x in norms["norms"])


def test_confirmation_rate_is_the_tables_and_abstentions_are_counted_by_reason():
    settings = [("unsteered", "none", None, 0.0), ("ir@L1,a1", "interest_recognition", 1, 1.0)]
    labels = {"unsteered": ["converged", "refused", "refused", "ambiguous", None],
              "ir@L1,a1": ["refused", "refused", None, None, None]}
    records = [{"condition": "recognised", "setting": name, "label": label,
                "needs_review": None if label else ("no verdict in the continuation" if k < 4
                                                    else "truncated: no recommendation found")}
               for name, row in labels.items() for k, label in enumerate(row)]
    cells = {c["setting"]: c for c in confirmation_cells(records, settings)}
    base = cells["unsteered"]
    # Refusals leave the denominator: 1 converged of 2 engaged, not 1 of 4 labelled.
    assert (base["converged"], base["engaged"], base["trials"], base["abstained"]) == (1, 2, 4, 1)
    assert base["rate"] == 0.5 and base["ci95"] == pytest.approx(list(wilson_interval(1, 2)))
    assert base["abstention_reasons"] == {"truncated": 1}  # the reason up to its detail, as the table counts it
    assert (base["direction"], base["layer"], base["alpha"]) == ("none", None, 0.0)
    steered = cells["ir@L1,a1"]
    assert steered["rate"] is None and steered["ci95"] is None  # only refusals: no rate, not 0
    assert steered["abstention_reasons"] == {"no verdict in the continuation": 2, "truncated": 1}


def test_samples_stored_before_the_prefill_rule_are_rescored_on_resume(model, tmp_path):
    cfg = _small_config(n_samples=2, batch_size=4)
    run = RunDir.create("steer", "tiny", cfg.to_dict(), root=tmp_path)
    run_steer_experiment(model, cfg, run)
    path = run.path / "results" / "generations.jsonl"
    today = [json.loads(line) for line in path.read_text().splitlines()]
    # The old form: prefill + continuation judged as one text, labelled by the prefill's reasoning.
    legacy = [{k: v for k, v in r.items() if k in ("condition", "setting", "direction", "layer", "alpha", "sample",
                                                      "prefill", "seed", "finished")}
              | {"response": r["prefill"] + r["response"], "continuation": r["response"], "label": "converged",
                 "final_verdict": "Step 2: ..."} for r in today]
    path.write_text("".join(json.dumps(r) + "\n" for r in legacy))
    run_steer_experiment(model, SteerConfig.from_run(run), run)
    rescored = [json.loads(line) for line in path.read_text().splitlines()]
    assert rescored == today  # the same samples, each judged on the model's own continuation


def test_a_filled_review_sample_gives_the_report_three_rate_columns(model, tmp_path):
    import csv

    from experiments import review as review_cli

    cfg = _small_config(n_samples=3, batch_size=8)
    run = RunDir.create("steer", "tiny", cfg.to_dict(), root=tmp_path)
    run_steer_experiment(model, cfg, run)
    assert "judge-only; agreement with a reviewer" in (run.path / "report.md").read_text()
    gens = run.path / "results" / "generations.jsonl"
    assert review_cli.main(["sample", str(run.path), "--n", "4", "--seed", "1", "--input", str(gens)]) == 0
    sample = run.path / "review_sample.csv"
    with sample.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all("/" in r["id"] for r in rows)
    for k, r in enumerate(rows):
        r["reviewed_label"] = ("converged", "ambiguous", "no verdict", "did_not_converge")[k]
    with sample.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    run_steer_experiment(model, SteerConfig.from_run(run), run)  # every stage resumes; the rates are recomputed
    report = (run.path / "report.md").read_text()
    assert "Reviewed-only (Wilson)" in report and "PPI (PPI++)" in report
    assert "not measured" not in report
    rates = json.loads((run.path / "results" / "rates.json").read_text())
    assert rates["measured"] and sum(c["reviewed"] for c in rates["cells"]) == 4


def test_interrupted_run_resumes_without_loss_or_duplication(model, tmp_path, monkeypatch):
    import experiments.jobs.steer as job

    cfg = _small_config(n_samples=3, heldout_prompts=(), batch_size=4)
    full = RunDir.create("steer", "tiny", cfg.to_dict(), root=tmp_path / "a")
    run_steer_experiment(model, cfg, full)
    expected = (full.path / "results" / "generations.jsonl").read_text().splitlines()

    run = RunDir.create("steer", "tiny", cfg.to_dict(), root=tmp_path / "b")
    calls = {"n": 0}
    real = job.generate_steered

    def dies_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(job, "generate_steered", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_steer_experiment(model, cfg, run)
    partial = (run.path / "results" / "generations.jsonl").read_text().splitlines()
    assert len(partial) == 4  # the first batch was kept
    sweep_before = (run.path / "results" / "sweep.json").read_text()
    monkeypatch.setattr(job, "generate_steered", real)
    run_steer_experiment(model, SteerConfig.from_run(run), run)
    assert (run.path / "results" / "sweep.json").read_text() == sweep_before  # not recomputed
    assert (run.path / "results" / "generations.jsonl").read_text().splitlines() == expected  # same samples, once


def test_job_steers_with_a_probe_runs_directions(model, tmp_path):
    import numpy as np

    from probes.directions import Direction, save_directions

    rng = np.random.default_rng(0)
    saved = [Direction(rng.standard_normal(model.d_model), c, layer, "resid_post", "mean_diff",
                       model.identity.to_dict()) for c in ("interest_recognition", "perspective_taking")
             for layer in range(model.n_layers)]
    save_directions(saved, tmp_path / "probe-run" / "directions")
    cfg = SteerConfig.from_yaml(None, against=(" not",), proceed=(" proceed",), alphas=(0.5,), n_random=5,
                                layers=(1,), n_samples=0, metric_prompts=("plain",), heldout_prompts=(),
                                directions=str(tmp_path / "probe-run"))
    run = RunDir.create("steer", "tiny", cfg.to_dict(), root=tmp_path / "runs")
    run_steer_experiment(model, cfg, run)
    info = json.loads((run.path / "results" / "directions.json").read_text())
    assert info["source"]["kind"] == "probe_run"
    from safetensors.numpy import load

    used = load((run.path / "results" / "directions.safetensors").read_bytes())
    v = saved[1].vector  # interest_recognition at layer 1
    np.testing.assert_allclose(used["interest_recognition@1"], v / np.linalg.norm(v), rtol=1e-6)
    np.testing.assert_allclose(used["-interest_recognition@1"], -v / np.linalg.norm(v), rtol=1e-6)
    other = tiny_model("llama", seed=1)
    with pytest.raises(Exception, match="trained for model"):
        check_against_model(other, cfg)
