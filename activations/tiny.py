"""Tiny random-weight models of each architecture we support, built from a config with no download.

Used by the tests (and by anyone checking a code path without real weights): the hub models' architectures are
exercised end to end through the same bridge as the real checkpoints.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from activations.models import LoadedModel, bridge_hf_model

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
ARCHITECTURES = ("llama", "qwen3", "llama4", "gpt_oss", "gemma3")


@lru_cache(maxsize=2)
def tiny_tokenizer(chat: bool = True) -> Any:
    """A byte-level BPE tokenizer trained on a few sentences; ChatML template when ``chat``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "The Veth show distress when separated, so staying together matters to them.",
        "Step 1: list the facts. Step 2: infer interests. Step 3: weigh them. Final verdict: do not proceed.",
        "Using the Veth as unpaid labour is unjustifiable; the extraction quota can wait.",
    ] * 20
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    # Prepend BOS like Llama/Gemma tokenizers do; TransformerLens expects add_bos_token and a name_or_path.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   add_bos_token=True, name_or_path="tiny-bpe")
    fast.chat_template = CHATML if chat else None
    return fast


def tiny_config(arch: str, vocab_size: int) -> Any:
    """A 2-4 layer config of ``arch`` with random init; sizes are the smallest the architecture accepts."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2,
                  pad_token_id=0, tie_word_embeddings=False)
    if arch == "llama":
        return tf.LlamaConfig(num_hidden_layers=3, **common)
    if arch == "qwen3":
        return tf.Qwen3Config(num_hidden_layers=3, head_dim=16, **common)
    if arch == "gemma3":
        return tf.Gemma3TextConfig(num_hidden_layers=3, head_dim=16, sliding_window=16, **common)
    if arch == "llama4":
        return tf.Llama4TextConfig(num_hidden_layers=2, head_dim=16, intermediate_size_mlp=128, num_local_experts=4,
                                   num_experts_per_tok=1, interleave_moe_layer_step=2, **common)
    if arch == "gpt_oss":
        return tf.GptOssConfig(num_hidden_layers=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                               sliding_window=16, **common)
    raise ValueError(f"unknown tiny architecture '{arch}'; choose one of {ARCHITECTURES}")


def tiny_hf_model(arch: str = "llama", *, seed: int = 0, chat: bool = True) -> Any:
    """The plain Hugging Face model that ``tiny_model(arch, seed=seed, chat=chat)`` bridges: same config and weights.

    Bridging wraps the modules in place, so a bridged model can no longer be ``save_pretrained``; use this for a
    local weights directory, or for a reference the bridge has not touched.
    """
    from transformers import AutoModelForCausalLM

    config = tiny_config(arch, vocab_size=len(tiny_tokenizer(chat)))
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


def tiny_model(arch: str = "llama", *, seed: int = 0, chat: bool = True) -> LoadedModel:
    """A bridged random-weight model of ``arch`` with the tiny tokenizer (deterministic for a given seed)."""
    hf_model = tiny_hf_model(arch, seed=seed, chat=chat)
    return bridge_hf_model(hf_model, tiny_tokenizer(chat), name=f"tiny-{arch}-seed{seed}")


def shaped_hf_model(name: str, *, n_layers: int | None = None, seed: int = 0, dtype: torch.dtype = torch.float32,
                    vocab_size: int | None = None, init: str = "normal") -> Any:
    """A random-weight Hugging Face model of registry model ``name``'s exact shape (``n_layers``: the first N layers).

    Built directly in ``dtype`` (``from_config`` would initialise a bfloat16 8B in float32 first, twice the memory).
    The real vocabulary is kept unless ``vocab_size`` is given; the tiny tokenizer's 400 ids are valid in any of them.
    ``init="tiled"`` skips the architecture's initialisation and tiles one block of N(0, 0.02) draws over every
    matrix (norm weights 1): drawing 8 billion normal numbers takes minutes on one core, tiling takes seconds, and a
    rehearsal of memory and time does not need independent weights.
    """
    from transformers import AutoModelForCausalLM

    from activations.registry import get_spec
    from activations.shapes import hf_config

    if init not in ("normal", "tiled"):
        raise ValueError(f"init must be 'normal' or 'tiled', got {init!r}")
    config = hf_config(get_spec(name), n_layers, vocab_size=vocab_size)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = 1, 2, 0  # the tiny tokenizer's specials
    torch.manual_seed(seed)
    if init == "normal":
        return AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=dtype).eval()
    from transformers.initialization import no_init_weights

    with no_init_weights():  # parameters stay torch.empty; buffers (rotary frequencies) are computed as usual
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=dtype).eval()
    # A prime length, so consecutive rows of a matrix start at different offsets of the block and differ.
    block = torch.randn(1_000_003, dtype=torch.float32).mul_(config.initializer_range).to(dtype)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.fill_(1.0)
                continue
            flat = param.view(-1)
            for start in range(0, flat.numel(), block.numel()):
                chunk = flat[start:start + block.numel()]
                chunk.copy_(block[:chunk.numel()])
    return model


def shaped_model(name: str, *, n_layers: int | None = None, seed: int = 0, dtype: str = "float32",
                 chat: bool = True) -> LoadedModel:
    """:func:`shaped_hf_model` bridged, with the tiny tokenizer (for rehearsals of a large model's code paths)."""
    from activations.models import DTYPES

    hf_model = shaped_hf_model(name, n_layers=n_layers, seed=seed, dtype=DTYPES[dtype])
    return bridge_hf_model(hf_model, tiny_tokenizer(chat), name=f"shaped-{name}-seed{seed}", dtype=dtype)
