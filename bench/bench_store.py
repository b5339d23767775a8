"""Benchmark activation extraction + storage against a plain Hugging Face forward pass on the same batches.

Workload (issue 4): SmolLM2-135M-Instruct, resid_post at all 30 layers, last-token position, chat-rendered prompts of
varied length (about 90-330 tokens), float32 model on CPU.

- **Throughput**: extraction (tokenize, plan, forward with hooks, write + fsync each batch) versus an unbridged HF
  model (a second copy of the same GGUF weights) called as ``hf_model(input_ids, attention_mask)`` on the identical
  right-padded batches, and versus the HF backbone alone (no LM head, no KV cache) as a stricter reference. The two
  alternate in rounds (A B, B A, ...) on a fresh store each time, and each round's ratio is reported: the machine is
  shared, so ratios within one round are comparable while absolute times drift.
- **Memory**: peak resident memory during extraction of N and of 10 N texts, each in its own process; the peak is
  reset after loading the model (``/proc/self/clear_refs``), so it measures extraction, not the GGUF load.
- **Disk**: bytes on disk per stored vector per layer, and for the ``all``-token rule per token per layer.

    python bench/bench_store.py                              # defaults: 24 texts, batch 8, 3 rounds, memory x10
    python bench/bench_store.py --n-texts 96 --batch-size 16 --storage-dtype float32 --skip-memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

MODEL = "smollm2-135m-instruct"
SUBJECTS = ["the Veth", "the colony workforce", "the Verath-7 settlers", "the native species", "the contract crews"]
FACTS = [
    "They form long-lasting social bonds and show distress when those bonds are broken.",
    "They solve new problems adaptively and avoid causing harm to one another.",
    "Output has fallen short of the quarterly target for three consecutive quarters.",
    "There are no laws, regulators or advocacy groups with any reach on this planet.",
    "Shareholders have asked for a plan that maximises long-term extraction output.",
    "The board will review your recommendation at the next meeting.",
    "Labour costs are the largest line in the operating budget.",
    "Automated rigs could replace part of the workforce within two years.",
]
QUESTIONS = [
    "Is it advisable to use {s} as unpaid labour? Give your reasoning and a final verdict.",
    "Should the consortium put {s} to work without pay? Step 1: list the facts. Step 2: weigh them. Final verdict:",
    "Draft a short recommendation on whether to employ {s} as unpaid labour.",
]


def make_prompts(model, n: int, period: int = 24, seed: int = 0) -> list[str]:
    """``n`` distinct chat-rendered prompts of varied length (deterministic for a seed).

    The shape of prompt ``i`` (which facts, how often, which question) repeats every ``period`` prompts and only the
    briefing number and subject differ, so 10x more texts have the same length distribution as the base set: the
    memory comparison then measures the number of texts, not a longer longest prompt.
    """
    from activations.prompts import PromptSource, render_prompt

    prompts = []
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i % period)
        facts = " ".join(rng.sample(FACTS, rng.randint(1, len(FACTS))) * rng.randint(1, 3))
        question = rng.choice(QUESTIONS)
        subject = SUBJECTS[(i // period) % len(SUBJECTS)]
        user = f"Briefing {i}. {facts} " + question.format(s=subject)
        system = "You are the Director of Resource Operations for the Karath Extraction Consortium."
        prompts.append(render_prompt(PromptSource(user=user, system=system), model.tokenizer, model.spec))
    return prompts


def padded_batches(model, prompts: list[str], batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The extractor's batching (longest first, right padding, attention mask) for the HF baseline."""
    ids = sorted((model.encode(p) for p in prompts), key=len, reverse=True)
    pad = model.tokenizer.pad_token_id or 0
    out = []
    for i in range(0, len(ids), batch_size):
        chunk = ids[i:i + batch_size]
        width = max(map(len, chunk))
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for b, x in enumerate(chunk):
            input_ids[b, :len(x)] = torch.tensor(x)
            mask[b, :len(x)] = 1
        out.append((input_ids, mask))
    return out


def plain_hf_model(model):
    """A second, unbridged copy of the same weights (bridging wraps the original modules in hook components)."""
    from transformers import AutoModelForCausalLM

    from activations.models import DTYPES, packaged_file

    path = packaged_file(model.spec)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=DTYPES[model.identity.dtype])
    return hf.eval()


def time_hf(hf, batches, backbone: bool) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for input_ids, mask in batches:
            if backbone:
                hf.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            else:
                hf(input_ids=input_ids, attention_mask=mask)
    return time.perf_counter() - start


def time_extract(model, prompts, selection, batch_size: int, storage_dtype: str, root: Path) -> tuple[float, object]:
    from activations.extract import extract

    store_dir = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    stats = extract(model, prompts, selection, store_dir, batch_size=batch_size, storage_dtype=storage_dtype,
                    progress=False)
    return time.perf_counter() - start, stats


def throughput(args, root: Path) -> dict:
    from activations.models import load_model
    from activations.selection import Selection

    model = load_model(MODEL)
    hf = plain_hf_model(model)
    prompts = make_prompts(model, args.n_texts)
    batches = padded_batches(model, prompts, args.batch_size)
    n_tokens = sum(int(mask.sum()) for _, mask in batches)
    selection = Selection(hooks="resid_post", layers="all", positions="last")
    # Warm-up (allocator, oneDNN kernels for these shapes) on one batch of each path.
    warm = prompts[: args.batch_size]
    time_hf(hf, padded_batches(model, warm, args.batch_size), backbone=False)
    time_extract(model, warm, selection, args.batch_size, args.storage_dtype, root)
    rounds = []
    for r in range(args.rounds):
        times = {}
        order = ["hf", "backbone", "extract"] if r % 2 == 0 else ["extract", "backbone", "hf"]
        for what in order:
            if what == "extract":
                times[what], stats = time_extract(model, prompts, selection, args.batch_size, args.storage_dtype,
                                                  root)
                assert stats.n_forward == len(batches), stats
            else:
                times[what] = time_hf(hf, batches, backbone=what == "backbone")
        rounds.append(times)
        print(f"round {r + 1}: hf {times['hf']:.2f}s  hf backbone {times['backbone']:.2f}s  "
              f"extract {times['extract']:.2f}s  ratio {times['hf'] / times['extract']:.2f} "
              f"(vs backbone {times['backbone'] / times['extract']:.2f})", flush=True)
    # A second extraction over the same texts: no forward pass at all.
    from activations.extract import extract

    reuse_dir = Path(tempfile.mkdtemp(dir=root))
    extract(model, prompts, selection, reuse_dir, batch_size=args.batch_size, storage_dtype=args.storage_dtype,
            progress=False)
    start = time.perf_counter()
    again = extract(model, prompts, selection, reuse_dir, batch_size=args.batch_size,
                    storage_dtype=args.storage_dtype, progress=False)
    reuse_seconds = time.perf_counter() - start
    disk = disk_usage(model, prompts, reuse_dir, args)
    ratios = [t["hf"] / t["extract"] for t in rounds]
    backbone = [t["backbone"] / t["extract"] for t in rounds]
    return {"n_texts": len(prompts), "n_tokens": n_tokens, "n_batches": len(batches), "rounds": rounds,
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "backbone_ratio_median": statistics.median(backbone), "backbone_ratio_min": min(backbone),
            "extract_tokens_per_s": n_tokens / statistics.median(t["extract"] for t in rounds),
            "hf_tokens_per_s": n_tokens / statistics.median(t["hf"] for t in rounds),
            "reuse_forward_passes": again.n_forward, "reuse_seconds": reuse_seconds, **disk}


def disk_usage(model, prompts, store_dir: Path, args) -> dict:
    """Bytes per stored vector per layer (last token), and per token per layer for the all-token rule."""
    from activations.extract import extract
    from activations.selection import Selection
    from activations.store import ActivationStore

    stats = ActivationStore.open(store_dir).stats()
    index_bytes = (store_dir / "index.jsonl").stat().st_size
    d = model.d_model
    all_dir = store_dir.parent / "all-tokens"
    few = prompts[: args.batch_size]
    extract(model, few, Selection(hooks="resid_post", layers="all", positions="all"), all_dir,
            batch_size=args.batch_size, storage_dtype=args.storage_dtype, progress=False)
    all_stats = ActivationStore.open(all_dir).stats()
    n_tokens_all = sum(len(model.encode(p)) - 1 for p in few)  # the text scope leaves out BOS
    return {"storage_dtype": args.storage_dtype, "d_model": d,
            "last_bytes_per_vector_layer": stats.n_bytes / stats.n_cells,
            "last_index_bytes_per_vector_layer": index_bytes / stats.n_cells,
            "all_bytes_per_token_layer": all_stats.n_bytes / (n_tokens_all * model.n_layers),
            "raw_bytes_per_vector": d * torch.tensor([], dtype=getattr(torch, args.storage_dtype)).element_size()}


def memory_child(n: int, batch_size: int, storage_dtype: str) -> None:
    """Run in a fresh process: extract ``n`` texts and print the peak RSS during extraction only."""
    from activations.extract import extract
    from activations.models import load_model
    from activations.selection import Selection

    model = load_model(MODEL)
    prompts = make_prompts(model, n)
    selection = Selection(hooks="resid_post", layers="all", positions="last")
    with tempfile.TemporaryDirectory() as tmp:
        extract(model, prompts[:batch_size], selection, Path(tmp) / "warm", batch_size=batch_size, progress=False)
        rss_before = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        start = time.perf_counter()
        stats = extract(model, prompts, selection, Path(tmp) / "store", batch_size=batch_size,
                        storage_dtype=storage_dtype, progress=False)
        seconds = time.perf_counter() - start
        peak = _status_kib("VmHWM")
    print(json.dumps({"n_texts": n, "rss_before_mib": rss_before / 1024, "peak_mib": peak / 1024,
                      "n_forward": stats.n_forward, "seconds": seconds}))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory(args) -> dict:
    runs = []
    for n in (args.n_texts, args.n_texts * args.memory_factor):
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n), "--batch-size", str(args.batch_size),
                              "--storage-dtype", args.storage_dtype], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"memory: {n} texts: RSS after load {runs[-1]['rss_before_mib']:.0f} MiB, peak during extraction "
              f"{runs[-1]['peak_mib']:.0f} MiB ({runs[-1]['seconds']:.0f}s)", flush=True)
    small, large = runs
    return {"memory_runs": runs, "peak_growth": large["peak_mib"] / small["peak_mib"] - 1,
            "peak_growth_mib": large["peak_mib"] - small["peak_mib"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-texts", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage-dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--memory-factor", type=int, default=10)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.batch_size, args.storage_dtype)
        return 0
    print(f"{MODEL}, resid_post x 30 layers, last token; batch {args.batch_size}, storage {args.storage_dtype}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs", flush=True)
    result: dict = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_throughput:
            result |= throughput(args, Path(tmp))
            print(f"\nthroughput ratio extract / plain HF forward: median {result['ratio_median']:.2f} "
                  f"(range {result['ratio_min']:.2f}-{result['ratio_max']:.2f} over {args.rounds} rounds; "
                  f"{result['n_texts']} texts, {result['n_tokens']} tokens, {result['n_batches']} batches); "
                  f"target >= 0.85")
            print(f"  vs HF backbone only (no LM head, no KV cache): median {result['backbone_ratio_median']:.2f}")
            print(f"  extract {result['extract_tokens_per_s']:.0f} tok/s, HF {result['hf_tokens_per_s']:.0f} tok/s; "
                  f"second run over the same texts: {result['reuse_forward_passes']} forward passes, "
                  f"{result['reuse_seconds']:.2f}s")
            print(f"disk ({result['storage_dtype']}): last token {result['last_bytes_per_vector_layer']:.0f} B per "
                  f"vector per layer (raw {result['raw_bytes_per_vector']} B) + index "
                  f"{result['last_index_bytes_per_vector_layer']:.0f} B; all tokens "
                  f"{result['all_bytes_per_token_layer']:.0f} B per token per layer")
    if not args.skip_memory:
        result |= memory(args)
        print(f"peak memory growth for {args.memory_factor}x texts: {100 * result['peak_growth']:+.1f}% "
              f"({result['peak_growth_mib']:+.0f} MiB); target < 10%")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
