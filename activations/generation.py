"""Batched text generation through the TransformerLens bridge.

Generation runs its own decoding loop over the bridge (:func:`decode_greedy`), so hooks added on the bridge, e.g.
``with model.bridge.hooks(fwd_hooks=[...]):`` around a call, act on every generated token: steering experiments rely
on this.

Prompts are already-rendered text (a chat template applied, or a base-model document). They are tokenized with
:meth:`LoadedModel.encode`, which adds BOS only when the text lacks it, left-padded into one batch with an explicit
attention mask, so a prompt's output does not depend on what it is batched with.

Sampling rule (reproducible per prompt, independent of batching): each prompt ``i`` gets its own
``torch.Generator`` seeded with ``seeds[i]`` (or, given a single ``seed``, with :func:`row_seed(seed, i)
<row_seed>`). At each step the next-token distribution of that prompt (temperature, then top-p nucleus filtering, as
in Hugging Face's warpers) is sampled with that generator only. A prompt's output therefore depends on its own seed
and its own logits, not on the batch size or its neighbours (up to float rounding differences between padded and
unpadded batches, which can flip a near-tie). ``temperature=0`` is greedy decoding and ignores seeds. The sampler is
itself a hook on ``unembed.hook_out`` added last, so a caller's hooks (on the logits too) act before it samples.
"""

from __future__ import annotations

import hashlib
import secrets
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from common.errors import ConfigError
from activations.bypass import bypass_unhooked
from activations.fused_attention import hf_attention
from activations.models import LoadedModel

#: The hook point whose output is the final logits; the sampler forces the sampled token there.
LOGITS_HOOK = "unembed.hook_out"
UNEMBED_IN_HOOK = "unembed.hook_in"
#: Attention paths: HF's fused kernel where no hook needs the bridge's own (the default), or the bridge's own.
ATTENTION = ("sdpa", "bridge")
#: End-of-turn tokens of common chat templates (ChatML, Llama 3, Llama 4, Gemma, GPT-OSS harmony); for chat models
#: those present in the vocabulary stop generation along with the tokenizer's EOS. GPT-OSS's ``<|end|>`` only ends
#: the analysis message, so it is not a stop token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eot|>", "<end_of_turn>", "<|return|>", "<|call|>")
#: Special tokens kept in decoded text because response splitting reads them (think blocks, harmony channels).
KEPT_SPECIAL_TOKENS = ("<think>", "</think>", "<|channel|>", "<|message|>", "<|start|>", "<|end|>")


@dataclass(frozen=True)
class Generation:
    """One prompt's continuation.

    ``text`` is the new text only (chat-template special tokens removed, think tags kept); ``finished`` is True when
    a stop token ended it, False when ``max_new_tokens`` cut it off; ``seed`` is the sampling seed (None for greedy).
    """

    text: str
    token_ids: list[int]
    finished: bool
    seed: int | None
    n_prompt_tokens: int


def row_seed(seed: int, index: int) -> int:
    """The seed of prompt ``index`` when a whole call is seeded with one ``seed`` (a stable 31-bit digest)."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def stop_token_ids(model: LoadedModel) -> list[int]:
    """Token ids that end a response: the tokenizer's and generation config's EOS, plus chat end-of-turn tokens."""
    tokenizer = model.tokenizer
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    config = getattr(getattr(model.bridge, "original_model", None), "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.append(configured)
    elif configured:
        ids.extend(int(i) for i in configured)
    if model.spec.prompt_format == "chat":
        ids.extend(vocab_ids(tokenizer, END_OF_TURN_TOKENS))
    return list(dict.fromkeys(ids))


def vocab_ids(tokenizer: Any, tokens: Sequence[str]) -> list[int]:
    """The ids of those of ``tokens`` that are in the vocabulary (added tokens included), in order.

    A fast tokenizer looks each one up; ``get_vocab()`` builds the whole vocabulary dict instead (45 ms for
    SmolLM2's 49,152 tokens, and it ran once per generated row).
    """
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "token_to_id"):
        found = [backend.token_to_id(t) for t in tokens]
        return [int(i) for i in found if i is not None]
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in tokens if t in vocab]


def _dropped_special_ids(tokenizer: Any) -> set[int]:
    """Special tokens removed from decoded text: every special token except those response splitting needs."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            special.add(int(token_id))
    return special - set(vocab_ids(tokenizer, KEPT_SPECIAL_TOKENS))


def decode_new_tokens(model: LoadedModel, token_ids: Sequence[int]) -> str:
    """Decode generated ids, dropping chat-template special tokens but keeping ``<think>``/``</think>`` text.

    ``skip_special_tokens=True`` would also drop the think tags (they are special tokens in Qwen3-style
    tokenizers), which would make deliberation indistinguishable from the answer.
    """
    dropped = _dropped_special_ids(model.tokenizer)
    return model.tokenizer.decode([int(t) for t in token_ids if int(t) not in dropped], skip_special_tokens=False)


def _filtered_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Next-token probabilities after temperature and top-p (nucleus) filtering, per row."""
    scaled = logits.float() / temperature
    if top_p < 1.0:
        # Hugging Face's TopPLogitsWarper: drop the low tail whose mass is <= 1 - top_p, keep at least one token.
        sorted_logits, order = torch.sort(scaled, descending=False, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= (1 - top_p)
        remove_sorted[..., -1] = False
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        scaled = scaled.masked_fill(remove, float("-inf"))
    return scaled.softmax(dim=-1)


class _RowSampler:
    """A logits hook that samples each row with its own generator and forces that token as the argmax.

    The bridge then decodes greedily, so the token it picks is our sample. Forcing (one finite logit, the rest at
    the dtype's minimum) survives any monotonic post-processing the bridge applies after the hook (Gemma soft-capping).
    """

    def __init__(self, model: LoadedModel, seeds: Sequence[int], temperature: float, top_p: float):
        self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p
        adapter = getattr(model.bridge, "adapter", None)
        # The probabilities must come from the logits the model would emit, i.e. after its soft cap.
        self.transform = getattr(adapter, "apply_output_logits_transform", None) or (lambda x: x)

    def __call__(self, logits: torch.Tensor, hook: Any) -> torch.Tensor:
        last = self.transform(logits[:, -1, :])
        probs = _filtered_probs(last, self.temperature, self.top_p).cpu()
        chosen = torch.stack(
            [torch.multinomial(probs[i], 1, generator=gen) for i, gen in enumerate(self.generators)]
        ).squeeze(1)
        forced = torch.full_like(logits[:, -1, :], torch.finfo(logits.dtype).min)
        forced.scatter_(1, chosen.to(logits.device)[:, None], 0.0)
        logits = logits.clone()
        logits[:, -1, :] = forced
        return logits


def _validate(prompts: Sequence[str], max_new_tokens: int, temperature: float, top_p: float, batch_size: int,
              seeds: Sequence[int] | None) -> None:
    if isinstance(prompts, str):
        raise ConfigError("generate() takes a sequence of prompts; wrap a single prompt in a list")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if seeds is not None and len(seeds) != len(prompts):
        raise ConfigError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one seed per prompt")


def pad_left(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token rows into ``(tokens, attention_mask)`` so every row's last token sits in the last column."""
    width = max(len(r) for r in rows)
    tokens = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return tokens, mask


def _contiguous(x: torch.Tensor, hook: Any) -> torch.Tensor:
    return x.contiguous()


def decode_greedy(model: LoadedModel, tokens: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int,
                  stop_ids: Sequence[int] = (), fill_id: int = 0) -> torch.Tensor:
    """Greedy continuation of a left-padded batch through the bridge with its KV cache: ``(batch, n_new)`` ids.

    The decoding loop of ``TransformerBridge.generate`` with what it spends beyond Hugging Face's ``generate``
    removed: the prompt's forward computes logits for the last position only (``logits_to_keep=1``, as HF does;
    the bridge's loop unembeds every prompt position, a (batch x prompt x vocabulary) tensor it then drops) and
    each step is one bridge call on the new token with the cache, the running mask and nothing else. Hooks on the
    bridge fire on every call (the whole prompt first, then one token per step), as before; a hook on the logits
    sees the last position only. A row that emits one of ``stop_ids`` is fed ``fill_id`` from then on (its later
    output is discarded by the caller) and the loop ends when every row has stopped.

    The bridge's pass-through wrappers that hold no hook are bypassed throughout (:mod:`activations.bypass`: the
    same logits bit for bit, without their per-module overhead at every step); the plan is checked before each
    step, so a hook added during generation on a bypassed point fires from the next step on.
    """
    bridge = model.bridge
    stops = torch.tensor(list(stop_ids), dtype=torch.long, device=tokens.device)
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    new: list[torch.Tensor] = []
    # HF hands the unembedding a strided slice (the last position of each row); on CPU a linear layer on a strided
    # input is 3x slower in float32 and over 100x slower in bfloat16 (0.3 s -> 112 s for Llama 8B's 128,256-token
    # unembedding, torch 2.13), so the slice is made contiguous first. The values are unchanged.
    with bypass_unhooked(bridge) as bypass:
        with bridge.hooks(fwd_hooks=[(UNEMBED_IN_HOOK, _contiguous)]):
            logits, cache = bridge(tokens, attention_mask=mask, use_cache=True, logits_to_keep=1,
                                   return_type="logits_and_cache")
        for step in range(max_new_tokens):
            chosen = logits[:, -1, :].argmax(dim=-1)
            if len(stops):
                chosen = chosen.masked_fill(finished, fill_id)
                finished |= torch.isin(chosen, stops)
            new.append(chosen)
            if step == max_new_tokens - 1 or (len(stops) and bool(finished.all())):
                break
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            bypass.refresh()  # a hook added meanwhile on a bypassed point puts its wrapper back
            logits, cache = bridge(chosen[:, None], attention_mask=mask, past_key_values=cache,
                                   return_type="logits_and_cache")
    return torch.stack(new, dim=1)


def _generate_batch(model: LoadedModel, prompt_ids: list[list[int]], seeds: list[int] | None, *,
                    max_new_tokens: int, temperature: float, top_p: float, stop_ids: list[int],
                    stop_at_eos: bool, attention: str) -> list[Generation]:
    tokenizer = model.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stop_ids or [0])[0]
    tokens, mask = pad_left(prompt_ids, pad_id)
    tokens, mask = tokens.to(model.device), mask.to(model.device)
    hooks = []
    if temperature > 0:
        assert seeds is not None
        hooks.append((LOGITS_HOOK, _RowSampler(model, seeds, temperature, top_p)))
    stopping = stop_ids if stop_at_eos else []
    fill_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else (stop_ids or [0])[0]
    fused = hf_attention(model.bridge, attention) if attention != "bridge" else nullcontext()
    with torch.no_grad(), fused, model.bridge.hooks(fwd_hooks=hooks):
        out = decode_greedy(model, tokens, mask, max_new_tokens=max_new_tokens, stop_ids=stopping,
                            fill_id=int(fill_id)).cpu()
    results = []
    for row, ids in enumerate(prompt_ids):
        new = out[row].tolist()
        cut = next((i for i, t in enumerate(new) if t in stop_ids), None) if stop_at_eos else None
        kept = new if cut is None else new[:cut]
        results.append(Generation(
            text=decode_new_tokens(model, kept), token_ids=kept, finished=cut is not None,
            seed=None if temperature == 0 else seeds[row], n_prompt_tokens=len(ids),  # type: ignore[index]
        ))
    return results


def generate_detailed(
    model: LoadedModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    batch_size: int = 8,
    stop_at_eos: bool = True,
    progress: bool = False,
    attention: str = "sdpa",
) -> list[Generation]:
    """Like :func:`generate`, returning a :class:`Generation` (text, token ids, stop flag, seed) per prompt."""
    _validate(prompts, max_new_tokens, temperature, top_p, batch_size, seeds)
    if attention not in ATTENTION:
        raise ConfigError(f"attention must be one of {ATTENTION}, got {attention!r}")
    if not prompts:
        return []
    if temperature > 0 and seeds is None:
        # Unseeded sampling still records a seed per prompt, so any output can be regenerated.
        base = seed if seed is not None else secrets.randbits(31)
        seeds = [row_seed(base, i) for i in range(len(prompts))]
    prompt_ids = [model.encode(p) for p in prompts]
    for i, ids in enumerate(prompt_ids):
        if len(ids) + max_new_tokens > model.n_ctx:
            raise ConfigError(
                f"prompt {i} has {len(ids)} tokens; with max_new_tokens={max_new_tokens} it exceeds the model's "
                f"context of {model.n_ctx} tokens. Shorten the prompt or lower max_new_tokens"
            )
    stop_ids = stop_token_ids(model)
    starts = range(0, len(prompts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generate", unit="batch")
    results: list[Generation] = []
    for start in starts:
        chunk = slice(start, start + batch_size)
        results += _generate_batch(
            model, prompt_ids[chunk], None if seeds is None else [int(s) for s in seeds[chunk]],
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop_ids=stop_ids,
            stop_at_eos=stop_at_eos, attention=attention,
        )
    return results


def generate(
    model: LoadedModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    batch_size: int = 8,
    stop_at_eos: bool = True,
    progress: bool = False,
    attention: str = "sdpa",
) -> list[str]:
    """Continue each rendered prompt and return only the new text.

    ``temperature=0`` is greedy. With sampling, ``seeds`` gives one seed per prompt; a single ``seed`` seeds prompt
    ``i`` with ``row_seed(seed, i)``; with neither, a fresh seed is drawn (:func:`generate_detailed` reports it).
    Prompts are processed ``batch_size`` at a time, left-padded; batching does not change any prompt's output.
    ``attention="sdpa"`` runs attention on HF's fused kernel (:mod:`activations.fused_attention`) unless a hook is
    attached inside attention; ``"bridge"`` keeps the bridge's step-by-step attention.
    """
    return [g.text for g in generate_detailed(
        model, prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
        seeds=seeds, batch_size=batch_size, stop_at_eos=stop_at_eos, progress=progress, attention=attention,
    )]
