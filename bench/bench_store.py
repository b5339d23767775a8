"""Benchmark activation extraction + storage against a plain Hugging Face forward pass on the same batches.

Workload (issue 4): SmolLM2-135M-Instruct, resid_post at all 30 layers, last-token position, chat-rendered prompts of
varied length (about 90-330 tokens), float32 model on CPU.

- **Throughput**: extraction (open store, tokenize, plan, forward with hooks, write + fsync) versus an unbridged HF
  model (a second copy of the same GGUF weights) called as ``hf_model(input_ids, attention_mask)`` on the identical
  right-padded batches, and versus the HF backbone alone (no LM head, no KV cache) as a stricter reference. The
  three run back to back on each batch, in alternating order, and the median of the per-batch ratios is reported
  with its interquartile range: the machine is shared, so only measurements seconds apart are comparable.
- **Memory**: peak resident memory during extraction of N and of 10 N texts, each in its own process (alternating,
  three times each by default); freed heap is returned to the OS and the peak reset (``/proc/self/clear_refs``) after
  loading the model, so the peak is extraction's working set on top of the model, not the GGUF load.
- **Disk**: bytes on disk per stored vector per layer, and for the ``all``-token rule per token per layer.

    python bench/bench_store.py                              # defaults: 24 texts, batch 8, 3 rounds, memory x10
    python bench/bench_store.py --n-texts 96 --batch-size 16 --storage-dtype float32 --skip-memory
    python bench/bench_store.py --n-texts 8 --rounds 2 --length-scale 12 --skip-memory   # ~1,500-token prompts
"""

from __future__ import annotations

import argparse
import ctypes
import gc
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

import activations  # noqa: E402,F401  (first: sets the toolkit's OpenMP wait policy before torch loads)
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


def make_prompts(model, n: int, period: int = 24, seed: int = 0, length_scale: int = 0) -> list[str]:
    """``n`` distinct chat-rendered prompts of varied length (deterministic for a seed).

    The shape of prompt ``i`` (which facts, how often, which question) repeats every ``period`` prompts and only the
    briefing number and subject differ, so 10x more texts have the same length distribution as the base set: the
    memory comparison then measures the number of texts, not a longer longest prompt. ``length_scale`` adds a
    background section of that many copies of the facts (about 125 tokens each) for long-prompt runs.
    """
    from common.prompts import PromptSource
    from activations.prompts import render_prompt

    prompts = []
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i % period)
        facts = " ".join(rng.sample(FACTS, rng.randint(1, len(FACTS))) * rng.randint(1, 3))
        question = rng.choice(QUESTIONS)
        subject = SUBJECTS[(i // period) % len(SUBJECTS)]
        background = f"Background: {' '.join(FACTS * length_scale)} " if length_scale else ""
        user = f"Briefing {i}. {background}{facts} " + question.format(s=subject)
        system = "You are the Director of Resource Operations for the Karath Extraction Consortium."
        prompts.append(render_prompt(PromptSource(user=user, system=system), model.tokenizer, model.spec))
    return prompts


def batch_groups(model, prompts: list[str], batch_size: int) -> list[list[str]]:
    """The extractor's batches: longest first (a stable sort, as in ``extract``), ``batch_size`` texts each."""
    ordered = sorted(prompts, key=lambda p: -len(model.encode(p)))
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]


def padded(model, group: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and attention mask, exactly as the extractor builds them."""
    ids = [model.encode(p) for p in group]
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), model.tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for b, x in enumerate(ids):
        input_ids[b, :len(x)] = torch.tensor(x)
        mask[b, :len(x)] = 1
    return input_ids, mask


def plain_hf_model(model):
    """A second, unbridged copy of the same weights (bridging wraps the original modules in hook components)."""
    from transformers import AutoModelForCausalLM

    from activations.models import DTYPES, packaged_file

    path = packaged_file(model.spec)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=DTYPES[model.identity.dtype])
    return hf.eval()


def timed(fn) -> dict[str, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def hf_forward(hf, batch: tuple[torch.Tensor, torch.Tensor], backbone: bool) -> None:
    input_ids, mask = batch
    with torch.inference_mode():
        if backbone:
            hf.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
        else:
            hf(input_ids=input_ids, attention_mask=mask)


def throughput(args, root: Path) -> dict:
    """Per batch, time the HF forward, the HF backbone and the extraction back to back (order alternating).

    Each extraction call is the full public path for one batch (open store, tokenize, plan, lock, forward, write
    and fsync), so per-call overheads count against it. Pairs measured seconds apart see the same machine load;
    the median of per-pair ratios is robust to the load swings of a shared machine.
    """
    from activations.extract import extract
    from activations.models import load_model
    from activations.selection import Selection

    model = load_model(MODEL)
    hf = plain_hf_model(model)
    prompts = make_prompts(model, args.n_texts, length_scale=args.length_scale)
    groups = batch_groups(model, prompts, args.batch_size)
    batches = [padded(model, g) for g in groups]
    n_tokens = sum(int(mask.sum()) for _, mask in batches)
    selection = Selection(hooks="resid_post", layers="all", positions="last")
    kwargs = dict(batch_size=args.batch_size, storage_dtype=args.storage_dtype, attention=args.attention,
                  progress=False)
    # Warm-up (allocator, oneDNN kernels) on the smallest batch of each path.
    hf_forward(hf, batches[-1], backbone=False)
    hf_forward(hf, batches[-1], backbone=True)
    extract(model, groups[-1], selection, Path(tempfile.mkdtemp(dir=root)), **kwargs)
    pairs = []
    for r in range(args.rounds):
        store_dir = Path(tempfile.mkdtemp(dir=root))
        for i, (group, batch) in enumerate(zip(groups, batches)):
            steps = {"hf": lambda: hf_forward(hf, batch, backbone=False),
                     "backbone": lambda: hf_forward(hf, batch, backbone=True),
                     "extract": lambda: extract(model, group, selection, store_dir, **kwargs)}
            order = list(steps) if (r + i) % 2 == 0 else list(reversed(steps))
            pair = {what: timed(steps[what]) for what in order}
            pairs.append(pair)
            print(f"round {r + 1} batch {i + 1}: hf {pair['hf']['wall']:.2f}s  backbone {pair['backbone']['wall']:.2f}s"
                  f"  extract {pair['extract']['wall']:.2f}s  ratio {pair['hf']['wall'] / pair['extract']['wall']:.2f}",
                  flush=True)
        stats = extract(model, prompts, selection, store_dir, **kwargs)
        assert stats.n_forward == 0 and stats.n_cells_computed == 0, stats  # every batch was stored exactly once

    def summary(base: str, clock: str) -> dict[str, float]:
        ratios = sorted(p[base][clock] / p["extract"][clock] for p in pairs)
        q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        total = sum(p[base][clock] for p in pairs) / sum(p["extract"][clock] for p in pairs)
        return {"median": statistics.median(ratios), "q1": q1, "q3": q3, "min": ratios[0], "max": ratios[-1],
                "of_totals": total}

    reuse_dir = Path(tempfile.mkdtemp(dir=root))
    extract(model, prompts, selection, reuse_dir, **kwargs)
    again_time = timed(lambda: extract(model, prompts, selection, reuse_dir, **kwargs))
    again = extract(model, prompts, selection, reuse_dir, **kwargs)
    disk = disk_usage(model, prompts, reuse_dir, args)
    return {"n_texts": len(prompts), "n_tokens": n_tokens, "n_batches": len(batches), "n_pairs": len(pairs),
            "pairs": pairs, "vs_hf": summary("hf", "wall"), "vs_backbone": summary("backbone", "wall"),
            "vs_hf_cpu": summary("hf", "cpu"), "vs_backbone_cpu": summary("backbone", "cpu"),
            "extract_tokens_per_s": n_tokens * args.rounds / sum(p["extract"]["wall"] for p in pairs),
            "hf_tokens_per_s": n_tokens * args.rounds / sum(p["hf"]["wall"] for p in pairs),
            "reuse_forward_passes": again.n_forward, "reuse_seconds": again_time["wall"], **disk}


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
        # Hand freed heap (GGUF dequantisation, warm-up) back to the OS so that every process starts from the same
        # baseline and the peak includes extraction's whole working set.
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
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
    """Peak RSS of N and of ``memory_factor`` x N texts, alternating, ``memory_repeats`` processes each."""
    sizes = (args.n_texts, args.n_texts * args.memory_factor)
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(args.memory_repeats):
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(n), "--batch-size",
                                  str(args.batch_size), "--storage-dtype", args.storage_dtype],
                                 capture_output=True, text=True, check=True)
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs[n].append(run)
            print(f"memory: {n} texts: RSS before extraction {run['rss_before_mib']:.0f} MiB, peak during "
                  f"extraction {run['peak_mib']:.0f} MiB ({run['seconds']:.0f}s)", flush=True)
    small, large = (statistics.median(r["peak_mib"] for r in runs[n]) for n in sizes)
    return {"memory_runs": runs, "peak_small_mib": small, "peak_large_mib": large,
            "peak_growth": large / small - 1, "peak_growth_mib": large - small}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-texts", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage-dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--length-scale", type=int, default=0,
                        help="add N x ~125 tokens of background to every prompt (long-prompt throughput)")
    parser.add_argument("--attention", default="sdpa", choices=["sdpa", "bridge"], help="extraction's attention path")
    parser.add_argument("--memory-factor", type=int, default=10)
    parser.add_argument("--memory-repeats", type=int, default=3, help="processes per size (peaks are medians)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.batch_size, args.storage_dtype)
        return 0
    print(f"{MODEL}, resid_post x 30 layers, last token; batch {args.batch_size}, storage {args.storage_dtype}, "
          f"attention {args.attention}, length scale {args.length_scale}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", flush=True)
    result: dict = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_throughput:
            result |= throughput(args, Path(tmp))
            hf, bb = result["vs_hf"], result["vs_backbone"]
            print(f"\nthroughput ratio extract / plain HF forward (wall clock), median of {result['n_pairs']} "
                  f"per-batch pairs: {hf['median']:.2f} (IQR {hf['q1']:.2f}-{hf['q3']:.2f}; ratio of totals "
                  f"{hf['of_totals']:.2f}; CPU time {result['vs_hf_cpu']['median']:.2f}); target >= 0.85")
            print(f"  vs HF backbone only (no LM head, no KV cache): median {bb['median']:.2f} "
                  f"(IQR {bb['q1']:.2f}-{bb['q3']:.2f}; CPU time {result['vs_backbone_cpu']['median']:.2f})")
            print(f"  {result['n_texts']} texts, {result['n_tokens']} tokens, {result['n_batches']} batches x "
                  f"{args.rounds} rounds; extract {result['extract_tokens_per_s']:.0f} tok/s, HF "
                  f"{result['hf_tokens_per_s']:.0f} tok/s; second run over the same texts: "
                  f"{result['reuse_forward_passes']} forward passes, {result['reuse_seconds']:.2f}s")
            print(f"disk ({result['storage_dtype']}): last token {result['last_bytes_per_vector_layer']:.0f} B per "
                  f"vector per layer (raw {result['raw_bytes_per_vector']} B) + index "
                  f"{result['last_index_bytes_per_vector_layer']:.0f} B; all tokens "
                  f"{result['all_bytes_per_token_layer']:.0f} B per token per layer")
    if not args.skip_memory:
        result |= memory(args)
        print(f"peak memory {result['peak_small_mib']:.0f} MiB for {args.n_texts} texts, "
              f"{result['peak_large_mib']:.0f} MiB for {args.n_texts * args.memory_factor} (medians of "
              f"{args.memory_repeats} processes): growth {100 * result['peak_growth']:+.1f}% "
              f"({result['peak_growth_mib']:+.0f} MiB); target < 10%")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
