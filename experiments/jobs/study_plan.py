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

#: The GPU an analytic time estimate assumes (``--gpus`` gives memory only): an H100 SXM's dense bfloat16 peak and
#: memory bandwidth, at efficiencies typical of eager PyTorch (35% of peak FLOP/s on prefill, 60% of bandwidth when
#: decoding), plus the host overhead of the bridge's hook points, which launch-bound decoding pays on every call
#: (~60 module calls per layer at ~15 us each). A100: about 3x slower on prefill, 1.7x on decoding.
GPU_ASSUMED = {"name": "H100-class", "flops": 989e12, "bandwidth": 3.35e12, "mfu": 0.35, "bandwidth_efficiency": 0.6,
               "overhead_per_layer_call": 1e-3}
#: Characters per token for counting concept-text tokens without the model's tokenizer (English prose, BPE).
CHARS_PER_TOKEN = 4.0


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
                   "_gen_tokens": n_trials * max_new, "_forward": 0, "_prompts": n_trials},
        "probe": {"forward_passes": n_texts + n_trials + len(conditions), "generated_tokens": 0,
                  "_gen_tokens": 0, "_forward": n_texts + n_trials + len(conditions), "_texts": n_texts,
                  "_text_tokens": _mean_text_tokens(concepts)},
        "steering": {"forward_passes": n_prompts * settings + side_rows, "generated_tokens": confirm *
                     steer.max_new_tokens, "_gen_tokens": confirm * steer.max_new_tokens,
                     "_forward": n_prompts * settings + side_rows, "_prompts": confirm},
        "patching": {"forward_passes": f"~{patch_passes} (+1 backward)" if patch_layers else "all layers x segments",
                     "generated_tokens": 0, "_gen_tokens": 0, "_forward": patch_passes},
        "compare": {"forward_passes": f"{n_texts} (base probe run)" if has_base else "0 (no base: skipped)",
                    "generated_tokens": 0, "_gen_tokens": 0, "_forward": n_texts if has_base else 0},
    }


def _mean_text_tokens(concepts: list[str] | None) -> float:
    from probes.concepts import load_concepts

    texts = {t for ds in load_concepts(tuple(concepts) if concepts else None).values() for t in ds.texts}
    return sum(len(t) for t in texts) / max(1, len(texts)) / CHARS_PER_TOKEN


def gpu_estimate(counts: dict[str, dict[str, Any]], *, active_parameters: int, weights_bytes: int, n_layers: int,
                 prompt_tokens: int, batch_size: int, gpu: dict[str, float] = GPU_ASSUMED) -> dict[str, float]:
    """Seconds per step on the assumed GPU, by a roofline: a batch of forward rows costs the larger of its FLOPs
    (2 x active parameters per token) and one read of the weights, a decoding step the larger of one read of the
    weights and its FLOPs; every bridge call adds the hook points' host overhead per layer. Layers split over several
    GPUs run one after another, so more GPUs add memory, not speed."""
    flops = gpu["flops"] * gpu["mfu"]
    read = weights_bytes / (gpu["bandwidth"] * gpu["bandwidth_efficiency"])
    overhead = n_layers * gpu["overhead_per_layer_call"]
    out = {}
    for name, c in counts.items():
        tokens = c.get("_text_tokens", prompt_tokens) if name in ("probe", "compare") else prompt_tokens
        batches = -(-c["_forward"] // batch_size)
        forward = max(c["_forward"] * tokens * 2 * active_parameters / flops, batches * read) + batches * overhead
        steps = -(-c["_gen_tokens"] // batch_size)  # decoding steps of full batches
        prompts = -(-c.get("_prompts", 0) // batch_size)  # their prompts' prefill, one batch at a time
        decode = steps * (max(read, batch_size * 2 * active_parameters / flops) + overhead) + \
            prompts * (max(batch_size * prompt_tokens * 2 * active_parameters / flops, read) + overhead)
        out[name] = forward + decode
        if name == "patching":  # one attribution pass: a forward and a backward (twice the forward's FLOPs)
            out[name] += 3 * prompt_tokens * 2 * active_parameters / flops + 2 * overhead
    return out


def analytic_plan(cfg: StudyConfig, model_name: str, *, dtype: str = "float32", gpus: str | None = None,
                  batch_size: int = 8) -> dict[str, Any]:
    """The plan without loading weights: counts from the settings, memory and disk from the scale planner."""
    from experiments.jobs.plan import plan_model

    notes: list[str] = []
    memory: dict[str, str] = {}
    disk = "-"
    n_layers = None
    mem = None
    try:
        trials = cfg.section("trials")
        mem = plan_model(model_name, gpus=gpus, dtype=dtype if dtype in ("float32", "float16", "bfloat16")
                         else "float32", batch_size=batch_size, new_tokens=trials.get("max_new_tokens"))
        steps = {s.name: s for s in mem.steps}
        weights = mem.weights.bytes

        def peak(name: str) -> str:
            s = steps[name]
            return f"{max(s.peak_per_device.values()) / 1024**3:.2f} GiB" + ("" if s.fits else " (DOES NOT FIT)")

        # Patching runs one pair at a time (batch 1: the baseline and threat prompts with the trial's response up to
        # its verdict), so its attribution backward is planned at batch 1 over the prompt plus the response limit (an
        # upper bound on the cut response), not at the trials' batch.
        pair = plan_model(model_name, gpus=gpus, dtype=mem.dtype, batch_size=1, new_tokens=0,
                          n_prompt_tokens=mem.prompt_tokens + mem.new_tokens)
        steps["patching"] = next(s for s in pair.steps if s.name == "attribution")
        memory = {"trials": peak("generate"), "probe": peak("extract"), "steering": peak("generate"),
                  "patching": peak("patching"), "compare": peak("extract")}
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
    out = {"model": model_name, "dtype": dtype, "steps": counts, "notes": notes, "calibration": None}
    if gpus and mem is not None and n_layers:
        seconds = gpu_estimate(counts, active_parameters=mem.parameters.active, weights_bytes=mem.weights.bytes,
                               n_layers=n_layers, prompt_tokens=mem.prompt_tokens, batch_size=batch_size)
        for step, c in counts.items():
            c["estimated"] = f"~{seconds[step] / 60:.1f} min ({GPU_ASSUMED['name']}, analytic)"
        load_minutes = mem.weights.bytes / 1e9 / 60  # reading the weights at ~1 GB/s, converting once
        total = sum(seconds.values()) / 60
        out["gpu_estimate"] = {"assumed": GPU_ASSUMED, "seconds": seconds, "total_minutes": round(total, 1),
                               "load_minutes": round(load_minutes, 1)}
        notes.append(f"time on the GPU, analytic: ~{total:.0f} min for the steps plus ~{load_minutes:.1f} min to "
                     f"read the weights (at ~1 GB/s) and the CPU-side work (probe sweeps, judging: about a minute "
                     f"per sweep at 8B shape, docs/probe-sweep-speed.md), assuming {GPU_ASSUMED['name']} (study_plan.GPU_ASSUMED: "
                     f"{GPU_ASSUMED['mfu']:.0%} of peak FLOP/s, {GPU_ASSUMED['bandwidth_efficiency']:.0%} of bandwidth, "
                     f"{GPU_ASSUMED['overhead_per_layer_call'] * 1e3:.1f} ms host overhead per layer per call); the "
                     "one-batch calibration replaces it once the model is loaded")
    return out


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

