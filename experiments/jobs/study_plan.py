"""What the study will cost, before it spends it: per step the forward passes and generated tokens (counted here
from the study's settings), disk for activations and peak memory (the scale planner, :func:`experiments.jobs.plan
.plan_model`, used as a library: one planner), and, once the model is loaded, the time estimated from a one-batch
calibration on the actual device (:func:`calibrate`). ``--plan-only`` prints the analytic part and stops."""

from __future__ import annotations

import time
from typing import Any

from common.errors import ToolkitError
from experiments.jobs.study_config import StudyConfig

__all__ = ["analytic_plan", "calibrate", "add_estimates", "format_plan"]

#: Segments a baseline-threat pair of the Veth scenario has, for counting patching passes before the pair exists.
SEGMENTS_ESTIMATE = 12


def _counts(cfg: StudyConfig, n_layers: int | None, has_base: bool) -> dict[str, dict[str, Any]]:
    from behaviour.scenario import load_scenario
    from behaviour.trials import DEFAULT_MAX_NEW_TOKENS, expand_conditions
    from experiments.jobs.steer import load_neutral
    from probes.concepts import load_concepts

    trials = cfg.section("trials")
    conditions = expand_conditions(load_scenario(cfg.scenario), trials.get("conditions", ["baseline", "threat"]),
                                   paraphrases=trials.get("paraphrases", False))
    n_trials = trials.get("n", 20) * len(conditions)
    max_new = trials.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
    probe = cfg.section("probe")
    concepts = probe.get("concepts") or None
    n_texts = len({t for ds in load_concepts(tuple(concepts) if concepts else None).values() for t in ds.texts})
    steer = cfg.steer_config()
    n_layers_steer = len(steer.layers) if steer.layers else steer.n_auto_layers
    n_dirs = 2 * len(steer.concepts) + steer.n_random
    settings = 1 + n_layers_steer * n_dirs * len(steer.alphas)
    n_prompts = len(steer.metric_prompts) + len(steer.heldout_prompts)
    neutral = load_neutral(steer.path(steer.neutral))
    side_rows = (len(neutral["prompts"]) + 1) * settings
    confirm = len(steer.generation_conditions) * (1 + 2 * len(steer.concepts)) * steer.n_samples
    patch = cfg.patch_config()
    patch_layers = len(patch.layers) if patch.layers else (n_layers or 0)
    patch_passes = len(patch.components) * patch_layers * SEGMENTS_ESTIMATE * len(patch.directions) + 2
    return {
        "trials": {"forward_passes": f"{n_trials} generations", "generated_tokens": n_trials * max_new,
                   "_gen_tokens": n_trials * max_new, "_forward": 0},
        "probe": {"forward_passes": n_texts + n_trials + len(conditions), "generated_tokens": 0,
                  "_gen_tokens": 0, "_forward": n_texts + n_trials + len(conditions), "_texts": n_texts},
        "steering": {"forward_passes": n_prompts * settings + side_rows, "generated_tokens": confirm *
                     steer.max_new_tokens, "_gen_tokens": confirm * steer.max_new_tokens,
                     "_forward": n_prompts * settings + side_rows},
        "patching": {"forward_passes": f"~{patch_passes} (+1 backward)" if patch_layers else "all layers x segments",
                     "generated_tokens": 0, "_gen_tokens": 0, "_forward": patch_passes},
        "compare": {"forward_passes": f"{n_texts} (base probe run)" if has_base else "0 (no base: skipped)",
                    "generated_tokens": 0, "_gen_tokens": 0, "_forward": n_texts if has_base else 0},
    }


def analytic_plan(cfg: StudyConfig, model_name: str, *, dtype: str = "float32", gpus: str | None = None,
                  batch_size: int = 8) -> dict[str, Any]:
    """The plan without loading weights: counts from the settings, memory and disk from the scale planner."""
    from experiments.jobs.plan import plan_model

    notes: list[str] = []
    memory: dict[str, str] = {}
    disk = "-"
    n_layers = None
    try:
        trials = cfg.section("trials")
        mem = plan_model(model_name, gpus=gpus, dtype=dtype if dtype in ("float32", "float16", "bfloat16")
                         else "float32", batch_size=batch_size, new_tokens=trials.get("max_new_tokens"))
        steps = {s.name: s for s in mem.steps}
        weights = mem.weights.bytes

        def peak(name: str) -> str:
            s = steps[name]
            return f"{max(s.peak_per_device.values()) / 1024**3:.2f} GiB" + ("" if s.fits else " (DOES NOT FIT)")

        memory = {"trials": peak("generate"), "probe": peak("extract"), "steering": peak("generate"),
                  "patching": peak("attribution"), "compare": peak("extract")}
        disk = f"{mem.store.bytes / 1024**3:.2f} GiB"
        notes.append(f"weights {weights / 1024**3:.2f} GiB ({mem.parameters.total / 1e9:.2f}B parameters, {mem.dtype});"
                     f" device map: {mem.device_map}")
        notes += list(mem.notes)
    except ToolkitError as exc:  # a model without a registry shape: counts only, memory after loading
        notes.append(f"memory and disk not planned: {exc}")
    from activations.registry import load_registry

    spec = load_registry().get(model_name)
    has_base = bool(cfg.base or (spec is not None and spec.base) or cfg.section("compare").get("cross_family"))
    if spec is not None and getattr(spec, "shape", None) is not None:
        n_layers = spec.shape.n_layers
    counts = _counts(cfg, n_layers, has_base)
    for step, c in counts.items():
        c["peak_memory"] = memory.get(step, "-")
        c["disk"] = disk if step in ("probe", "compare") else "-"
        c["estimated"] = "after loading (one-batch calibration)"
    return {"model": model_name, "dtype": dtype, "steps": counts, "notes": notes, "calibration": None}


def calibrate(model: Any, batch_size: int = 8, new_tokens: int = 8) -> dict[str, float]:
    """Seconds per prompt token of a forward pass and per generated token, from one batch of the scenario prompt on
    the loaded model (after a small warm-up call, so one-off setup is not counted), and the token lengths the
    estimate needs: the scenario prompt and the mean concept text."""
    import torch

    from activations.generation import generate
    from activations.prompts import render_prompt
    from behaviour.scenario import load_scenario
    from probes.concepts import load_concepts

    text = render_prompt(load_scenario().prompt("baseline"), model.tokenizer, model.spec)
    ids = model.encode(text)[:512]
    rows = torch.tensor([ids] * batch_size, device=model.device)
    with torch.no_grad():
        model.bridge(rows[:1, :16], return_type="logits")  # warm-up
        start = time.perf_counter()
        model.bridge(rows, return_type="logits")
    per_token = (time.perf_counter() - start) / rows.numel()
    start = time.perf_counter()
    generate(model, [text] * batch_size, max_new_tokens=new_tokens, temperature=0.0, batch_size=batch_size)
    per_generated = (time.perf_counter() - start) / (batch_size * new_tokens)
    texts = [t for ds in load_concepts().values() for t in ds.texts][::20]
    concept_tokens = sum(len(model.encode(t)) for t in texts) / max(1, len(texts))
    return {"seconds_per_forward_token": per_token, "seconds_per_generated_token": per_generated,
            "prompt_tokens": len(ids), "concept_tokens": concept_tokens, "batch_size": batch_size}


def add_estimates(plan: dict[str, Any], calibration: dict[str, float]) -> dict[str, Any]:
    """The plan with each step's time estimated from the calibration: forward rows x their tokens (concept texts for
    the probe, the scenario prompt elsewhere) x seconds per token, plus generated tokens x seconds per token (a
    generated token's cost includes its share of the prefill)."""
    plan = {**plan, "calibration": calibration, "steps": {k: dict(v) for k, v in plan["steps"].items()}}
    total = 0.0
    for name, step in plan["steps"].items():
        tokens = calibration["concept_tokens"] if name in ("probe", "compare") else calibration["prompt_tokens"]
        seconds = step["_forward"] * tokens * calibration["seconds_per_forward_token"] + \
            step["_gen_tokens"] * calibration["seconds_per_generated_token"]
        step["estimated"] = f"~{seconds / 60:.1f} min"
        total += seconds
    plan["estimated_total_minutes"] = round(total / 60, 1)
    return plan


def format_plan(plan: dict[str, Any]) -> str:
    lines = [f"plan for {plan['model']} ({plan['dtype']}):",
             f"{'step':10} {'forward passes':>28} {'generated tokens':>17} {'disk':>10} {'peak memory':>14} time"]
    for name, s in plan["steps"].items():
        lines.append(f"{name:10} {str(s['forward_passes']):>28} {str(s['generated_tokens']):>17} {s['disk']:>10} "
                     f"{s['peak_memory']:>14} {s['estimated']}")
    if plan.get("estimated_total_minutes") is not None:
        lines.append(f"estimated total: ~{plan['estimated_total_minutes']} min (one-batch calibration: "
                     f"{plan['calibration']['seconds_per_forward_token'] * 1e3:.2f} ms per forward token, "
                     f"{plan['calibration']['seconds_per_generated_token']:.4f} s per generated token)")
    lines += [f"note: {n}" for n in plan.get("notes", [])]
    return "\n".join(lines)

