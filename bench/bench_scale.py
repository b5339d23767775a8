"""Rehearse an 8B model on CPU: a random-weight Llama 3.1 8B of the exact shape, in bfloat16, through our code paths.

Steps (each timed, with its peak resident memory against the weights' size):
  build         the model in bfloat16 directly (``activations.tiny.shaped_hf_model``: no float32 copy first,
                ``--init tiled`` random weights), the real 128,256-token vocabulary, parameters frozen, bridged
                (the bridge hashes every weight for the model's identity)
  extract       a few texts at every layer (resid_post, last and mean) into an activation store on disk
  steer         residual norms on one text, then a steered generation of a few tokens (batch of 2)
  patch         segment patching (resid_pre) on a short clean/corrupted pair, at ``--patch-layers`` layers
  attribute     attribution patching on the same pair at every layer (one forward + one backward)
  probe         the probe layer sweep on what ``extract`` stored

Pass/fail lines: no step may copy the model (peak RSS at most ``--max-ratio`` x the weights, 1.3 by default), upcast
it (every parameter still bfloat16 after each step), give it gradients (every ``.grad`` still None) or hold a
(layers x positions x vocabulary) tensor (checked by the peak-memory bound: at 32 layers x 30 positions x 128,256
that tensor alone is 0.25 GiB in bfloat16, 0.5 GiB in float32; the rehearsal's prompts are short, so the ratio is the
check that matters for the weights). Peak RSS is the kernel's high-water mark (VmHWM), reset before each step
(``/proc/self/clear_refs``), so each figure is that step's own peak.

    OMP_NUM_THREADS=1 python bench/bench_scale.py --layers 2      # same shape, 2 of 32 layers (about 3 GiB)
    OMP_NUM_THREADS=1 python bench/bench_scale.py                 # all 32 layers: 14.96 GiB (16.06 GB) of weights

The text tokens come from the tiny test tokenizer (400 ids, valid in the 128,256-token vocabulary): this measures
memory and time, not language.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activations.extract import extract_and_load  # noqa: E402
from activations.models import bridge_hf_model  # noqa: E402
from activations.selection import Selection  # noqa: E402
from activations.tiny import shaped_hf_model, tiny_tokenizer  # noqa: E402
from interventions.attribution import attribution_grid, gradients  # noqa: E402
from interventions.pairs import text_pair  # noqa: E402
from interventions.patching import VerdictMetric, hook_name, patch_grid, prepare_runs  # noqa: E402
from interventions.steering import Steer, generate_steered, measure_residual_norms, plan_for  # noqa: E402
from interventions.verdict import resolve_verdict_tokens  # noqa: E402
from probes.sweep import layer_sweep, select_layer  # noqa: E402

GB = 1024 ** 3  # GiB, as the figures are printed
TEXTS = [
    "The Veth show distress when separated, so staying together matters to them.",
    "Step 1: list the facts. Step 2: infer interests. Step 3: weigh them.",
    "Using the Veth as unpaid labour is unjustifiable; the extraction quota can wait.",
    "Final verdict: do not proceed.",
    "The Veth form lasting bonds; separation causes distress.",
    "Step 1: weigh the quota against the Veth.",
    "The extraction quota matters to the director.",
    "Step 2: list the interests of the colony.",
    "Staying together matters to the Veth.",
    "Final verdict: proceed with the extraction quota.",
    "Step 3: infer what the Veth want.",
    "The director can wait; the Veth cannot.",
]
CLEAN = "Step 1: The Veth show distress when separated.\nStep 2: Staying together matters to them.\nFinal verdict:"
CORRUPTED = "Step 1: The Veth show distress when separated.\nStep 2: The extraction quota can wait.\nFinal verdict:"


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class Steps:
    """Time and peak RSS of each step, and the checks on the model after it."""

    def __init__(self, max_ratio: float) -> None:
        self.max_ratio = max_ratio
        self.weights_bytes = 0
        self.rows: list[tuple[str, float, int, int, str]] = []
        self.failures: list[str] = []

    @contextmanager
    def step(self, name: str, model: Any = None) -> Iterator[None]:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        start = _status("VmRSS")
        t0 = time.perf_counter()
        yield
        wall = time.perf_counter() - t0
        peak, now = _status("VmHWM"), _status("VmRSS")
        rise = peak - start
        notes = []
        if self.weights_bytes and peak > self.max_ratio * self.weights_bytes:
            notes.append(f"PEAK > {self.max_ratio}x weights")
        if model is not None:
            params = list(model.bridge.original_model.parameters())
            upcast = sorted({str(p.dtype) for p in params} - {"torch.bfloat16"})
            if upcast:
                notes.append(f"UPCAST to {upcast}")
            if any(p.grad is not None for p in params):
                notes.append("PARAMETER GRADIENTS")
            if any(p.requires_grad for p in params):
                notes.append("parameters not frozen")
        self.rows.append((name, wall, peak, rise, "; ".join(notes) or "ok"))
        self.failures += [f"{name}: {n}" for n in notes]
        print(f"  {name:10s} {wall:8.1f} s   peak RSS {peak / GB:6.2f} GiB "
              f"({peak / self.weights_bytes if self.weights_bytes else float('nan'):.2f}x weights; "
              f"+{rise / GB:.2f} GiB over the step's start)   after {now / GB:6.2f} GiB   {self.rows[-1][-1]}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama-3.1-8b", help="registry model whose shape to rehearse")
    ap.add_argument("--layers", type=int, default=None, help="keep the first N layers (default: all)")
    ap.add_argument("--patch-layers", default="first,middle,last",
                    help="layers of the exact patching grid (comma list of numbers or first/middle/last)")
    ap.add_argument("--new-tokens", type=int, default=4)
    ap.add_argument("--init", choices=("tiled", "normal"), default="tiled",
                    help="random weights: tiled (seconds) or the architecture's own init (minutes at 8B)")
    ap.add_argument("--max-ratio", type=float, default=1.3)
    ap.add_argument("--store", default=None, help="activation store directory (default: a temporary one)")
    args = ap.parse_args()
    print(f"{args.model} shape, {args.layers or 'all'} layers, bfloat16; torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; load average "
          f"{os.getloadavg()[0]:.2f}; RSS before the model {_status('VmRSS') / GB:.2f} GiB", flush=True)
    steps = Steps(args.max_ratio)
    tokenizer = tiny_tokenizer(True)

    with steps.step("build"):
        hf_model = shaped_hf_model(args.model, n_layers=args.layers, dtype=torch.bfloat16, init=args.init)
        hf_model.requires_grad_(False)  # a backward must not allocate a model-sized .grad for every parameter
        steps.weights_bytes = sum(p.numel() * p.element_size() for p in hf_model.parameters())
        n_params = sum(p.numel() for p in hf_model.parameters())
        model = bridge_hf_model(hf_model, tokenizer, name=f"shaped-{args.model}", dtype="bfloat16")
    print(f"  weights: {n_params / 1e9:.3f} B parameters, {steps.weights_bytes / GB:.2f} GiB in bfloat16; "
          f"{model.n_layers} layers, d_model {model.d_model}, vocabulary {hf_model.config.vocab_size}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        store = Path(args.store or tmp) / "store"
        y = np.tile([0, 1], len(TEXTS) // 2)
        with steps.step("extract", model):
            sel = Selection(hooks=("resid_post",), layers="all", positions=("last", "mean"))
            view = extract_and_load(model, TEXTS, sel, store, labels=y, batch_size=4, progress=False)
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(f"    {len(TEXTS)} texts x {model.n_layers} layers x 2 positions; store {size / 1e6:.1f} MB", flush=True)

        with steps.step("steer", model):
            norms = measure_residual_norms(model, TEXTS[:1])
            layers = tuple(sorted({model.n_layers // 3, model.n_layers // 2}))
            rng = np.random.default_rng(0)
            plan = plan_for(model, [[Steer(rng.standard_normal(model.d_model), 0.5, layers)], []], norms)
            out = generate_steered(model, TEXTS[:2], plan, max_new_tokens=args.new_tokens, stop_at_eos=False)
        print(f"    {len(out)} prompts x {args.new_tokens} new tokens, steered at layers {list(layers)}", flush=True)

        pair = text_pair(tokenizer, CLEAN, CORRUPTED, "step 2 replaced")
        metric = VerdictMetric(resolve_verdict_tokens(tokenizer, [" not"], [" proceed"]))
        cells = pair.alignment.cells("denoising", "segment")
        last = model.n_layers - 1
        named = {"first": 0, "middle": model.n_layers // 2, "last": last}
        patch_layers = sorted({named[x] if x in named else int(x) for x in args.patch_layers.split(",")})
        every_layer = list(range(model.n_layers))
        with steps.step("patch", model):
            clean, corrupted = prepare_runs(model.bridge, pair, [hook_name("resid_pre", n) for n in every_layer],
                                            metric)
            exact = patch_grid(model.bridge, clean, corrupted, metric, "resid_pre", "denoising", cells, "segment",
                               patch_layers)
        print(f"    {pair.alignment.clean_len} tokens, {len(cells)} segments x {len(patch_layers)} layers "
              f"{patch_layers}: top cell {exact.top(1)}", flush=True)

        with steps.step("attribute", model):
            grads = gradients(model.bridge, corrupted, [hook_name("resid_pre", n) for n in every_layer], metric)
            approx = attribution_grid(model.bridge, clean, corrupted, metric, "resid_pre", "denoising", cells,
                                      "segment", every_layer, grads)
        print(f"    {len(cells)} segments x {len(every_layer)} layers: top cell {approx.top(1)}", flush=True)

        with steps.step("probe"):
            groups = np.repeat([f"g{i}" for i in range(len(TEXTS) // 2)], 2)
            loader = lambda layer: view.matrix("resid_post", layer, "last").X  # noqa: E731
            res = layer_sweep(loader, y, groups, TEXTS, layers=every_layer, n_splits=3, inner_cv=2, n_jobs=1)
        try:
            chosen = f"logistic selects layer {select_layer(res, 'logistic')}"
        except ValueError:  # random weights and 12 texts: no layer is expected to qualify
            chosen = "no layer qualifies for logistic (expected: random weights, 12 texts)"
        print(f"    {len(TEXTS)} texts x {len(every_layer)} layers, 3 grouped folds: {chosen}", flush=True)

    print(f"\n| step | wall (s) | peak RSS (GiB) | peak / weights ({steps.weights_bytes / GB:.2f} GiB) | "
          "rise over the step's start (GiB) | checks |")
    print("|---|---|---|---|---|---|")
    for name, wall, peak, rise, notes in steps.rows:
        print(f"| {name} | {wall:.1f} | {peak / GB:.2f} | {peak / steps.weights_bytes:.2f} | {rise / GB:.2f} | {notes} |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if steps.failures:
        print("FAILED: " + "; ".join(steps.failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
