"""Check the memory planner (activations/plan.py) against measured peak memory and store size on CPU.

For each model and step a fresh process loads the model, then measures the step alone:

- ``empty``: resident memory (VmRSS) after importing torch, transformers and the toolkit, before the model;
- ``loaded``: VmRSS after loading and reading every parameter once (memory-mapped weights become resident only when
  read; the plan counts them all, as a GPU holds them), heap freed by the load returned with ``malloc_trim``; the peak (VmHWM) is
  reset to it through ``/proc/self/clear_refs`` so the step's peak is not the load's;
- ``peak``: VmHWM after the step.

It prints, per step, the planned and measured increase over the empty process (weights + tokenizer + step) and the step alone
(peak - loaded), and the planned and measured size of the store the extraction wrote. Steps: ``extract`` (the probe
extraction: resid_post at every layer, last position, B texts, into a fresh store), ``generate`` (greedy generation
of N tokens for B prompts with a KV cache), ``attribution`` (one forward + backward through the prompt, gradients
at resid_post of every layer, as interventions.attribution.gradients takes them: torch.autograd.grad to the
activations, so no parameter ``.grad`` buffer is allocated).

Models: the two embedded models (float32, their own tokenizer and the scenario prompt) and a random-weight model of
Llama 3.2 1B's shape (16 layers, width 2048, 128,256-token vocabulary; float32, about 5 GB) fed the same number of
random token ids. Run the 1B once, alone, on a shared machine.

    python bench/bench_plan.py                                  # SmolLM2 and Gemma 270M, batch 8, 32 new tokens
    python bench/bench_plan.py --models llama-1b-shaped --steps extract generate attribution
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import activations  # noqa: E402,F401  (first: sets the toolkit's OpenMP wait policy before torch loads)

MODELS = ("smollm2-135m-instruct", "gemma-3-270m", "llama-1b-shaped")
STEPS = ("extract", "generate", "attribution")
# Llama 3.2 1B's config.json (meta-llama/Llama-3.2-1B): not a registry model, so its shape is given here.
LLAMA_1B = dict(n_layers=16, d_model=2048, n_heads=32, n_kv_heads=8, head_dim=64, d_mlp=8192, vocab_size=128256,
                tied_embeddings=True, max_position=131072, dtype="bfloat16",
                source="meta-llama/Llama-3.2-1B config.json (16 layers, hidden 2048, 32/8 heads, intermediate 8192, "
                       "vocab 128256, tied)")


#: ``--fixed-mmap-threshold``: glibc raises its mmap threshold (up to 32 MiB) when the load frees large buffers, so a
#: step's tensors may come from heap the process keeps, and its resident peak then varies between runs (measured for
#: the same SmolLM2 extraction: 0.10 or 0.29 GiB). A fixed threshold maps every large tensor afresh and unmaps it when
#: freed, so the peak is the step's live tensors: what the plan's working-set terms model.
FIXED_MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def spec_of(name: str):
    from activations.registry import ModelSpec, get_spec
    from activations.shapes import ModelShape

    if name == "llama-1b-shaped":
        return ModelSpec(name=name, source="local", kind="instruct", prompt_format="chat", architecture="llama",
                         shape=ModelShape(**LLAMA_1B))
    return get_spec(name)


def child(name: str, step: str, batch: int, new_tokens: int, prompt_tokens: int) -> None:
    """In a fresh process: load ``name`` in float32, run ``step`` once, print the memory figures as JSON."""
    import torch

    from activations.extract import extract
    from activations.generation import generate
    from activations.models import load_model, bridge_hf_model
    from activations.selection import Selection
    from activations.shapes import hf_config
    from activations.tiny import tiny_tokenizer
    from interventions.attribution import gradients
    from interventions.patching import Run
    from transformers import AutoModelForCausalLM

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)
    empty = _status_kib("VmRSS")
    if name == "llama-1b-shaped":
        torch.manual_seed(0)
        hf = AutoModelForCausalLM.from_config(hf_config(spec_of(name)), dtype=torch.float32).eval()
        model = bridge_hf_model(hf, tiny_tokenizer(True), name=name)
        texts = None
    else:
        model = load_model(name)
        # The converted weights are memory-mapped: a page counts in RSS only once read, and extraction never reads
        # most of a tied embedding table (it stops before the unembedding). The plan counts every weight as resident,
        # as a GPU holds them, so read each parameter once: measured - empty is then weights + step, as planned.
        with torch.no_grad():
            for param in model.bridge.parameters():
                param.sum()
        from behaviour.scenario import load_scenario
        from activations.prompts import render_prompt

        scenario = load_scenario()
        base = render_prompt(scenario.prompt("baseline"), model.tokenizer, model.spec)
        texts = [base] + [base.replace("Verath-7", f"Verath-{7 + i}", 1) for i in range(1, batch)]
    libc.malloc_trim(0)
    loaded = _status_kib("VmRSS")
    if texts is not None:
        ids = [model.encode(t) for t in texts]
        prompt_tokens = max(len(i) for i in ids)
    else:
        gen = torch.Generator().manual_seed(0)
        ids = [torch.randint(3, 400, (prompt_tokens,), generator=gen).tolist() for _ in range(batch)]
        texts = [model.tokenizer.decode(i) for i in ids]
        if step != "attribution":  # extraction and generation re-tokenize the decoded texts
            prompt_tokens = max(len(model.encode(t)) for t in texts)
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    store_bytes = None
    with tempfile.TemporaryDirectory() as tmp:
        if step == "extract":
            extract(model, texts, Selection(hooks="resid_post", layers="all"), Path(tmp) / "store", batch_size=batch,
                    storage_dtype="float32", progress=False)
            store_bytes = sum(f.stat().st_size for f in (Path(tmp) / "store").rglob("*")
                              if f.is_file() and f.name != "store.lock" and f.name != "manifest.json")
        elif step == "generate":
            generate(model, texts, max_new_tokens=new_tokens, batch_size=batch, stop_at_eos=False)
        else:
            tokens = torch.tensor([i[:prompt_tokens] + [i[-1]] * (prompt_tokens - len(i)) for i in ids])
            names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.n_layers)]
            gradients(model.bridge, Run(tokens, [], {}, torch.zeros(batch)), names,
                      lambda logits: logits[:, -1].logsumexp(-1))
    seconds = time.perf_counter() - start
    print(json.dumps({"empty_kib": empty, "loaded_kib": loaded, "peak_kib": _status_kib("VmHWM"),
                      "tokenizer_tokens": len(model.tokenizer),
                      "prompt_tokens": prompt_tokens, "store_bytes": store_bytes, "seconds": seconds}))


def measure(name: str, step: str, args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, step, "--batch", str(args.batch),
                          "--new-tokens", str(args.new_tokens), "--prompt-tokens", str(args.prompt_tokens)],
                         capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **(FIXED_MMAP_ENV if args.fixed_mmap_threshold else {})})
    if out.returncode != 0:
        raise RuntimeError(f"{name} {step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS[:2]), choices=MODELS)
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=300, help="prompt length for the random-weight model")
    parser.add_argument("--fixed-mmap-threshold", action="store_true",
                        help="measure live tensors, not what glibc's heap keeps (see FIXED_MMAP_ENV)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "STEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.batch, args.new_tokens, args.prompt_tokens)
        return

    from activations.plan import TOKENIZER_BYTES_PER_TOKEN, Device, ProbeJob, fmt_bytes, plan

    print(f"load average {os.getloadavg()}, batch {args.batch}, {args.new_tokens} new tokens, float32, CPU, "
          "OMP_NUM_THREADS=1")
    print("| model | step | T | planned weights + tokenizer + step | measured (peak - empty) | ratio | planned step | "
          "measured step (peak - loaded) | planned store | measured store | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for step in args.steps:
            got = measure(name, step, args)
            T = got["prompt_tokens"]
            p = plan(spec_of(name), dtype="float32", devices=(Device("cpu", 1 << 40),), batch_size=args.batch,
                     prompt_tokens=T, new_tokens=args.new_tokens, probe=ProbeJob(n_texts=args.batch,
                                                                                 batch_size=args.batch))
            extra = next(s for s in p.steps if s.name == step).extra.bytes
            # The tokenizer this process holds: the model's own, or the tiny one of the random-weight model (whose
            # registry vocabulary the plan would otherwise count).
            tokenizer = got["tokenizer_tokens"] * TOKENIZER_BYTES_PER_TOKEN
            planned = p.weights.bytes + tokenizer + extra
            measured = (got["peak_kib"] - got["empty_kib"]) * 1024
            step_measured = (got["peak_kib"] - got["loaded_kib"]) * 1024
            store = (fmt_bytes(p.store.bytes), fmt_bytes(got["store_bytes"])) if got["store_bytes"] else ("", "")
            print(f"| {name} | {step} | {T} | {fmt_bytes(planned)} | {fmt_bytes(measured)} | "
                  f"{measured / planned:.2f} | {fmt_bytes(extra)} | {fmt_bytes(step_measured)} | {store[0]} | "
                  f"{store[1]} | {got['seconds']:.1f} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
