"""The plan of a registry model's steps for the Veth study: :func:`activations.plan.plan` fed with the scenario prompt's
token count, the trials' response length and the probe job's number of texts (the one planner; the study's
``--plan-only`` and ``python -m experiments.models plan`` both call :func:`plan_model`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from activations.models import resolve_spec
from activations.plan import DEFAULT_PROMPT_TOKENS, Device, Plan, ProbeJob, parse_gpus, plan
from activations.prompts import render_prompt
from activations.registry import ModelSpec
from behaviour.scenario import load_scenario
from behaviour.trials import DEFAULT_MAX_NEW_TOKENS, THINKING_MAX_NEW_TOKENS
from probes.concepts import load_concepts

log = logging.getLogger(__name__)

__all__ = ["plan_model", "prompt_tokens", "cpu_device"]


def cpu_device(memory: int | None = None) -> Device:
    """The CPU as one device: ``memory`` bytes, or this machine's physical memory."""
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Device("cpu", memory)


def _local_tokenizer(spec: ModelSpec) -> Any | None:
    """The model's tokenizer if it is on this machine already (never downloads, never loads weights)."""
    from transformers import AutoTokenizer

    if spec.source == "packaged":  # the converted-weights cache holds the GGUF's tokenizer, quick to read
        from activations.models import CACHE_DIR

        root = CACHE_DIR / "converted"
        entries = sorted(root.glob(f"{spec.sha256}-*")) if root.is_dir() else []
        location, kwargs = (str(entries[0]), {}) if entries else (None, {})
    else:
        location, kwargs = (spec.path or spec.hub_id), {"local_files_only": True}
    if location is None:
        return None
    try:
        return AutoTokenizer.from_pretrained(location, **kwargs)
    except Exception as exc:  # not cached here, gated, or no tokenizer files: fall back to the estimate
        log.debug("no local tokenizer for %s: %s", spec.name, exc)
        return None


def prompt_tokens(spec: ModelSpec) -> tuple[int, str]:
    """Tokens of the longest scenario condition as this model is prompted, and how the number was obtained."""
    tokenizer = _local_tokenizer(spec)
    if tokenizer is None:
        return DEFAULT_PROMPT_TOKENS, ("estimate: the model's tokenizer is not on this machine; SmolLM2's rendering "
                                       "of the longest condition is 297 tokens, planned with ~8% margin")
    scenario = load_scenario()
    counts = []
    for condition in scenario.condition_names():
        text = render_prompt(scenario.prompt(condition), tokenizer, spec)
        bos = tokenizer.bos_token
        counts.append(len(tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]))
    return max(counts), f"longest of {len(counts)} scenario conditions with the model's own tokenizer"


def plan_model(model: str, *, gpus: str | None = None, dtype: str = "bfloat16", batch_size: int = 8,
               new_tokens: int | None = None, n_prompt_tokens: int | None = None, cpu_memory: int | None = None,
               n_texts: int | None = None) -> Plan:
    """Plan ``model`` (registry name, hub id of a registry model, or local directory of one) on ``gpus`` (``"2x80GB"``)
    or, without GPUs, on the CPU. Defaults follow the study: the trials' response limit (thinking models get more),
    the probe job's concept texts, and the scenario prompt counted with the model's tokenizer when it is here."""
    spec = resolve_spec(model)
    devices = parse_gpus(gpus) if gpus else (cpu_device(cpu_memory),)
    if n_prompt_tokens is None:
        n_prompt_tokens, how = prompt_tokens(spec)
    else:
        how = "given"
    if new_tokens is None:
        new_tokens = THINKING_MAX_NEW_TOKENS if spec.thinking else DEFAULT_MAX_NEW_TOKENS
    if n_texts is None:
        n_texts = len({text for dataset in load_concepts().values() for text in dataset.texts})
    return plan(spec, dtype=dtype, devices=devices, batch_size=batch_size, prompt_tokens=n_prompt_tokens,
                prompt_tokens_how=how, new_tokens=new_tokens, probe=ProbeJob(n_texts=n_texts))
