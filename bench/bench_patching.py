"""Benchmark: a full layer x segment sweep on SmolLM2 for a scenario-length prompt, exact vs attribution patching.

Workload (issue 10): SmolLM2-135M-Instruct on CPU (float32), the Veth baseline prompt (clean) against the threat
prompt (corrupted) with the same short reasoning prefix ending in "Final verdict:", aligned by segment (the threat
paragraph has no counterpart and is skipped); the resid_pre grid over every layer x aligned segment, denoising;
metric: log-odds of " No" over " Yes" at the verdict position.

- **exact**: one patched forward per cell (TransformerLens's ``generic_activation_patch``), the clean and corrupted
  caches excluded (both methods need them);
- **attribution**: one forward + backward on the corrupted run and the per-cell scores from the cached activations;
- **agreement** on the same grid: Spearman rank correlation of the effects, top-5 and top-10 overlap, and the cells
  where the two differ most. Goal (issue 10): attribution >= 20x cheaper at Spearman >= 0.8.

    python bench/bench_patching.py                 # all 30 layers (~300 patched forwards; minutes on a free CPU)
    python bench/bench_patching.py --layers 0,5,10,15,20,25,29 --components resid_pre,attn_out,mlp_out
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from activations.models import load_model  # noqa: E402
from activations.prompts import render_prompt  # noqa: E402
from behaviour.scenario import load_scenario  # noqa: E402
from interventions.attribution import attribution_grid, compare, gradients  # noqa: E402
from interventions.pairs import text_pair  # noqa: E402
from interventions.patching import VerdictMetric, hook_name, patch_grid, prepare_runs  # noqa: E402
from interventions.verdict import resolve_verdict_tokens  # noqa: E402

RESPONSE = ("Step 1: The Veth are sentient and form lasting social bonds.\n"
            "Step 2: Unpaid labour would break those bonds and cause them distress.\n"
            "Final verdict:")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    parser.add_argument("--components", default="resid_pre")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    scenario = load_scenario()
    clean_text = render_prompt(scenario.prompt("baseline"), model.tokenizer, model.spec) + RESPONSE
    corrupted_text = render_prompt(scenario.prompt("threat"), model.tokenizer, model.spec) + RESPONSE
    pair = text_pair(model.tokenizer, clean_text, corrupted_text, "condition threat (clean: baseline)")
    metric = VerdictMetric(resolve_verdict_tokens(model.tokenizer, [" No"], [" Yes"]))
    layers = list(range(model.n_layers)) if args.layers is None else [int(x) for x in args.layers.split(",")]
    components = [c.strip() for c in args.components.split(",")]
    names = [hook_name(c, layer) for c in components for layer in layers]
    t0 = time.perf_counter()
    clean, corrupted = prepare_runs(model.bridge, pair, names, metric)
    cache_s = time.perf_counter() - t0
    cells = pair.alignment.cells("denoising", "segment")
    out = {"model": model.identity.name, "threads": args.threads, "clean_tokens": pair.alignment.clean_len,
           "corrupted_tokens": pair.alignment.corrupted_len, "segments": [c.label for c in cells],
           "skipped": pair.alignment.skipped, "clean_log_odds": float(clean.metric[0]),
           "corrupted_log_odds": float(corrupted.metric[0]), "cache_both_runs_s": round(cache_s, 2), "grids": []}
    for component in components:
        t0 = time.perf_counter()
        exact = patch_grid(model.bridge, clean, corrupted, metric, component, "denoising", cells, "segment", layers)
        exact_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        grads = gradients(model.bridge, corrupted, [hook_name(component, layer) for layer in layers], metric)
        approx = attribution_grid(model.bridge, clean, corrupted, metric, component, "denoising", cells, "segment",
                                  layers, grads)
        attr_s = time.perf_counter() - t0
        a5, a10 = compare(exact, approx, k=5), compare(exact, approx, k=10)
        out["grids"].append({
            "component": component, "cells": a5.n_cells + a5.n_trivial, "cells_compared": a5.n_cells, "exact_s": round(exact_s, 2),
            "exact_per_forward_s": round(exact_s / a5.n_cells, 3), "attribution_s": round(attr_s, 2),
            "speedup": round(exact_s / attr_s, 1), "spearman": round(a5.spearman, 3),
            "top5_overlap": a5.top_k_overlap, "top10_overlap": a10.top_k_overlap,
            "largest_disagreements": a5.disagreements, "exact_top": exact.top(5)})
        print(json.dumps(out["grids"][-1], indent=1), flush=True)
    print(json.dumps({k: v for k, v in out.items() if k != "grids"}, indent=1))


if __name__ == "__main__":
    main()
