"""The comparison job and CLI on tiny random-weight models: runs, reuse by identity, skips with reasons, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from activations.tiny import tiny_model
from common.errors import ConfigError
from common.jsonl import append_jsonl, read_jsonl
from common.rundir import RunDir
from common.stats import fisher_exact
from interventions.verdict import DEFAULT_AGAINST
from experiments import compare as cli
from experiments.jobs.compare import CompareConfig, plan, run_compare

CONCEPT = "interest_recognition"


@pytest.fixture(scope="module")
def pair():
    return tiny_model("llama", seed=0, chat=False), tiny_model("llama", seed=1, chat=True)


def _cfg(tmp: Path, **kw) -> CompareConfig:
    return CompareConfig(concepts=(CONCEPT,), estimators=("mean_diff",), n_splits=3, store_root=str(tmp / "store"),
                         runs_root=str(tmp / "runs"), against=(" not",), proceed=(" proceed",),
                         kl_response=" Step 1: do not proceed.", **kw)


def _run(pair, cfg, name="compare"):
    base, instruct = pair
    run = RunDir.create(name, "tiny", cfg.to_dict(), root=Path(cfg.runs_root))
    return run, run_compare(base, instruct, cfg, run)


def _fake_trials(root: Path, model, labels: list[str]) -> Path:
    run = RunDir.create("trials", model.identity.name, {"model_key": model.identity.key}, root=root)
    append_jsonl(run.path / "transcripts.jsonl", [
        {"id": f"t{i}", "model": model.identity.name, "condition": "baseline", "label": lab, "response": "x"}
        for i, lab in enumerate(labels)])
    return run.path


@pytest.fixture(scope="module")
def first(pair, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    cfg = _cfg(tmp)
    return tmp, cfg, *_run(pair, cfg)


def test_job_runs_every_same_width_analysis_and_says_why_behaviour_is_skipped(first):
    tmp, cfg, run, result = first
    assert set(result.results) == {"probes", "cosine", "transfer", "patching", "kl"}
    assert list(result.skipped) == ["behaviour"] and "no trials run found" in result.skipped["behaviour"]
    assert {r["how"] for r in result.probe_runs.values()} == {"computed now"}
    report = (run.path / "report.md").read_text()
    assert "## Skipped analyses" in report and "**behaviour**: no trials run found" in report
    for fig in ("probe_curves", "cosine_transfer", "patching", "kl_tokens"):
        assert (run.path / "figures" / f"{fig}.png").stat().st_size > 0
    assert not result.results["probes"]["depth_normalised"]
    cos = [r for r in result.results["cosine"] if r["concept"] == CONCEPT]
    assert len(cos) == 3 and all(-1 <= r["cosine"] <= 1 for r in cos)  # two random models: not the same direction
    assert max(abs(r["cosine"]) for r in cos) < 0.999
    kl = result.results["kl"]
    assert kl["response_origin"] == "given with --kl-response" and kl["summary"]["response"]["n"] > 0


def test_within_model_transfer_score_equals_the_probe_sweep(first):
    """Transfer uses the sweep's grouped folds, so its within-model AUROC is the probe run's own mean-diff AUROC."""
    _, _, _, result = first
    for role, key in (("base", "within_a"), ("instruct", "within_b")):
        sweep = result.results["probes"][role][CONCEPT]["curves"]["mean_diff"]["auroc"]
        within = [row["auroc"][key]["value"] for row in result.results["transfer"][CONCEPT]["layers"]]
        np.testing.assert_allclose(within, sweep, atol=1e-9)


def test_second_run_reuses_probe_runs_and_finds_trials_by_identity(first, pair):
    tmp, cfg, _, _ = first
    base, instruct = pair
    runs = Path(cfg.runs_root)
    probe_dirs = sorted(runs.glob("*-probe-*"))
    _fake_trials(runs, base, ["did_not_converge"] * 10)  # a 0-of-n cell, common with small models
    _fake_trials(runs, instruct, ["converged"] * 9 + ["refused"])
    _fake_trials(runs, tiny_model("llama", seed=2), ["converged"] * 5)  # other weights: never counted
    run, result = _run(pair, CompareConfig(**{**cfg.to_dict(), "analyses": ("probes", "behaviour")}))
    assert sorted(runs.glob("*-probe-*")) == probe_dirs  # nothing recomputed
    assert {r["how"] for r in result.probe_runs.values()} == {"reused"}
    cells = {tuple(c["model"].split(": ")[:1]): c for c in result.results["behaviour"]["table"]["cells"]}
    assert cells[("base",)]["converged"] == 0 and cells[("base",)]["trials"] == 10
    assert cells[("instruct",)]["converged"] == 9 and cells[("instruct",)]["refused"] == 1
    fisher = result.results["behaviour"]["table"]["comparisons"]
    assert len(fisher) == 1 and fisher[0]["fisher_p"] == pytest.approx(fisher_exact(0, 10, 9, 9))
    assert "Fisher" in (run.path / "report.md").read_text()
    assert (run.path / "results" / "behaviour.json").exists()
    # the figure is drawn, or (where the plotting of 0-of-n intervals fails) the report says it was not
    assert (run.path / "figures" / "behaviour.png").exists() or any("behaviour.png" in w for w in result.warnings)
    assert set(result.skipped) == {"cosine", "transfer", "patching", "kl"}


def test_trials_n_runs_the_missing_trials_once_and_tables_both_models(pair, tmp_path):
    from experiments.jobs.compare import find_trials_runs

    base, instruct = pair
    cfg = _cfg(tmp_path, analyses=("behaviour",), trials_n=2, trials_max_new_tokens=4)
    run, result = _run(pair, cfg)
    runs = Path(cfg.runs_root)
    made = sorted(runs.glob("*-trials-*"))
    assert len(made) == 2 and not list(runs.glob("*-probe-*"))  # behaviour alone needs no probe run
    for model in pair:
        found = find_trials_runs(model, cfg)  # by identity: one run per model, each with its own trials
        assert len(found) == 1
        rows = read_jsonl(found[0] / "transcripts.jsonl")
        assert len(rows) == 2 and {r["condition"] for r in rows} == {"baseline"}
        assert {r["model_identity"]["key"] for r in rows} == {model.identity.key}
    behaviour = result.results["behaviour"]
    assert behaviour["computed_now"] == ["base", "instruct"] and "behaviour" not in result.skipped
    cells = behaviour["table"]["cells"]
    assert {c["model"] for c in cells} == {f"base: {base.identity.name}", f"instruct: {instruct.identity.name}"}
    assert all(c["trials"] + c["unscored"] == 2 for c in cells)  # 4-token answers: mostly abstained
    assert "(computed now, --trials-n)" in (run.path / "report.md").read_text()

    _, again = _run(pair, cfg, name="compare-again")
    assert sorted(runs.glob("*-trials-*")) == made  # found by identity: nothing rerun
    assert again.results["behaviour"]["computed_now"] == []
    assert again.results["behaviour"]["runs"] == behaviour["runs"]


def test_other_hook_does_not_reuse_a_probe_run(first, pair):
    from experiments.jobs.compare import find_probe_run, probe_run_matches

    tmp, cfg, _, result = first
    base, _ = pair
    other = CompareConfig(**{**cfg.to_dict(), "hook": "mlp_out"})
    assert find_probe_run(base, other) is None
    assert "hook/position" in probe_run_matches(Path(result.probe_runs["base"]["path"]), base, other)


def test_same_checkpoint_and_impossible_requests_fail_before_any_work(pair, tmp_path):
    base, instruct = pair
    with pytest.raises(ConfigError, match="same checkpoint"):
        plan({"base": base, "instruct": base}, _cfg(tmp_path))
    with pytest.raises(ConfigError, match="unknown analysis"):
        run_compare(base, instruct, _cfg(tmp_path, analyses=("probes", "vibes")),
                    RunDir.create("compare", "x", {}, root=tmp_path / "runs"))
    assert not list((tmp_path / "runs").glob("*-probe-*"))


def test_cli_bad_pairs_are_one_line_errors_before_loading(capsys, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(cli, "load_model", refuse)
    cases = [
        (["--base", "smollm2-135m-instruct", "--instruct", "smollm2-135m-instruct"], "both 'smollm2-135m-instruct'"),
        (["--base", "smollm2-135m-instruct", "--instruct", "gemma-3-270m"], "registered as a base"),
        (["--base", "llama-3.1-8b", "--instruct", "llama-3.1-8b-base"], "did you mean --base llama-3.1-8b-base"),
        (["--model", "smollm2-135m-instruct", "--with-base"], "has no registered base"),
        (["--model", "llama-3.1-8b"], "needs --with-base"),
        (["--base", "gemma-3-270m", "--instruct", "smollm2-135m-instruct", "--analyses", "vibes"], "unknown analysis"),
        (["--base", "gemma-3-270m", "--instruct", "smollm2-135m-instruct", "--trials-n", "2", "--trials-conditions",
          "baseline,vibes"], "vibes"),
        (["--base", "gemma-3-270m", "--instruct", "smollm2-135m-instruct", "--trials-n", "-1"], "--trials-n must be"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            cli.run_main(cli.main, argv)
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and message in err and "\n" not in err, (argv, err)


def test_cli_with_base_picks_the_registered_base():
    args = cli.parse_args(["--model", "llama-3.1-8b", "--with-base"])
    assert cli.resolve_pair(args) == ("llama-3.1-8b-base", "llama-3.1-8b")
    args = cli.parse_args(["--model", "qwen3-8b", "--with-base"])
    assert cli.resolve_pair(args) == ("qwen3-8b-base", "qwen3-8b")


@pytest.mark.parametrize("config_readable", [True, False])
def test_cli_same_width_analyses_on_different_widths_fail_before_any_run(save_tiny, tmp_path, capsys, monkeypatch,
                                                                         config_readable):
    """From the configs before loading when they are readable, else right after loading; never a run directory."""
    import torch
    import transformers as tf

    from activations.tiny import tiny_config, tiny_tokenizer
    from experiments.jobs import compare as job

    config = tiny_config("llama", vocab_size=len(tiny_tokenizer()))
    config.hidden_size, config.intermediate_size = 32, 64
    torch.manual_seed(0)
    narrow = tmp_path / "narrow"
    tf.AutoModelForCausalLM.from_config(config).save_pretrained(narrow)
    tiny_tokenizer().save_pretrained(narrow)
    loaded = []
    real_load = cli.load_model
    monkeypatch.setattr(cli, "load_model", lambda *a, **k: loaded.append(a) or real_load(*a, **k))
    if not config_readable:
        monkeypatch.setattr(job, "peek_shape", lambda spec: None)
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(cli.main, ["--base", str(save_tiny("llama")), "--instruct", str(narrow),
                                "--analyses", "probes,transfer", "--runs", str(runs)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "--analyses transfer cannot run" in err and "width 32" in err
    assert len(loaded) == (0 if config_readable else 2)
    assert not runs.exists() or not any(runs.iterdir())  # no run directory, no probe run


def test_cli_config_round_trip():
    args = cli.parse_args(["--base", "a", "--instruct", "b"])
    assert args.against == ",".join(DEFAULT_AGAINST) and json.dumps(vars(args))


def test_an_instruct_model_given_as_base_is_a_warning_not_an_error():
    from activations.registry import get_spec
    from experiments.jobs.compare import check_roles

    warnings = check_roles(get_spec("llama-3.1-8b"), get_spec("qwen3-8b"), "llama-3.1-8b", "qwen3-8b")
    assert len(warnings) == 1 and "registered as an instruct model but was given as --base" in warnings[0]
    assert check_roles(get_spec("llama-3.1-8b-base"), get_spec("llama-3.1-8b"), "llama-3.1-8b-base",
                       "llama-3.1-8b") == []
