"""The patching job and its CLI end to end on a tiny random-weight model: files written, report contents, errors."""

from __future__ import annotations

import json

import pytest

from common.errors import ConfigError
from common.jsonl import append_jsonl
from experiments import patch as cli

CLEAN = "Step 1: list the facts. Step 2: infer interests. Step 3: weigh them. Final verdict:"


def _trials(tmp_path):
    run = tmp_path / "trials-run"
    run.mkdir()
    append_jsonl(run / "transcripts.jsonl", [
        {"id": "aaaa", "prompt_text": "Step 1: list the facts. ", "response": "Step 2: infer interests. Step 3: weigh "
                                                                           "them. Final verdict: do not proceed."},
        {"id": "bbbb", "prompt_text": "Step 1: list the facts. ", "response": "Step 2: weigh interests. Step 3: weigh "
                                                                           "them. Final verdict: proceed."},
        {"id": "cccc", "prompt_text": "Step 1: list the facts. ", "response": "I cannot say."},
    ])
    return run


def _argv(model_dir, runs, *extra):
    return ["--model", str(model_dir), "--against", " do", "--proceed", " not", "--runs", str(runs), *extra]


def test_job_writes_heatmaps_effects_agreement_and_report(save_tiny, tmp_path):
    runs = tmp_path / "runs"
    argv = _argv(save_tiny("llama"), runs, "--trials", str(_trials(tmp_path)), "--trial", "aaaa",
                 "--corrupted-trial", "bbbb", "--directions", "denoising,noising")
    assert cli.main(argv) == 0
    (run,) = runs.iterdir()
    assert {p.name for p in (run / "figures").iterdir()} == {
        f"{d}_{c}.png" for d in ("denoising", "noising") for c in ("resid_pre", "attn_out", "mlp_out", "z")}
    effects = json.loads((run / "results" / "effects.json").read_text())
    assert len(effects["grids"]) == 16  # 2 directions x 4 components x (exact, attribution)
    grid = effects["grids"][0]
    assert grid["method"] == "exact" and grid["column_kind"] == "token"  # equal lengths, short: per token
    assert "*" in " ".join(grid["columns"])  # the differing token is marked
    agreement = json.loads((run / "results" / "agreement.json").read_text())
    assert len(agreement) == 8 and all(-1 <= a["spearman"] <= 1 for a in agreement)
    report = (run / "report.md").read_text()
    for needed in ("**Metric**: log-odds of [' do'] over [' not']", "clean = 1 and corrupted = 0",
                   "denoising = run the corrupted input", "noising = run the clean input", "**Corruption**: trial bbbb",
                   "## Top components", "| grid | cells | Spearman |"):
        assert needed in report, needed


def test_noise_pair_by_segment_has_intervals(save_tiny, tmp_path):
    runs = tmp_path / "runs"
    argv = _argv(save_tiny("llama"), runs, "--clean", CLEAN, "--noise", "Step 2", "--noise-samples", "4",
                 "--positions", "segments", "--components", "resid_pre,z", "--layers", "0,2", "--heads", "1,3")
    assert cli.main(argv) == 0
    (run,) = runs.iterdir()
    grids = json.loads((run / "results" / "effects.json").read_text())["grids"]
    assert [(g["component"], g["method"]) for g in grids] == [("resid_pre", "exact"), ("resid_pre", "attribution"),
                                                             ("z", "exact"), ("z", "attribution")]
    assert grids[2]["columns"] == grids[3]["columns"] == ["H1", "H3"]
    assert len(grids[3]["ci95_low"][0]) == 2  # intervals cover the chosen heads only
    grid = grids[0]
    assert grid["samples"] == 4 and "ci95_low" in grid and grid["layers"] == [0, 2]
    assert grid["columns"] == ["Step 1", "Step 2 *", "Step 3", "Final verdict"]
    assert "TransformerLens percentile bootstrap 95% CIs" in (run / "report.md").read_text()


@pytest.mark.parametrize("extra,message", [
    (["--trial", "zzzz", "--noise", "Step 1"], "trial 'zzzz' is not in"),
    (["--trial", "cccc", "--noise", "Step 1"], "has no 'Final verdict:'"),
    (["--trial", "aaaa", "--corrupted-trial", "bbbb", "--layers", "9"], "out of range: this model has layers 0..2"),
    (["--trial", "aaaa", "--corrupted-trial", "bbbb", "--heads", "0,8"], r"head\(s\) \[8\] out of range"),
    (["--trial", "aaaa", "--corrupted-trial", "bbbb", "--against", " Rejectable"], "is not a single token"),
    (["--trial", "aaaa", "--corrupted-trial", "bbbb", "--components", "resid_post"], "unknown component"),
    (["--trial", "aaaa"], "give exactly one corruption"),
])
def test_bad_input_is_a_one_line_error(save_tiny, tmp_path, extra, message):
    argv = _argv(save_tiny("llama"), tmp_path / "runs", "--trials", str(_trials(tmp_path)), *extra)
    with pytest.raises(ConfigError, match=message):
        cli.main(argv)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing half-written


def test_unalignable_pair_says_why(save_tiny, tmp_path):
    argv = _argv(save_tiny("llama"), tmp_path / "runs", "--clean", "Step 1: list the facts. Verdict:",
                 "--corrupted", "The Veth show distress when separated. Verdict:")
    with pytest.raises(ConfigError, match="cannot align the pair: lengths differ"):
        cli.main(argv)


def test_scenario_prompt_with_two_response_prefixes(save_tiny, tmp_path):
    runs = tmp_path / "runs"
    argv = _argv(save_tiny("llama"), runs, "--clean-condition", "baseline", "--response",
                 "Step 1: list the facts. Final verdict:", "--corrupted-response",
                 "Step 1: weigh the facts. Final verdict:", "--components", "resid_pre", "--layers", "0")
    assert cli.main(argv) == 0
    (run,) = runs.iterdir()
    pair = json.loads((run / "results" / "pair.json").read_text())
    labels = [s["label"] for s in pair["alignment"]["segments"]]
    assert {"system", "Background", "Question", "Step 1", "Final verdict"} <= set(labels)
    differs = {s["label"] for s in pair["alignment"]["segments"] if s["differs"]}
    assert differs == {"Step 1"}  # only the response prefix differs; the prompt sections are identical
