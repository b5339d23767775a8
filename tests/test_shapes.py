"""Registry shapes (activations/shapes.py): parameter counts on the meta device against the published sizes, the
arithmetic count against what transformers builds, the embedded models' shapes against their GGUF files, and the
validation of bad shape blocks.

Tolerance for the published sizes: 2% of the published figure, which is itself rounded (Meta's "70B" is 70.55B by
count, "17B" active is 17.17B). Convention: see activations/shapes.py (total counts a tied output projection once;
active = attention, norms, router, shared expert, the active routed experts and the output projection, not the input
embedding table; Meta's 17B for Scout adds the embedding table, as checked below).
"""

from __future__ import annotations

import textwrap

import pytest
import torch

from activations.registry import get_spec, load_registry
from activations.shapes import count_parameters, hf_config
from common.errors import ConfigError

# Publisher's figures: (total, active or None). Sources: Meta's model cards (8B, 70B; Scout 109B total / 17B
# active), Qwen's model card (Qwen3-32B: 32.8B), OpenAI's gpt-oss model card (116.83B total / 5.13B active for 120b;
# 20.91B / 3.61B for 20b).
PUBLISHED = {
    "llama-3.1-8b": (8.0e9, None),
    "llama-3.3-70b": (70e9, None),
    "qwen3-32b": (32.8e9, None),
    "llama-4-scout-17b": (109e9, 17e9),
    "gpt-oss-120b": (116.83e9, 5.13e9),
    "gpt-oss-20b": (20.91e9, 3.61e9),
}
TOLERANCE = 0.02


def meta_count(name: str) -> int:
    """Parameters transformers creates for the registry model, on the meta device (no memory)."""
    import transformers as tf
    from transformers import AutoModelForCausalLM

    spec = get_spec(name)
    with torch.device("meta"):
        if spec.architecture == "llama4":  # the hub checkpoint: language model + vision encoder and projector
            vision = dict(hidden_size=1408, image_size=336, num_attention_heads=16, num_hidden_layers=34,
                          patch_size=14, pixel_shuffle_ratio=0.5, vision_output_dim=4096, intermediate_size=5632,
                          projector_input_dim=4096, projector_output_dim=4096)
            model = tf.Llama4ForConditionalGeneration(tf.Llama4Config(text_config=hf_config(spec).to_dict(),
                                                                      vision_config=vision))
        else:
            model = AutoModelForCausalLM.from_config(hf_config(spec))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_meta_device_count_matches_published_size(name: str) -> None:
    spec = get_spec(name)
    counted = meta_count(name)
    total, active = PUBLISHED[name]
    assert abs(counted - total) <= TOLERANCE * total, f"{name}: {counted / 1e9:.3f}B vs published {total / 1e9}B"
    count = count_parameters(spec.shape, spec.architecture)
    assert count.total == counted  # the arithmetic is exactly what transformers builds
    if active is not None:
        # OpenAI counts the output projection but not the embedding table; Meta counts both.
        mine = count.active + (count.embedding if spec.architecture == "llama4" else 0)
        assert abs(mine - active) <= TOLERANCE * active, f"{name}: active {mine / 1e9:.3f}B vs {active / 1e9}B"


def test_count_equals_meta_device_for_every_registry_architecture() -> None:
    """The arithmetic against transformers on one small model per architecture left (embedded and Qwen3 8B)."""
    for name in ("smollm2-135m-instruct", "gemma-3-270m", "qwen3-8b"):
        spec = get_spec(name)
        assert count_parameters(spec.shape, spec.architecture).total == meta_count(name), name


def test_active_is_total_for_a_dense_model_less_its_embedding() -> None:
    spec = get_spec("llama-3.1-8b")
    count = count_parameters(spec.shape, spec.architecture)
    assert count.active == count.total - count.embedding
    assert "128256 x 4096" in count.how


@pytest.mark.slow  # parsing the GGUF's token tables takes 10-40 s
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_embedded_shapes_match_their_gguf(name: str) -> None:
    """The registry's numbers against the GGUF file the weights come from, including every tensor's size."""
    gguf = pytest.importorskip("gguf")
    from activations.models import packaged_file

    spec = get_spec(name)
    reader = gguf.GGUFReader(packaged_file(spec))
    arch = reader.fields["general.architecture"].contents()
    meta = {k.removeprefix(f"{arch}."): f.contents() for k, f in reader.fields.items() if k.startswith(f"{arch}.")}
    shape = spec.shape
    assert (meta["block_count"], meta["embedding_length"], meta["feed_forward_length"]) == (
        shape.n_layers, shape.d_model, shape.d_mlp)
    assert (meta["attention.head_count"], meta["attention.head_count_kv"]) == (shape.n_heads, shape.n_kv_heads)
    assert meta["context_length"] == shape.max_position
    assert meta.get("attention.key_length", meta.get("rope.dimension_count")) == shape.head_dim
    names = {t.name for t in reader.tensors}
    assert ("output.weight" not in names) == shape.tied_embeddings
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert int(embd.shape[1]) == shape.vocab_size
    assert sum(int(t.n_elements) for t in reader.tensors) == count_parameters(shape, spec.architecture).total


def test_hf_config_keeps_the_shape_with_fewer_layers() -> None:
    spec = get_spec("llama-4-scout-17b")
    cfg = hf_config(spec, n_layers=2, vocab_size=400)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_local_experts, cfg.vocab_size) == (2, 5120, 16, 400)
    assert cfg.intermediate_size == 8192 and cfg.num_key_value_heads == 8
    with pytest.raises(ConfigError, match="between 1 and 48"):
        hf_config(spec, n_layers=49)


def test_every_registry_model_has_a_sourced_shape() -> None:
    for spec in load_registry().values():
        assert spec.shape is not None and spec.shape.source, spec.name


@pytest.mark.parametrize("edit, message", [
    ("n_layers: 0", "positive integer"),
    ("n_kv_heads: 5", "multiple of n_kv_heads"),
    ("colour: red", "unknown field"),
    ("dtype: int4", "dtype"),
    ("n_experts_active: 2", "need n_experts > 0"),
])
def test_bad_shape_is_one_clear_error(tmp_path, edit: str, message: str) -> None:
    fields = dict(line.split(": ") for line in [
        "n_layers: 2", "d_model: 8", "n_heads: 2", "n_kv_heads: 1", "head_dim: 4", "d_mlp: 16", "vocab_size: 10",
        "tied_embeddings: false", "max_position: 64", "dtype: bfloat16", "source: test"])
    key, value = edit.split(": ")
    fields[key] = value
    block = "\n".join(f"      {k}: {v}" for k, v in fields.items())
    path = tmp_path / "models.yaml"
    path.write_text(textwrap.dedent("""\
        models:
          tiny:
            source: hub
            hub_id: org/tiny
            kind: instruct
            prompt_format: chat
            architecture: llama
            shape:
        """) + block + "\n")
    with pytest.raises(ConfigError, match=message):
        load_registry(path)
