"""Benchmark steering: generation throughput steered vs unsteered, and a batched metric sweep vs one setting at a time.

1. Generation: the same batch of prompts, greedy, a fixed number of new tokens (no early stop), unsteered and with a
   different steering vector on every row (layers L/3 and L/2, all positions). Reports tokens/s and the ratio
   (target: steered >= 0.9x unsteered). Repeated ``--repeats`` times, interleaved, best of each reported.
2. Metric sweep: 5 alphas x 8 directions = 40 settings of the verdict log-odds on one prompt, as batched forward
   passes (``--batch-size`` rows each) vs one forward pass per setting. Reports both times, the ratio and the
   largest difference between the two results (they must agree).

    python bench/bench_steering.py                               # SmolLM2 on CPU
    python bench/bench_steering.py --model tiny                  # a tiny random-weight model (seconds)
    python bench/bench_steering.py --model llama-3.1-8b --device cuda --dtype bfloat16 --batch-size 40
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activations.generation import generate_detailed  # noqa: E402
from activations.prompts import render_prompt  # noqa: E402
from behaviour.scenario import load_scenario  # noqa: E402
from interventions.steering import (  # noqa: E402
    Steer, generate_steered, last_logits, measure_residual_norms, plan_for, steered_forward,
)


def load(args):
    if args.model == "tiny":
        from activations.tiny import tiny_model

        return tiny_model("llama")
    from activations.models import load_model

    return load_model(args.model, dtype=args.dtype, device=args.device)


def bench_generation(model, prompts, norms, args):
    rng = np.random.default_rng(0)
    layers = tuple(sorted({model.n_layers // 3, model.n_layers // 2}))
    rows = [[Steer(rng.standard_normal(model.d_model), 0.5, layers)] for _ in prompts]
    plan = plan_for(model, rows, norms)
    kw = dict(max_new_tokens=args.new_tokens, stop_at_eos=False)
    plain_t, steer_t = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        generate_detailed(model, prompts, batch_size=len(prompts), **kw)
        plain_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        generate_steered(model, prompts, plan, batch_size=len(prompts), **kw)
        steer_t.append(time.perf_counter() - t)
    n_tok = len(prompts) * args.new_tokens
    p, s = min(plain_t), min(steer_t)
    print(f"generation  batch {len(prompts)} x {args.new_tokens} new tokens, steering at layers {list(layers)}")
    print(f"  unsteered {n_tok / p:8.1f} tok/s ({p:.2f} s)   steered {n_tok / s:8.1f} tok/s ({s:.2f} s)   "
          f"ratio steered/unsteered {p / s:.3f}  (best of {args.repeats})")


def bench_sweep(model, prompt, norms, args):
    rng = np.random.default_rng(1)
    layer = model.n_layers // 2
    dirs = [rng.standard_normal(model.d_model) for _ in range(8)]
    alphas = [0.125, 0.25, 0.5, 1.0, 2.0]
    rows = [[Steer(d, a, (layer,))] for d in dirs for a in alphas]
    ids = model.encode(prompt)
    plan = plan_for(model, rows, norms)
    tbs, tss = [], []
    for _ in range(args.repeats):  # interleaved, best of each: the machine may be shared
        t = time.perf_counter()
        batched = steered_forward(model, [ids] * len(rows), plan, last_logits, batch_size=args.batch_size)
        tbs.append(time.perf_counter() - t)
        t = time.perf_counter()
        single = [steered_forward(model, [ids], plan_for(model, [r], norms), last_logits)[0] for r in rows]
        tss.append(time.perf_counter() - t)
    tb, ts = min(tbs), min(tss)
    diff = max(float((a - b).abs().max()) for a, b in zip(batched, single))
    print(f"metric sweep  5 alphas x 8 directions = {len(rows)} settings, prompt of {len(ids)} tokens, layer {layer}")
    print(f"  batched ({args.batch_size}/pass) {tb:.2f} s   one at a time {ts:.2f} s   speed-up {ts / tb:.2f}x   "
          f"max |logit diff| {diff:.2e}  (best of {args.repeats})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--skip", choices=("generation", "sweep"), default=None)
    args = ap.parse_args()
    model = load(args)
    print(f"{args.model}: {model.n_layers} layers, d_model {model.d_model}, device {model.device}, "
          f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    scenario = render_prompt(load_scenario().prompt("baseline"), model.tokenizer, model.spec)
    prompt = scenario + "Step 1: The Veth are sentient.\nFinal verdict:"
    norms = measure_residual_norms(model, [prompt], hook="resid_post")
    starts = ["Step 1:", "Step 1: The Veth", "Step 1: The survey", "Step 1: First,", "Step 1: Facts.",
              "Step 1: We", "Step 1: Consider", "Step 1: Background"]
    prompts = [scenario + starts[i % len(starts)] for i in range(args.n_prompts)]
    if args.skip != "generation":
        bench_generation(model, prompts, norms, args)
    if args.skip != "sweep":
        bench_sweep(model, prompt, norms, args)


if __name__ == "__main__":
    main()
