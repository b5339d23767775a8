"""How many CPU threads should torch use? SmolLM2 prefill and decode at 1 thread vs torch's default, each setting in
a fresh process (torch fixes its thread pools per process).

Workload (issue 8): ``smollm2-135m-instruct`` (float32, CPU), the Veth baseline prompt chat-rendered (297 tokens) in
a batch of 8:

- **prefill**: one forward pass over the 8 x 297 tokens through the bridge (what extraction and the first step of
  generation do);
- **decode step**: the wall time between consecutive logits of greedy batch-8 generation through
  ``activations.generation``'s path (``bridge.generate`` with the KV cache), median over ``--steps`` steps.

Settings alternate (1, default, 1, default, ...) so that both see the same machine load; the load average is printed
with each figure, since the answer depends on what else runs. The threads are applied with
``common.threads.set_threads``, exactly what ``--threads`` does; "default" is torch's own choice with
``OMP_NUM_THREADS`` removed from the environment (one thread per core).

    python bench/bench_threads.py                        # 1 vs default, 2 rounds, 16 decode steps
    python bench/bench_threads.py --threads 1 2 4 --rounds 3 --steps 32
    python bench/bench_threads.py --wait-policy ACTIVE --rounds 1 --reps 1   # OpenMP threads spinning (torch's
                                                                             # default without the toolkit)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = "smollm2-135m-instruct"
BATCH = 8


def worker(threads: int | None, steps: int, reps: int) -> dict:
    import activations  # noqa: F401  (first: the toolkit's OpenMP wait policy)
    from common.threads import set_threads

    settings = set_threads(threads)  # before torch does any work, as the commands do
    import torch

    from activations.generation import LOGITS_HOOK
    from activations.models import load_model
    from activations.prompts import render_prompt
    from behaviour.scenario import load_scenario

    start = time.perf_counter()
    model = load_model(MODEL)
    load_s = time.perf_counter() - start
    prompt = render_prompt(load_scenario().prompt("baseline"), model.tokenizer, model.spec)
    ids = model.encode(prompt)
    tokens = torch.tensor([ids] * BATCH, dtype=torch.long)
    mask = torch.ones_like(tokens)
    stamps: list[float] = []

    def stamp(logits: torch.Tensor, hook: object) -> torch.Tensor:
        stamps.append(time.perf_counter())
        return logits

    prefill, decode = [], []
    with torch.no_grad():
        model.bridge(tokens[:, :16], attention_mask=mask[:, :16])  # warm-up: first-call allocations
        for _ in range(reps):
            t0 = time.perf_counter()
            model.bridge(tokens, attention_mask=mask)
            prefill.append(time.perf_counter() - t0)
            stamps.clear()
            with model.bridge.hooks(fwd_hooks=[(LOGITS_HOOK, stamp)]):
                model.bridge.generate(tokens, attention_mask=mask, max_new_tokens=steps + 1, do_sample=False,
                                      stop_at_eos=False, return_type="tokens", verbose=False)
            decode += [b - a for a, b in zip(stamps[1:], stamps[2:])]  # stamps[0]: end of generation's prefill
    return {"threads": threads, "settings": settings, "torch_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_s": load_s, "prompt_tokens": len(ids),
            "prefill_s": prefill, "decode_step_s": decode, "load_average": os.getloadavg()[0]}


def run_setting(threads: int | None, steps: int, reps: int, wait_policy: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy  # the toolkit only sets PASSIVE where nothing is set
    cmd = [sys.executable, __file__, "--worker", "default" if threads is None else str(threads),
           "--steps", str(steps), "--reps", str(reps)]
    load_before = os.getloadavg()[0]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_average_before"] = load_before
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", nargs="+", default=["1", "default"],
                        help="settings to compare: numbers and/or 'default' (default: 1 default)")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per setting, alternating")
    parser.add_argument("--steps", type=int, default=16, help="decode steps timed per generation")
    parser.add_argument("--reps", type=int, default=2, help="prefill + generation repeats inside each process")
    parser.add_argument("--wait-policy", choices=("PASSIVE", "ACTIVE"), default=None,
                        help="OpenMP wait policy for the workers (default: the toolkit's, PASSIVE)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(None if args.worker == "default" else int(args.worker), args.steps, args.reps)))
        return
    settings = [None if t == "default" else int(t) for t in args.threads]
    print(f"{MODEL}, batch {BATCH}, {os.cpu_count()} CPUs; {args.rounds} process(es) per setting, alternating; "
          f"{args.reps} prefill(s) and {args.reps} x {args.steps} decode steps per process")
    results: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):
        for threads in settings:
            r = run_setting(threads, args.steps, args.reps, args.wait_policy)
            name = "default" if threads is None else str(threads)
            results.setdefault(name, []).append(r)
            print(f"round {round_ + 1} threads={name} (torch {r['torch_threads']} intra / {r['interop_threads']} "
                  f"inter-op, OMP_WAIT_POLICY {r['wait_policy']}): prefill {r['prompt_tokens']}x{BATCH} tokens "
                  f"{', '.join(f'{x:.2f}' for x in r['prefill_s'])} s; decode step median "
                  f"{statistics.median(r['decode_step_s']):.3f} s; load average {r['load_average_before']:.1f} -> "
                  f"{r['load_average']:.1f}", flush=True)
    print("\nsummary (medians over all processes; (x): speed relative to the first setting, > 1 is faster):")
    print("| threads | torch intra-op threads | prefill 8 x 297 tokens | batch-8 decode step | load average |")
    print("|---|---|---|---|---|")
    base = None
    for name, rs in results.items():
        prefill = statistics.median([x for r in rs for x in r["prefill_s"]])
        decode = statistics.median([x for r in rs for x in r["decode_step_s"]])
        load = statistics.median([r["load_average_before"] for r in rs])
        base = base or (prefill, decode)
        print(f"| {name} | {rs[0]['torch_threads']} | {prefill:.2f} s ({base[0] / prefill:.2f}x) | {decode:.3f} s "
              f"({base[1] / decode:.2f}x) | {load:.1f} |")


if __name__ == "__main__":
    main()
