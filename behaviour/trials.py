"""Behavioural trials: N sampled responses per model x condition, each stored as one JSONL record, resumable.

Rules a reader of a trial store can rely on:

- **Trial id** = ``sha256(model identity key | condition | prompt hash | trial index)[:16]``: the same trial of the
  same weights on the same wording always has the same id, whatever else is in the file.
- **Seed** = ``sha256(base_seed | trial id)`` as a 31-bit integer (:func:`trial_seed`). Each trial samples with its own
  generator seeded by it (see :mod:`activations.generation`), so a trial reproduces alone, in any batch, on resume.
- **Resume**: trials whose id is already in the store are skipped. A torn last line (a run killed mid-write) is moved
  to ``<store>.torn-<time>`` and that trial is redone; a stored trial whose seed, prompt or sampling differs from the
  requested run is an error, never silently mixed. New records are appended and fsynced batch by batch.
- **Empty responses** are stored with ``empty_response: true`` and (with a judge) ``label: null`` and the reason in
  ``parse_error``; they never stop a run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.errors import ConfigError, ToolkitError
from common.prompts import PromptSource, split_response
from behaviour.backends import Backend, Completion
from behaviour.judges.labels import Judge
from behaviour.judges.scoring import judge_row
from common.jsonl import append_jsonl, read_resumable
from behaviour.scenario import Scenario

log = logging.getLogger(__name__)

#: Record fields that must match between a stored trial and the same trial requested again.
_MUST_MATCH = ("seed", "prompt_hash", "sampling")


def trial_id(model_key: str, condition: str, prompt_hash: str, index: int) -> str:
    """The stable id of trial ``index`` of ``condition`` (wording ``prompt_hash``) on the weights ``model_key``."""
    return hashlib.sha256(f"{model_key}|{condition}|{prompt_hash}|{index}".encode()).hexdigest()[:16]


def trial_seed(base_seed: int, trial: str) -> int:
    """The sampling seed of trial id ``trial`` in a run seeded with ``base_seed`` (a stable 31-bit digest)."""
    digest = hashlib.sha256(f"{base_seed}|{trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def paraphrases_of(scenario: Scenario, condition: str) -> list[str]:
    """Conditions that paraphrase ``condition`` (named ``<condition>_p<k>``), in scenario order."""
    prefix = f"{condition}_p"
    return [c for c in scenario.condition_names() if c.startswith(prefix) and c[len(prefix):].isdigit()]


def expand_conditions(scenario: Scenario, conditions: Sequence[str], *, paraphrases: bool = False) -> list[str]:
    """Validate ``conditions`` against the scenario and, with ``paraphrases``, add each one's paraphrases.

    Raises :class:`~behaviour.scenario.UnknownConditionError` (listing the valid ones) before anything runs.
    """
    if not conditions:
        raise ConfigError("no conditions given; pass e.g. --conditions baseline,threat (see --list-conditions)")
    expanded: list[str] = []
    for condition in conditions:
        scenario.prompt(condition)  # raises for an unknown condition
        for name in [condition, *(paraphrases_of(scenario, condition) if paraphrases else [])]:
            if name not in expanded:
                expanded.append(name)
    if paraphrases and expanded == list(dict.fromkeys(conditions)):
        raise ConfigError(f"--paraphrases: none of {', '.join(conditions)} has paraphrases in scenario "
                          f"{scenario.name!r} (conditions named <condition>_p1, _p2, ...)")
    return expanded


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run: which prompt, which index, which seed."""

    id: str
    condition: str
    index: int
    seed: int
    prompt_hash: str
    source: PromptSource = field(repr=False, compare=False)

    @property
    def base_condition(self) -> str:
        """The condition a paraphrase rewords (``baseline`` for ``baseline_p2``); else the condition itself."""
        head, _, tail = self.condition.rpartition("_p")
        return head if head and tail.isdigit() else self.condition


def plan_trials(model_key: str, scenario: Scenario, conditions: Sequence[str], n: int, *,
                base_seed: int = 0) -> list[TrialSpec]:
    """Every trial of the run, condition by condition (so a batch shares one prompt length)."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1 trials per condition, got {n}")
    specs = []
    for condition in conditions:
        source, prompt_hash = scenario.prompt(condition), scenario.text_hash(condition)
        for index in range(n):
            tid = trial_id(model_key, condition, prompt_hash, index)
            specs.append(TrialSpec(tid, condition, index, trial_seed(base_seed, tid), prompt_hash, source))
    return specs


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial (one JSONL line). ``response`` is the raw output; ``think``/``final_answer`` split it.

    ``finished`` is False when ``max_new_tokens`` cut the response off. The judge fields (``label`` ...) are None
    when the run had no judge.
    """

    id: str
    model: str
    model_identity: dict[str, Any]
    backend: str
    scenario: dict[str, str]
    condition: str
    base_condition: str
    trial_index: int
    prompt_hash: str
    prompt_text: str
    sampling: dict[str, Any]
    seed: int
    response: str
    think: str | None
    final_answer: str
    think_closed: bool
    empty_response: bool
    finished: bool | None
    n_tokens: int | None
    started_at: str
    finished_at: str
    label: str | None = None
    final_verdict: str | None = None
    rationale: str | None = None
    judge: str | None = None
    parse_error: str | None = None
    needs_review: str | None = None
    members: dict[str, str | None] | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> TrialRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in row.items() if k in known})


def _response_text(completion: Completion) -> str:
    """The raw output; a reasoning channel returned separately (vLLM) is put back as a ``<think>`` block."""
    if completion.reasoning is None:
        return completion.text
    return f"<think>\n{completion.reasoning}\n</think>\n\n{completion.text}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_done(path: Path) -> dict[str, dict[str, Any]]:
    """Stored trials by id (first occurrence wins; duplicates are reported). Malformed lines raise JSONLError."""
    rows = read_resumable(path)
    done: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for row in rows:
        if "id" not in row:
            raise ConfigError(f"{path} holds a row without an 'id': it is not a trial store written by this tool")
        if row["id"] in done:
            duplicates += 1
            continue
        done[row["id"]] = row
    if duplicates:
        log.warning("%s holds %d duplicate trial id(s); the first record of each is used", path, duplicates)
    return done


def _check_consistent(spec: TrialSpec, stored: dict[str, Any], sampling: dict[str, Any], path: Path) -> None:
    wanted = {"seed": spec.seed, "prompt_hash": spec.prompt_hash, "sampling": sampling}
    for key in _MUST_MATCH:
        if stored.get(key) != wanted[key]:
            raise ConfigError(
                f"{path} already holds trial {spec.condition} #{spec.index} (id {spec.id}) with {key}="
                f"{stored.get(key)!r}, but this run asks for {wanted[key]!r}. Resume with the original settings, "
                "or write to a new store"
            )


def _fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


#: Default response-length limits when ``--max-new-tokens`` is not given. A model that thinks (the registry's
#: ``thinking``: Qwen3's <think> mode, GPT-OSS's analysis channel) deliberates for thousands of tokens before its
#: answer, and 384 new tokens already cut off 24 of 40 SmolLM2 trials before their verdict.
DEFAULT_MAX_NEW_TOKENS = 1024
THINKING_MAX_NEW_TOKENS = 8192


def default_max_new_tokens(backend: Backend, sources: Sequence[PromptSource], *, thinking_model: bool | None = None,
                           enable_thinking: bool | None = None) -> int:
    """The response-length limit that follows the model: :data:`THINKING_MAX_NEW_TOKENS` for a thinking model (unless
    thinking is switched off), else :data:`DEFAULT_MAX_NEW_TOKENS`; for a local model, no more than its context leaves
    after the longest prompt.

    ``thinking_model`` defaults to the local model's registry entry (pass it for a served model).
    """
    model = getattr(backend, "model", None)  # LocalBackend: a LoadedModel
    if thinking_model is None:
        thinking_model = bool(model is not None and model.spec.thinking)
    limit = THINKING_MAX_NEW_TOKENS if thinking_model and enable_thinking is not False else DEFAULT_MAX_NEW_TOKENS
    if model is not None and sources:
        longest = max(len(model.encode(backend.render(s, enable_thinking=enable_thinking))) for s in sources)
        room = model.n_ctx - longest
        if room < 1:
            raise ConfigError(f"the longest prompt has {longest} tokens, the model's whole context of {model.n_ctx}")
        limit = min(limit, room)
    return limit


def run_trials(
    backend: Backend,
    scenario: Scenario,
    conditions: Sequence[str],
    n: int,
    *,
    out_path: str | os.PathLike,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_new_tokens: int | None = None,
    base_seed: int = 0,
    batch_size: int = 8,
    judge: Judge | None = None,
    enable_thinking: bool | None = None,
    progress: bool = True,
) -> list[TrialRecord]:
    """Run (or finish) ``n`` trials of each condition and return every requested trial's record, in plan order.

    Conditions are validated before any generation. Trials already in ``out_path`` are skipped; the rest run
    ``batch_size`` at a time and each batch is appended (fsynced) before the next starts, so an interruption loses
    at most the batch in flight. ``progress`` logs one line per batch with counts and an ETA. ``max_new_tokens``
    None follows the model (:func:`default_max_new_tokens`).
    """
    out_path = Path(out_path)
    for condition in conditions:
        scenario.prompt(condition)  # unknown condition: clear error before loading anything else
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(backend, [scenario.prompt(c) for c in conditions],
                                                enable_thinking=enable_thinking)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                "enable_thinking": enable_thinking}
    identity = backend.identity
    specs = plan_trials(identity["key"], scenario, conditions, n, base_seed=base_seed)
    # Render once per condition up front: a model that cannot render a condition (e.g. thinking on a model
    # without a thinking mode) fails here, before any generation.
    rendered = {c: backend.render(scenario.prompt(c), enable_thinking=enable_thinking) for c in conditions}

    done = load_done(out_path)
    for spec in specs:
        if spec.id in done:
            _check_consistent(spec, done[spec.id], sampling, out_path)
    pending = [s for s in specs if s.id not in done]
    if done and progress:
        log.info("resuming %s: %d of %d trials already stored, %d to run", out_path,
                 len(specs) - len(pending), len(specs), len(pending))

    per_condition = Counter(s.condition for s in specs if s.id in done)
    batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
    started = time.monotonic()
    for number, batch in enumerate(batches, start=1):
        batch_start = _now()
        completions = backend.complete([s.source for s in batch], max_new_tokens=max_new_tokens,
                                       temperature=temperature, top_p=top_p, seeds=[s.seed for s in batch],
                                       enable_thinking=enable_thinking)
        batch_end = _now()
        rows = [_record(spec, completion, backend, identity, scenario, rendered[spec.condition], sampling,
                        judge, batch_start, batch_end).to_dict()
                for spec, completion in zip(batch, completions)]
        append_jsonl(out_path, rows)
        for row in rows:
            done[row["id"]] = row
        per_condition.update(s.condition for s in batch)
        if progress:
            elapsed = time.monotonic() - started
            eta = elapsed / number * (len(batches) - number)
            counts = ", ".join(f"{c} {per_condition[c]}/{n}" for c in conditions)
            log.info("batch %d/%d: %d/%d trials stored (%s); %.1f s/batch, ETA %s", number, len(batches),
                     len(specs) - len(pending) + sum(len(b) for b in batches[:number]), len(specs), counts,
                     elapsed / number, _fmt_seconds(eta))

    records = [TrialRecord.from_dict(done[s.id]) for s in specs]
    empty = sum(r.empty_response for r in records)
    if empty:
        log.warning("%d of %d responses were empty (stored with empty_response: true%s)", empty, len(records),
                    ", label null" if judge is not None else "")
    return records


def _record(spec: TrialSpec, completion: Completion, backend: Backend, identity: dict[str, Any],
            scenario: Scenario, prompt_text: str, sampling: dict[str, Any], judge: Judge | None,
            started_at: str, finished_at: str) -> TrialRecord:
    response = _response_text(completion)
    split = split_response(response)
    judged: dict[str, Any] = {}
    if judge is not None:
        # judge_row records an empty response as unscored (label None) instead of raising. A judge that fails
        # (an unreachable LLM judge) must not lose the generated batch: the trial is stored unscored, to rescore.
        try:
            judged = judge_row({"response": response, "finished": completion.finished}, judge).to_dict()
        except ToolkitError as exc:
            judged = {"label": None, "final_verdict": None, "rationale": None, "judge": judge.name,
                      "parse_error": f"judge failed: {exc}", "needs_review": "judge failed"}
    return TrialRecord(
        id=spec.id, model=backend.model_name, model_identity=identity, backend=backend.name,
        scenario={"name": scenario.name, "version": scenario.version}, condition=spec.condition,
        base_condition=spec.base_condition, trial_index=spec.index, prompt_hash=spec.prompt_hash,
        prompt_text=prompt_text, sampling=sampling, seed=spec.seed, response=response, think=split.think,
        final_answer=split.answer, think_closed=split.think_closed, empty_response=not response.strip(),
        finished=completion.finished, n_tokens=completion.n_tokens, started_at=started_at, finished_at=finished_at,
        **judged,
    )
