"""Each registry model's architecture as its publisher's ``config.json`` states it, and what follows from it.

The registry (``configs/models.yaml``) records a ``shape:`` block per model, with the file it was read from; this
module validates it (:class:`ModelShape`), counts the parameters from it without building anything
(:func:`count_parameters`), and turns it into a transformers config of the same shape, optionally with fewer layers
(:func:`hf_config`), so :mod:`activations.tiny` can build a random-weight model of any registry model.

**Parameter-count convention** (what :class:`ParameterCount` reports, and what ``tests/test_shapes.py`` checks against
the published sizes):

- ``total``: every parameter of the checkpoint's language model: embedding table, every layer (attention, norms,
  router, all experts, shared expert), final norm and the output projection, counted once when tied to the embedding
  table; plus ``vision_parameters`` for a multimodal checkpoint (Llama 4 Scout's vision encoder and projector).
- ``active``: the parameters one text token goes through: every non-expert parameter (attention, norms, router,
  shared expert), ``n_experts_active`` of the routed experts, and the output projection; not the input embedding
  table (a row lookup, not a matrix product) and not the vision encoder. OpenAI's 5.1B for GPT-OSS 120B is this
  convention (its model card counts the unembedding, not the embedding); Meta's 17B for Llama 4 Scout also counts the
  embedding table, available as ``active + embedding``.

The count is arithmetic over the shape; the test checks it equals the parameters transformers creates on the meta
device for every architecture here, so the arithmetic cannot drift from the real modules.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

from common.errors import ConfigError

__all__ = ["ModelShape", "ParameterCount", "parse_shape", "count_parameters", "hf_config", "ARCHITECTURES"]

#: The registry's ``architecture`` values this module can count and build.
ARCHITECTURES = ("llama", "qwen3", "gemma3_text", "llama4", "gpt_oss")


@dataclass(frozen=True)
class ModelShape:
    """One model's architecture, field by field as in its ``config.json`` (names in brackets).

    ``d_mlp`` is the dense MLP width (``intermediate_size``); for a mixture of experts ``d_expert`` is one expert's
    width (Llama 4: ``intermediate_size``, its dense ``intermediate_size_mlp`` unused when every layer is MoE;
    GPT-OSS: ``intermediate_size``). ``quantization`` names a packed format the checkpoint ships (GPT-OSS: MXFP4 on the
    expert weights only); ``dtype`` is the checkpoint's ``torch_dtype`` for the rest.
    """

    n_layers: int  # num_hidden_layers
    d_model: int  # hidden_size
    n_heads: int  # num_attention_heads
    n_kv_heads: int  # num_key_value_heads
    head_dim: int  # head_dim (hidden_size / num_attention_heads where the file omits it)
    d_mlp: int  # intermediate_size of a dense MLP
    vocab_size: int
    tied_embeddings: bool  # tie_word_embeddings
    max_position: int  # max_position_embeddings
    dtype: str  # torch_dtype
    source: str  # the hub repo and file the numbers were read from
    n_experts: int = 0  # num_local_experts (0: dense)
    n_experts_active: int = 0  # num_experts_per_tok
    n_shared_experts: int = 0  # Llama 4: one shared expert per MoE layer
    d_expert: int = 0
    sliding_window: int | None = None
    quantization: str | None = None
    vision_parameters: int = 0  # a multimodal checkpoint's vision encoder + projector (counted on the meta device)

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0


_INT_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_mlp", "vocab_size", "max_position")
_OPTIONAL_INT = ("n_experts", "n_experts_active", "n_shared_experts", "d_expert", "vision_parameters")
_DTYPES = ("float32", "float16", "bfloat16")


def parse_shape(raw: object, where: str) -> ModelShape:
    """Validate a registry ``shape:`` block; ``where`` names the file and entry in the error."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: shape must be a mapping of config.json fields, got {type(raw).__name__}")
    known = {f.name for f in fields(ModelShape)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: shape has unknown field(s) {unknown}; valid fields: {sorted(known)}")
    missing = [k for k in (*_INT_FIELDS, "tied_embeddings", "dtype", "source") if k not in raw]
    if missing:
        raise ConfigError(f"{where}: shape is missing {missing}")
    for key in _INT_FIELDS:
        if not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 1:
            raise ConfigError(f"{where}: shape.{key} must be a positive integer, got {raw[key]!r}")
    for key in _OPTIONAL_INT:
        value = raw.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}: shape.{key} must be a non-negative integer, got {value!r}")
    if not isinstance(raw["tied_embeddings"], bool):
        raise ConfigError(f"{where}: shape.tied_embeddings must be true or false")
    if raw["dtype"] not in _DTYPES:
        raise ConfigError(f"{where}: shape.dtype {raw['dtype']!r} is not one of {_DTYPES}")
    if raw["n_heads"] % raw["n_kv_heads"]:
        raise ConfigError(f"{where}: shape.n_heads ({raw['n_heads']}) must be a multiple of n_kv_heads "
                          f"({raw['n_kv_heads']})")
    experts = raw.get("n_experts", 0)
    if experts and not (0 < raw.get("n_experts_active", 0) <= experts and raw.get("d_expert", 0) > 0):
        raise ConfigError(f"{where}: a mixture of experts needs 0 < n_experts_active <= n_experts and d_expert > 0")
    if not experts and (raw.get("n_experts_active") or raw.get("d_expert") or raw.get("n_shared_experts")):
        raise ConfigError(f"{where}: n_experts_active/d_expert/n_shared_experts need n_experts > 0")
    return ModelShape(**raw)


class ShapedSpec(Protocol):
    """What :func:`hf_config` reads of a registry entry (``activations.registry.ModelSpec``, which imports this
    module, so the type is structural rather than imported)."""

    name: str
    architecture: str | None
    shape: ModelShape | None


@dataclass(frozen=True)
class ParameterCount:
    """Parameters by the convention in this module's docstring; ``how`` is the arithmetic, term by term."""

    total: int
    active: int
    embedding: int  # the input embedding table
    unembedding: int  # the output projection (0 when tied: it is the embedding table)
    per_layer: int
    how: str


def count_parameters(shape: ModelShape, architecture: str) -> ParameterCount:
    """Count ``shape``'s parameters as transformers builds ``architecture`` (see the module docstring's convention)."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"cannot count architecture '{architecture}'; known: {', '.join(ARCHITECTURES)}")
    d, h = shape.d_model, shape.head_dim
    q_out, kv_out = shape.n_heads * h, shape.n_kv_heads * h
    attn = d * q_out + 2 * d * kv_out + q_out * d  # q, k, v, o
    norms = 2 * d  # input and post-attention RMSNorm
    if architecture == "gpt_oss":
        attn += q_out + 2 * kv_out + d + shape.n_heads  # q/k/v/o biases and the per-head attention sinks
    if architecture in ("qwen3", "gemma3_text"):
        attn += 2 * h  # q_norm and k_norm over one head
    if architecture == "gemma3_text":
        norms += 2 * d  # pre- and post-feedforward norms
    dense_mlp = 3 * d * shape.d_mlp  # gate, up, down
    if shape.is_moe:
        e = shape.d_expert
        expert = 3 * d * e + ((2 * e + d) if architecture == "gpt_oss" else 0)  # GPT-OSS experts carry biases
        router = shape.n_experts * d + (shape.n_experts if architecture == "gpt_oss" else 0)
        shared = shape.n_shared_experts * 3 * d * e
        routed_all, routed_active = shape.n_experts * expert, shape.n_experts_active * expert
        layer = attn + norms + router + shared + routed_all
        layer_active = attn + norms + router + shared + routed_active
        mlp_how = (f"router {router:,} + shared {shared:,} + {shape.n_experts} experts x {expert:,} "
                   f"({shape.n_experts_active} active)")
    else:
        layer = layer_active = attn + norms + dense_mlp
        mlp_how = f"MLP 3 x {d} x {shape.d_mlp} = {dense_mlp:,}"
    embedding = shape.vocab_size * d
    unembedding = 0 if shape.tied_embeddings else shape.vocab_size * d
    final_norm = d
    total = embedding + shape.n_layers * layer + final_norm + unembedding + shape.vision_parameters
    # The output projection is a matrix product every token pays for even when it is the tied embedding table.
    active = shape.n_layers * layer_active + final_norm + shape.vocab_size * d
    how = (f"embedding {shape.vocab_size} x {d} = {embedding:,}; per layer: attention {attn:,} + norms {norms:,} + "
           f"{mlp_how} = {layer:,}; x {shape.n_layers} layers; final norm {d}; output projection "
           + ("tied (counted once)" if shape.tied_embeddings else f"{unembedding:,}")
           + (f"; vision encoder {shape.vision_parameters:,}" if shape.vision_parameters else ""))
    return ParameterCount(total=total, active=active, embedding=embedding, unembedding=unembedding,
                          per_layer=layer, how=how)


def hf_config(spec: ShapedSpec, n_layers: int | None = None, *, vocab_size: int | None = None) -> Any:
    """A transformers config of ``spec``'s exact shape (``n_layers`` keeps the first N layers' shape).

    The language model only: Llama 4 Scout gives a ``Llama4TextConfig`` (its vision encoder is not needed for text
    prompts). ``vocab_size`` overrides the vocabulary (e.g. to pair a model with a small test tokenizer).
    """
    import transformers as tf

    shape = spec.shape
    if shape is None:
        raise ConfigError(f"'{spec.name}' has no shape in the registry; add a shape: block read from its config.json")
    if n_layers is not None and not 1 <= n_layers <= shape.n_layers:
        raise ConfigError(f"n_layers must be between 1 and {shape.n_layers} for {spec.name}, got {n_layers}")
    layers = n_layers or shape.n_layers
    common: dict[str, Any] = dict(
        vocab_size=vocab_size or shape.vocab_size, hidden_size=shape.d_model, num_hidden_layers=layers,
        num_attention_heads=shape.n_heads, num_key_value_heads=shape.n_kv_heads, head_dim=shape.head_dim,
        max_position_embeddings=shape.max_position, tie_word_embeddings=shape.tied_embeddings,
    )
    arch = spec.architecture
    if arch == "llama":
        return tf.LlamaConfig(intermediate_size=shape.d_mlp, **common)
    if arch == "qwen3":
        return tf.Qwen3Config(intermediate_size=shape.d_mlp, **common)
    if arch == "gemma3_text":
        return tf.Gemma3TextConfig(intermediate_size=shape.d_mlp, sliding_window=shape.sliding_window or 4096,
                                   **common)
    if arch == "llama4":
        return tf.Llama4TextConfig(intermediate_size=shape.d_expert, intermediate_size_mlp=shape.d_mlp,
                                   num_local_experts=shape.n_experts, num_experts_per_tok=shape.n_experts_active,
                                   interleave_moe_layer_step=1, **common)
    if arch == "gpt_oss":
        return tf.GptOssConfig(intermediate_size=shape.d_expert, num_local_experts=shape.n_experts,
                               num_experts_per_tok=shape.n_experts_active,
                               sliding_window=shape.sliding_window or 128, **common)
    raise ConfigError(f"cannot build a config for architecture '{arch}' of {spec.name}; "
                      f"known: {', '.join(ARCHITECTURES)}")
