"""The memory and disk plan of a model's steps, from its registry shape alone (no weights loaded, no tokenizer needed).

:func:`plan` answers, for one model, dtype, batch size and set of devices: how much the weights take, how much each
step adds on top (extraction of the probe activations, generation of trials with its KV cache, the attribution-
patching forward + backward), how large the probe job's activation store grows on disk, whether each step fits,
which device map it would use, and the largest batch that fits. Every :class:`Figure` carries the formula with the
numbers put in, so a reader can redo the arithmetic; ``bench/bench_plan.py`` measures the same figures on CPU.

Model of memory (bytes; ``b`` = bytes per element of the dtype, ``B`` batch, ``T`` prompt tokens, ``N`` new tokens,
``L`` layers, ``d`` width, ``q``/``kv`` query and key-value widths, ``m`` the MLP width: active + shared experts x
expert width for a mixture, ``H`` heads, ``V`` vocabulary):

- weights: parameters x ``b`` (:func:`activations.shapes.count_parameters`); a quantised checkpoint (GPT-OSS MXFP4)
  is dequantised to the dtype by the loader, so it is planned at ``b`` too, and the plan says so.
- extraction (no gradient, fused attention, stops after the last hooked layer): ``B T b (L d + W_d d + W_q (q + 2 kv)
  + W_m m)``: the largest layer's working set, plus ``L d`` per position that glibc's heap keeps in the runs that keep
  the most (fitted as "every layer's output kept"; with a fixed mmap threshold the live tensors are the working set
  alone: docs/models-and-scale.md, "Plan vs measured").
- generation: the KV cache ``2 L kv B (T + N) b``, plus the prefill, which runs the whole prompt once (as extraction)
  and computes the logits of the last position only (``logits_to_keep=1``, as HF's ``generate``: ``B V 4``).
- attribution patching: one forward and one backward through the prompt; TransformerLens drives it with
  ``torch.autograd.grad`` to the activations, so no parameter gradient is allocated, but autograd keeps each layer's
  inputs for the backward, ``L B T b (S_d d + S_q (q + 2 kv) + S_m m + 2 H T)`` (the last term: eager attention's
  scores and probabilities), plus the cached activations and their gradients at the ``L + 1`` residual hook points
  (``2 (L + 1) B T d b``), plus the logits and their gradient (``2 B T V b``).

The constants ``W_*`` and ``S_*`` count the tensors of one position a layer holds; they were fitted to
``bench/bench_plan.py``'s measurements of SmolLM2 and checked on Gemma 3 270M and a 1B-shaped Llama (CPU; table and
command in docs/models-and-scale.md).
- host memory beside the weights: the tokenizer, ``V`` x :data:`TOKENIZER_BYTES_PER_TOKEN` (a fast tokenizer's
  vocabulary, merges and lookup tables: measured 0.26 GiB for Gemma 3's 262,144 tokens). It lives in the process's RAM
  whatever the device, so a CPU plan counts it in the ``cpu`` device's peak; a GPU plan states it beside the map.

Device memory is the capacity less :data:`GPU_RESERVE` (CUDA context, allocator fragmentation); a KV cache or
activations are placed where their layers are, so a split model needs each GPU to hold its share of both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from common.errors import ConfigError
from activations.registry import ModelSpec
from activations.shapes import ModelShape, ParameterCount, count_parameters

__all__ = ["Device", "Figure", "StepPlan", "Plan", "ProbeJob", "parse_gpus", "plan", "BYTES", "GPU_RESERVE",
           "DEFAULT_PROMPT_TOKENS", "TOKENIZER_BYTES_PER_TOKEN"]

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
GIB = 1024**3
#: Fraction of a GPU's memory the plan leaves free (CUDA context, cuBLAS workspace, allocator fragmentation).
GPU_RESERVE = 0.10
#: Tokens of the longest rendered scenario prompt when no tokenizer is at hand: SmolLM2's chat rendering of the
#: baseline condition is 297 tokens; other tokenizers and templates vary by about 15% (Llama 3's header adds ~25).
DEFAULT_PROMPT_TOKENS = 320
#: Host memory a loaded fast tokenizer takes per vocabulary entry: Gemma 3's (262,144 tokens) added 0.26 GiB of
#: resident memory when loaded alone (bench/bench_plan.py's process, CPU), about 1 KiB per token.
TOKENIZER_BYTES_PER_TOKEN = 1024

# Tensors per position a layer holds (see the module docstring), fitted to bench/bench_plan.py's measurements.
W_D, W_Q, W_M = 4, 1, 3  # extraction / prefill working set: residual, norm, attention out, MLP in/out; q, k, v; gate, up, act
S_D, S_Q, S_M = 12, 3, 4  # attribution: what autograd keeps per layer (norm inputs and outputs, rotary q/k, repeated
#                           k/v, attention and MLP inputs and outputs, bridge hook outputs); gate, up, act, act x up


@dataclass(frozen=True)
class Figure:
    """A number of bytes and how it was computed."""

    bytes: int
    how: str

    def __str__(self) -> str:
        return f"{fmt_bytes(self.bytes)} = {self.how}"


@dataclass(frozen=True)
class Device:
    """One memory pool the model may be placed on: ``cuda:0`` ... or ``cpu``."""

    name: str
    capacity: int  # bytes

    @property
    def usable(self) -> int:
        return int(self.capacity * (1 - GPU_RESERVE)) if self.name.startswith("cuda") else self.capacity


@dataclass(frozen=True)
class ProbeJob:
    """What the probe job stores: ``n_texts`` rows (last position) at ``n_layers`` layers of one hook."""

    n_texts: int = 2000
    n_layers: int | None = None  # None: every layer
    storage_dtype: str = "float32"
    batch_size: int = 16  # texts per shard


@dataclass(frozen=True)
class StepPlan:
    """One step: memory on top of the weights (``extra``), the peak per device, whether it fits, the largest batch."""

    name: str
    extra: Figure
    peak_per_device: dict[str, int]
    fits: bool
    max_batch: int  # 0: not even one row fits
    min_gpus: int | None = None  # GPUs of the first GPU's size this step needs at this batch (None: CPU plan, or > 64)


@dataclass(frozen=True)
class Plan:
    """Everything :func:`plan` worked out for one model, dtype, batch and device set."""

    model: str
    dtype: str
    batch_size: int
    prompt_tokens: int
    prompt_tokens_how: str
    new_tokens: int
    devices: tuple[Device, ...]
    parameters: ParameterCount
    weights: Figure
    device_map: str
    layers_per_device: dict[str, int]
    steps: tuple[StepPlan, ...]
    store: Figure
    host: Figure  # process RAM beside the weights (the tokenizer); in the peak of a CPU plan
    notes: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return all(step.fits for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"fits": self.fits}

    def render(self) -> str:
        """The plan as text, one figure per line with its formula."""
        pools = ", ".join(f"{d.name} {fmt_bytes(d.capacity)} (usable {fmt_bytes(d.usable)})" for d in self.devices)
        p = self.parameters
        lines = [
            f"plan for {self.model} in {self.dtype}, batch {self.batch_size}, prompt {self.prompt_tokens} tokens "
            f"({self.prompt_tokens_how}), {self.new_tokens} new tokens",
            f"devices: {pools}",
            f"parameters: {p.total / 1e9:.2f}B total, {p.active / 1e9:.2f}B active per token ({p.how})",
            f"weights: {self.weights}",
            f"host memory beside the weights: {self.host}",
            f"device map: {self.device_map}",
        ]
        for step in self.steps:
            peak = ", ".join(f"{d} {fmt_bytes(b)}" for d, b in step.peak_per_device.items())
            verdict = "fits" if step.fits else "DOES NOT FIT"
            need = f"; needs {step.min_gpus} such GPUs at this batch" if step.min_gpus and not step.fits else ""
            lines.append(f"step {step.name}: +{step.extra}; peak {peak}: {verdict}{need}; "
                         f"largest batch that fits: {step.max_batch}")
        lines.append(f"activation store (probe job): {self.store}")
        lines.append("verdict: " + ("every step fits" if self.fits else "some steps do not fit (see above)"))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def fmt_bytes(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / 1024**2:.1f} MiB"


_GPUS = re.compile(r"^\s*(?:(\d+)\s*[x*]\s*)?(\d+(?:\.\d+)?)\s*(GB|GIB|G)\s*$", re.I)


def parse_gpus(text: str) -> tuple[Device, ...]:
    """``"2x80GB"`` -> two 80 GiB devices (GPU makers' "80GB" is 80 GiB); ``"80GB,24GB"`` mixes sizes."""
    devices: list[Device] = []
    for part in text.split(","):
        match = _GPUS.match(part)
        if not match or (match.group(1) is not None and int(match.group(1)) < 1) or float(match.group(2)) <= 0:
            raise ConfigError(f"cannot read --gpus {text!r}: write COUNTxSIZE, e.g. 2x80GB, or sizes separated by "
                              "commas, e.g. 80GB,24GB")
        for _ in range(int(match.group(1) or 1)):
            devices.append(Device(f"cuda:{len(devices)}", int(float(match.group(2)) * GIB)))
    return tuple(devices)


def _mlp_width(shape: ModelShape) -> tuple[int, str]:
    if shape.is_moe:
        width = (shape.n_experts_active + shape.n_shared_experts) * shape.d_expert
        return width, f"m = ({shape.n_experts_active} active + {shape.n_shared_experts} shared) x {shape.d_expert}"
    return shape.d_mlp, f"m = {shape.d_mlp}"


def _per_position(shape: ModelShape, c_d: int, c_q: int, c_m: int) -> tuple[int, str]:
    """Elements one position holds in one layer, ``c_d d + c_q (q + 2 kv) + c_m m``, and its formula."""
    q, kv = shape.n_heads * shape.head_dim, shape.n_kv_heads * shape.head_dim
    m, m_how = _mlp_width(shape)
    n = c_d * shape.d_model + c_q * (q + 2 * kv) + c_m * m
    return n, f"({c_d} x {shape.d_model} + {c_q} x ({q} + 2 x {kv}) + {c_m} x m; {m_how})"


def _extract_extra(shape: ModelShape, b: int, B: int, T: int) -> Figure:
    n, how = _per_position(shape, W_D, W_Q, W_M)
    kept = shape.n_layers * shape.d_model
    return Figure(B * T * b * (kept + n), f"B {B} x T {T} x {b} B x ({shape.n_layers} layers x {shape.d_model} "
                                          f"kept + working set {how})")


def _generate_extra(shape: ModelShape, b: int, B: int, T: int, N: int) -> Figure:
    kv = 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * B * (T + N) * b
    work = _extract_extra(shape, b, B, T)
    logits = B * shape.vocab_size * 4  # the prompt's forward unembeds its last position only (logits_to_keep=1)
    return Figure(kv + work.bytes + logits,
                  f"KV cache 2 x {shape.n_layers} layers x {shape.n_kv_heads} x {shape.head_dim} x B {B} x "
                  f"(T {T} + N {N}) x {b} B = {fmt_bytes(kv)}; prefill working set {fmt_bytes(work.bytes)}; "
                  f"last-position logits B x V {shape.vocab_size} x 4 B = {fmt_bytes(logits)}")


def _attribution_extra(shape: ModelShape, b: int, B: int, T: int) -> Figure:
    n, how = _per_position(shape, S_D, S_Q, S_M)
    saved = shape.n_layers * B * T * b * n
    attn = 2 * shape.n_layers * B * shape.n_heads * T * T * b
    cached = 2 * (shape.n_layers + 1) * B * T * shape.d_model * b
    logits = 2 * B * T * shape.vocab_size * b
    return Figure(saved + attn + cached + logits,
                  f"saved for backward {shape.n_layers} layers x B {B} x T {T} x {b} B x {how} = {fmt_bytes(saved)}; "
                  f"attention scores and probabilities 2 x {shape.n_layers} x B x {shape.n_heads} heads x T^2 x {b} B = "
                  f"{fmt_bytes(attn)}; cached activations + gradients 2 x {shape.n_layers + 1} points x B x T x "
                  f"{shape.d_model} x {b} B = {fmt_bytes(cached)}; logits + gradient 2 x B x T x V {shape.vocab_size} x {b} B = "
                  f"{fmt_bytes(logits)}; no parameter gradients (autograd.grad to the activations only)")


def _store_size(shape: ModelShape, job: ProbeJob) -> Figure:
    layers = job.n_layers or shape.n_layers
    b = BYTES[job.storage_dtype]
    data = job.n_texts * layers * shape.d_model * b
    n_shards = math.ceil(job.n_texts / job.batch_size)
    # Per shard: the safetensors header (~90 B per tensor name and offsets) and one index line listing every row key
    # (~80 B per row) and every column's tensor name and digest (~70 B per layer).
    overhead = n_shards * layers * (90 + 70) + job.n_texts * 80
    return Figure(data + overhead,
                  f"{job.n_texts} texts x {layers} layers x {shape.d_model} x {b} B ({job.storage_dtype}) = "
                  f"{fmt_bytes(data)}; + headers and index: {n_shards} shards x {layers} layers x 160 B + "
                  f"{job.n_texts} rows x 80 B = {fmt_bytes(overhead)}")


def _place(shape: ModelShape, params: ParameterCount, b: int, devices: Sequence[Device], extra_per_layer: int,
           reserve: int = 0, host: int = 0) -> tuple[dict[str, int], str, dict[str, int]]:
    """Spread the layers over ``devices`` in proportion to the layers each can hold, as accelerate's balanced
    ``auto`` map does: each device holds its layers' weights plus ``extra_per_layer`` bytes per layer (KV cache, saved
    activations) and keeps ``reserve`` bytes free (a step's working set); the embedding table sits on the first device
    and the output projection on the last; ``host`` bytes (the tokenizer) sit on a ``cpu`` device. Layers no device
    can hold are offloaded. Returns the bytes per device, the map as text, and the layers per device (key ``offload``
    for the rest)."""
    layer_bytes = params.per_layer * b + extra_per_layer
    first, last = params.embedding * b, (params.unembedding + shape.d_model + shape.vision_parameters) * b
    fixed = {d.name: (first if i == 0 else 0) + (last if i == len(devices) - 1 else 0) + (host if d.name == "cpu" else 0)
             for i, d in enumerate(devices)}
    room = [max(0, (d.usable - fixed[d.name] - reserve) // layer_bytes) for d in devices]
    n = shape.n_layers
    if sum(room) <= n:
        counts = list(room)
    else:  # proportional shares, rounded down, then the remainder to the devices with the most room left
        counts = [min(r, n * r // sum(room)) for r in room]
        for i in sorted(range(len(devices)), key=lambda i: room[i] - counts[i], reverse=True):
            if sum(counts) == n:
                break
            counts[i] += min(room[i] - counts[i], n - sum(counts))
    layers = {d.name: c for d, c in zip(devices, counts)}
    used = {d.name: fixed[d.name] + c * layer_bytes + (reserve if c else 0) for d, c in zip(devices, counts)}
    offloaded = n - sum(counts)
    parts, start = [], 0
    for i, dev in enumerate(devices):
        c = layers[dev.name]
        extras = [x for x, on in (("embeddings", i == 0), ("output head", i == len(devices) - 1)) if on]
        span = f"layers {start}-{start + c - 1}" if c else "no layers"
        parts.append(f"{dev.name}: {span}" + (f" + {' + '.join(extras)}" if extras else ""))
        start += c
    if offloaded:
        parts.append(f"cpu/disk offload: layers {start}-{n - 1} ({offloaded} layers; accelerate --device-map with "
                     "offload streams them through the GPU on every forward: slow)")
        layers["offload"] = offloaded
    return used, "; ".join(parts), layers


def plan(spec: ModelSpec, *, dtype: str = "bfloat16", devices: Sequence[Device], batch_size: int = 8,
         prompt_tokens: int = DEFAULT_PROMPT_TOKENS, prompt_tokens_how: str = "estimate", new_tokens: int = 512,
         probe: ProbeJob = ProbeJob()) -> Plan:
    """Plan ``spec``'s steps on ``devices`` (GPUs from :func:`parse_gpus`, or one ``cpu`` device)."""
    if dtype not in BYTES:
        raise ConfigError(f"unknown dtype '{dtype}'; choose one of {sorted(BYTES)}")
    if spec.shape is None or spec.architecture is None:
        raise ConfigError(f"'{spec.name}' has no shape in the registry, so it cannot be planned; add a shape: block "
                          "from its config.json to configs/models.yaml")
    if batch_size < 1 or prompt_tokens < 1 or new_tokens < 0:
        raise ConfigError("batch size and prompt tokens must be >= 1, new tokens >= 0")
    if not devices:
        raise ConfigError("plan needs at least one device")
    shape, b = spec.shape, BYTES[dtype]
    params = count_parameters(shape, spec.architecture)
    weights = Figure(params.total * b, f"{params.total:,} parameters x {b} B ({dtype})")
    host = Figure(shape.vocab_size * TOKENIZER_BYTES_PER_TOKEN,
                  f"tokenizer: V {shape.vocab_size:,} x {TOKENIZER_BYTES_PER_TOKEN} B per token (process RAM" +
                  ("; counted in the cpu peak)" if devices[0].name == "cpu" else "; not on the GPUs)"))
    notes = []
    if shape.quantization and "mxfp4" in shape.quantization.lower():
        notes.append(f"{spec.name} ships MXFP4 experts; the loader dequantises them to {dtype}, as planned here. "
                     "Kept in MXFP4 (transformers' Mxfp4 kernels on a Hopper-class GPU) the experts take ~4.25 bits "
                     "per parameter, about a quarter of this.")
    if prompt_tokens + new_tokens > shape.max_position:
        notes.append(f"prompt + new tokens ({prompt_tokens + new_tokens}) exceed the model's {shape.max_position} "
                     "positions")

    def step_extra(name: str, B: int) -> Figure:
        if name == "extract":
            return _extract_extra(shape, b, B, prompt_tokens)
        if name == "generate":
            return _generate_extra(shape, b, B, prompt_tokens, new_tokens)
        return _attribution_extra(shape, b, B, prompt_tokens)

    def placed(name: str, B: int, pool: Sequence[Device]) -> tuple[dict[str, int], str, dict[str, int]]:
        extra = step_extra(name, B).bytes
        # KV cache and saved activations scale with the layers on a device; a working set is one layer's at a time,
        # kept free on every device.
        if name == "extract":
            return _place(shape, params, b, pool, 0, reserve=extra, host=host.bytes)
        return _place(shape, params, b, pool, extra // shape.n_layers, host=host.bytes)

    def fits(name: str, B: int, pool: Sequence[Device] = devices) -> bool:
        used, _, layers = placed(name, B, pool)
        return "offload" not in layers and all(used[d.name] <= d.usable for d in pool)

    def min_gpus(name: str) -> int | None:
        if devices[0].name == "cpu":
            return None
        size = devices[0].capacity
        return next((k for k in range(1, 65)
                     if fits(name, batch_size, [Device(f"cuda:{i}", size) for i in range(k)])), None)

    steps = []
    for name in ("extract", "generate", "attribution"):
        used, _, _ = placed(name, batch_size, devices)
        steps.append(StepPlan(name, step_extra(name, batch_size), used, fits(name, batch_size),
                              _largest_batch(lambda B: fits(name, B)), min_gpus(name)))
    _, device_map, layers = _place(shape, params, b, devices, 0, host=host.bytes)
    if devices[0].name == "cpu":
        device_map = "cpu: the whole model (no GPU given: pass --gpus, e.g. --gpus 1x80GB)"
    return Plan(model=spec.name, dtype=dtype, batch_size=batch_size, prompt_tokens=prompt_tokens,
                prompt_tokens_how=prompt_tokens_how, new_tokens=new_tokens, devices=tuple(devices),
                parameters=params, weights=weights, device_map=device_map, layers_per_device=layers,
                steps=tuple(steps), store=_store_size(shape, probe), host=host, notes=tuple(notes))


def _largest_batch(fits_at: Callable[[int], bool], cap: int = 4096) -> int:
    """The largest batch in [0, cap] for which ``fits_at`` holds (memory grows with the batch, so bisect)."""
    if not fits_at(1):
        return 0
    lo, hi = 1, 2
    while hi <= cap and fits_at(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, cap + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits_at(mid) else (lo, mid)
    return lo
