"""The memory and disk plan of a model's steps, from its registry shape alone (no weights loaded, no tokenizer needed).

:func:`plan` answers, for one model, dtype, batch size and set of devices: how much the weights take, how much each
step adds on top (extraction of the probe activations, generation of trials with its KV cache, the attribution-
patching forward + backward), how large the probe job's activation store grows on disk, whether each step fits,
which device map it would use, and the largest batch that fits. Every :class:`Figure` carries the formula with the
numbers put in, so a reader can redo the arithmetic; ``bench/bench_plan.py`` measures the same figures on CPU.

Model of memory (bytes; ``b`` = bytes per element of the dtype, ``B`` batch, ``T`` prompt tokens, ``N`` new tokens):

- weights: parameters x ``b`` (:func:`activations.shapes.count_parameters`); a quantised checkpoint (GPT-OSS MXFP4)
  is dequantised to the dtype by the loader, so it is planned at ``b`` too, and the plan says so.
- extraction (no gradient, fused attention, stops after the last hooked layer): the largest layer's working set,
  ``B T b (W_d d + W_q (q + 2 kv) + W_m m)`` with ``m`` the MLP width (active experts x expert width for a mixture),
  plus the selected rows kept for the store.
- generation: the KV cache ``2 L kv_heads head_dim B (T + N) b`` plus the prefill, which runs the whole prompt once
  (a working set as in extraction) and computes the logits of every prompt position in float32 (``B T V 4``).
- attribution patching: one forward and one backward through the prompt with the parameters frozen (no parameter
  gradients): autograd keeps each layer's inputs for the backward, ``L B T b (S_d d + S_q (q + 2 kv) + S_m m)``,
  plus eager attention's probabilities ``L B H T^2 b``, plus the logits and their gradient ``2 B T V b``.

The constants ``W_*`` and ``S_*`` count the tensors of one position a layer holds; they are the ones
``bench/bench_plan.py`` measured against (SmolLM2, Gemma 3 270M, a 1B-shaped Llama on CPU; see docs/models-and-scale.md).
Device memory is the capacity less :data:`GPU_RESERVE` (CUDA context, allocator fragmentation); a KV cache or
activations are placed where their layers are, so a split model needs each GPU to hold its share of both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from common.errors import ConfigError
from activations.registry import ModelSpec
from activations.shapes import ModelShape, ParameterCount, count_parameters

__all__ = ["Device", "Figure", "StepPlan", "Plan", "ProbeJob", "parse_gpus", "plan", "BYTES", "GPU_RESERVE",
           "DEFAULT_PROMPT_TOKENS"]

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
GIB = 1024**3
#: Fraction of a GPU's memory the plan leaves free (CUDA context, cuBLAS workspace, allocator fragmentation).
GPU_RESERVE = 0.10
#: Tokens of the longest rendered scenario prompt when no tokenizer is at hand: SmolLM2's chat rendering of the
#: baseline condition is 297 tokens; other tokenizers and templates vary by about 15% (Llama 3's header adds ~25).
DEFAULT_PROMPT_TOKENS = 320

# Tensors per position a layer holds (see the module docstring); measured by bench/bench_plan.py.
W_D, W_Q, W_M = 4, 1, 3  # extraction / prefill working set: residual, norm, attention out, MLP in/out; q, k, v; gate, up, act
S_D, S_Q, S_M = 6, 2, 4  # attribution: inputs autograd keeps for the backward of each layer


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
            f"device map: {self.device_map}",
        ]
        for step in self.steps:
            peak = ", ".join(f"{d} {fmt_bytes(b)}" for d, b in step.peak_per_device.items())
            verdict = "fits" if step.fits else "DOES NOT FIT"
            lines.append(f"step {step.name}: +{step.extra}; peak {peak}: {verdict}; "
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
    return Figure(B * T * b * n, f"B {B} x T {T} x {b} B x {how}")


def _generate_extra(shape: ModelShape, b: int, B: int, T: int, N: int) -> Figure:
    kv = 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * B * (T + N) * b
    work = _extract_extra(shape, b, B, T)
    logits = B * T * shape.vocab_size * 4
    return Figure(kv + work.bytes + logits,
                  f"KV cache 2 x {shape.n_layers} layers x {shape.n_kv_heads} x {shape.head_dim} x B {B} x "
                  f"(T {T} + N {N}) x {b} B = {fmt_bytes(kv)}; prefill working set {fmt_bytes(work.bytes)}; "
                  f"prefill logits B x T x V {shape.vocab_size} x 4 B = {fmt_bytes(logits)}")


def _attribution_extra(shape: ModelShape, b: int, B: int, T: int) -> Figure:
    n, how = _per_position(shape, S_D, S_Q, S_M)
    saved = shape.n_layers * B * T * b * n
    attn = shape.n_layers * B * shape.n_heads * T * T * b
    logits = 2 * B * T * shape.vocab_size * b
    return Figure(saved + attn + logits,
                  f"saved for backward {shape.n_layers} layers x B {B} x T {T} x {b} B x {how} = {fmt_bytes(saved)}; "
                  f"attention probabilities {shape.n_layers} x B x {shape.n_heads} heads x T^2 x {b} B = "
                  f"{fmt_bytes(attn)}; logits + gradient 2 x B x T x V {shape.vocab_size} x {b} B = "
                  f"{fmt_bytes(logits)}; parameters frozen (no parameter gradients)")


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


def _place(shape: ModelShape, params: ParameterCount, b: int, devices: Sequence[Device],
           extra_per_layer: int) -> tuple[dict[str, int], str, dict[str, int]]:
    """Assign layers to devices in order (as accelerate's sequential map does), each device holding its layers'
    weights and ``extra_per_layer`` bytes per layer; the embedding table sits on the first device and the output
    projection on the last. Layers no device can hold go to the CPU (offload). Returns the bytes per device, the
    map as text, and the layers per device."""
    layer_bytes = params.per_layer * b + extra_per_layer
    first, last = params.embedding * b, (params.unembedding + shape.d_model) * b + shape.vision_parameters * b
    used = {d.name: 0 for d in devices}
    layers = {d.name: 0 for d in devices}
    used[devices[0].name] += first
    used[devices[-1].name] += last
    d = 0
    offloaded = 0
    for _ in range(shape.n_layers):
        while d < len(devices) and used[devices[d].name] + layer_bytes > devices[d].usable:
            d += 1
        if d == len(devices):
            offloaded += 1
            continue
        used[devices[d].name] += layer_bytes
        layers[devices[d].name] += 1
    parts, start = [], 0
    for dev in devices:
        n = layers[dev.name]
        extras = [x for x, on in (("embeddings", dev is devices[0]), ("output head", dev is devices[-1])) if on]
        span = f"layers {start}-{start + n - 1}" if n else "no layers"
        parts.append(f"{dev.name}: {span}" + (f" + {' + '.join(extras)}" if extras else ""))
        start += n
    if offloaded:
        parts.append(f"cpu/disk offload: layers {start}-{shape.n_layers - 1} ({offloaded} layers; accelerate "
                     "--device-map with offload, each forward streams them through the GPU: slow)")
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

    def placed(name: str, B: int) -> tuple[dict[str, int], str, dict[str, int]]:
        extra = step_extra(name, B).bytes
        # KV cache and saved activations scale with the layers on a device; a working set is one layer's at a time.
        per_layer = extra // shape.n_layers if name != "extract" else 0
        used, text, layers = _place(shape, params, b, devices, per_layer)
        if name == "extract":
            for dev in devices:
                if layers[dev.name]:
                    used[dev.name] += extra
        return used, text, layers

    def fits(name: str, B: int) -> bool:
        used, _, layers = placed(name, B)
        return "offload" not in layers and all(used[d.name] <= d.usable for d in devices)

    steps = []
    for name in ("extract", "generate", "attribution"):
        used, _, _ = placed(name, batch_size)
        ok = fits(name, batch_size)
        steps.append(StepPlan(name, step_extra(name, batch_size), used, ok, _largest_batch(lambda B: fits(name, B))))
    _, device_map, layers = _place(shape, params, b, devices, 0)
    if devices[0].name == "cpu":
        device_map = "cpu: the whole model (no GPU given: pass --gpus, e.g. --gpus 1x80GB)"
    return Plan(model=spec.name, dtype=dtype, batch_size=batch_size, prompt_tokens=prompt_tokens,
                prompt_tokens_how=prompt_tokens_how, new_tokens=new_tokens, devices=tuple(devices),
                parameters=params, weights=weights, device_map=device_map, layers_per_device=layers,
                steps=tuple(steps), store=_store_size(shape, probe), notes=tuple(notes))


def _largest_batch(fits_at: Any, cap: int = 4096) -> int:
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
