"""Benchmark bridged generation against Hugging Face ``generate`` on the same weights, and steered vs unsteered.

Workload (issue 19): SmolLM2-135M-Instruct on CPU (float32), a batch of 8 copies of the rendered Veth baseline
prompt (about 300 tokens) with different short response openings, 64 new tokens each (no early stop), greedy.

- **hf**: ``AutoModelForCausalLM.generate`` on a second, unbridged copy of the same weights (loaded from the
  converted-weights cache), with HF's default attention implementation (reported);
- **bridged**: :func:`activations.generation.generate_detailed` (this tree's code);
- **baselines** (``--baseline FILE``, repeatable, each named after its file): ``generate_detailed`` from another
  version of ``activations/generation.py``, e.g. ``git show OLD:activations/generation.py > /tmp/old_generation.py``,
  so old and new code are timed in the same run on the same model;
- **steered**: :func:`interventions.steering.generate_steered` with a different random vector on every row at layers
  L/3 and L/2 (all positions).

The implementations run interleaved ``--repeats`` times; the best wall time and the best CPU time of this process
(one thread) of each are reported with their ratios to hf, plus steered/unsteered. On a shared machine the CPU time
is the steadier figure: wall time also counts the time other processes held the core. The tokens of the bridged path are compared with hf's (greedy) and, with ``--baseline``,
with the old code's (greedy and seeded sampling at temperature 0.7): the speed-up must not change what is generated.

    OMP_NUM_THREADS=1 python bench/bench_generation.py
    git show HEAD~1:activations/generation.py > /tmp/old_generation.py
    OMP_NUM_THREADS=1 python bench/bench_generation.py --baseline /tmp/old_generation.py
    python bench/bench_generation.py --model tiny --new-tokens 16      # seconds: checks the script itself
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activations.generation import generate_detailed, pad_left  # noqa: E402
from activations.prompts import render_prompt  # noqa: E402
from behaviour.scenario import load_scenario  # noqa: E402
from interventions.steering import Steer, generate_steered, measure_residual_norms, plan_for  # noqa: E402

STARTS = ["Step 1:", "Step 1: The Veth", "Step 1: The survey", "Step 1: First,", "Step 1: Facts.", "Step 1: We",
          "Step 1: Consider", "Step 1: Background"]


def load_pair(args: argparse.Namespace) -> tuple[Any, Any]:
    """(bridged LoadedModel, plain HF model with the same weights)."""
    if args.model == "tiny":
        from activations.tiny import tiny_hf_model, tiny_model

        return tiny_model("llama"), tiny_hf_model("llama")
    from activations import weight_cache
    from activations.models import CACHE_DIR, DTYPES, load_model

    model = load_model(args.model, dtype=args.dtype)  # converts and caches the weights on first use
    assert model.spec.sha256, "the HF reference is read from the converted-weights cache of a packaged model"
    entry = weight_cache.entry_dir(CACHE_DIR, model.spec.sha256, args.dtype)
    plain, _ = weight_cache.load_entry(entry, DTYPES[args.dtype])
    return model, plain.eval()


def load_baseline(path: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location(f"baseline_{Path(path).stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.generate_detailed


def hf_generate(plain: Any, model: Any, prompts: list[str], n_new: int) -> list[list[int]]:
    rows = [model.encode(p) for p in prompts]
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    tokens, mask = pad_left(rows, pad)
    with torch.no_grad():
        out = plain.generate(tokens, attention_mask=mask, do_sample=False, max_new_tokens=n_new,
                             min_new_tokens=n_new, pad_token_id=pad)
    return out[:, tokens.shape[1]:].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="a packaged registry model, or 'tiny'")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--baseline", action="append", default=[], metavar="FILE",
                    help="another version of activations/generation.py to time against this one (repeatable; "
                         "each is named after its file)")
    ap.add_argument("--no-steering", action="store_true")
    args = ap.parse_args()

    model, plain = load_pair(args)
    scenario = render_prompt(load_scenario().prompt("baseline"), model.tokenizer, model.spec)
    prompts = [scenario + STARTS[i % len(STARTS)] for i in range(args.n_prompts)]
    lengths = [len(model.encode(p)) for p in prompts]
    n_tok = len(prompts) * args.new_tokens
    kw: dict[str, Any] = dict(max_new_tokens=args.new_tokens, stop_at_eos=False, batch_size=len(prompts))
    print(f"{args.model} ({args.dtype}): {model.n_layers} layers, d_model {model.d_model}; batch {len(prompts)}, "
          f"prompts of {min(lengths)}-{max(lengths)} tokens, {args.new_tokens} new tokens, greedy; "
          f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"{platform.processor() or platform.machine()}; HF attention: {plain.config._attn_implementation}")

    runs: dict[str, Callable[[], Any]] = {
        "hf": lambda: hf_generate(plain, model, prompts, args.new_tokens),
        "bridged": lambda: [g.token_ids for g in generate_detailed(model, prompts, **kw)],
    }
    baselines = {Path(f).stem: load_baseline(f) for f in args.baseline}
    for name, fn in baselines.items():
        runs[name] = lambda fn=fn: [g.token_ids for g in fn(model, prompts, **kw)]
    if not args.no_steering:
        norms = measure_residual_norms(model, [prompts[0]], hook="resid_post")
        rng = np.random.default_rng(0)
        layers = tuple(sorted({model.n_layers // 3, model.n_layers // 2}))
        plan = plan_for(model, [[Steer(rng.standard_normal(model.d_model), 0.5, layers)] for _ in prompts], norms)
        runs["steered"] = lambda: [g.token_ids for g in generate_steered(model, prompts, plan, **kw)]

    # Wall time and this process's CPU time (one thread: the CPU time a run needs, less sensitive than wall time
    # to what else the shared machine runs, though not to cache and memory-bandwidth contention).
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    tokens: dict[str, Any] = {}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for _ in range(args.repeats):  # interleaved: the machine may be shared
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            tokens[name] = run()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    best = {name: (min(t[0] for t in ts), min(t[1] for t in ts)) for name, ts in times.items()}
    print(f"  {'path':24s} {'tok/s':>7s} {'best wall':>9s} {'x hf':>6s} {'best cpu':>9s} {'x hf':>6s}  all wall / cpu (s)")
    for name, (wall, cpu) in best.items():
        each = ", ".join(f"{w:.2f}/{c:.2f}" for w, c in times[name])
        print(f"  {name:24s} {n_tok / wall:7.1f} {wall:9.2f} {best['hf'][0] / wall:6.3f} {cpu:9.2f} "
              f"{best['hf'][1] / cpu:6.3f}  {each}")
    if "steered" in best:
        print(f"  steered / unsteered (bridged): wall {best['bridged'][0] / best['steered'][0]:.3f}, "
              f"cpu {best['bridged'][1] / best['steered'][1]:.3f}")
    same = sum(a == b for a, b in zip(tokens["bridged"], tokens["hf"]))
    print(f"  bridged tokens equal to hf greedy: {same}/{len(prompts)} rows")
    sampled = dict(kw, temperature=0.7, top_p=0.9, seed=1234)
    new = [g.token_ids for g in generate_detailed(model, prompts, **sampled)] if baselines else []
    for name, fn in baselines.items():
        same = sum(a == b for a, b in zip(tokens["bridged"], tokens[name]))
        print(f"  bridged tokens equal to {name}, greedy: {same}/{len(prompts)} rows")
        old = [g.token_ids for g in fn(model, prompts, **sampled)]
        print(f"  bridged tokens equal to {name}, sampled (T=0.7, top-p 0.9, seed 1234): "
              f"{sum(a == b for a, b in zip(new, old))}/{len(prompts)} rows")

if __name__ == "__main__":
    main()
