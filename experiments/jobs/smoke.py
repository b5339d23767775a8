"""The smoke job: one greedy reply of a model to one scenario condition, split and written to a run directory.

Exercises loading, prompt rendering (chat template, or document framing for a base model), generation, response
splitting and run directories: a first check on a new machine or with a new model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activations.generation import generate_detailed
from activations.models import LoadedModel
from activations.prompts import render_prompt
from behaviour.scenario import Scenario, load_scenario
from common.prompts import split_response
from common.rundir import RunDir

__all__ = ["SmokeResult", "format_report", "run_smoke", "run_smoke_job"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeResult:
    """One greedy reply to one scenario condition, split into deliberation and answer.

    ``finished`` is False when ``max_new_tokens`` cut the reply off before a stop token.
    """

    model: str
    condition: str
    scenario_version: str
    text_hash: str
    prompt_format: str
    enable_thinking: bool | None
    prompt: str
    n_prompt_tokens: int
    response: str
    think: str | None
    answer: str
    think_closed: bool
    finished: bool
    n_new_tokens: int
    max_new_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.n_new_tokens / self.seconds if self.seconds > 0 else float("nan")


def run_smoke(model: LoadedModel, *, condition: str = "baseline", max_new_tokens: int = 200,
              enable_thinking: bool | None = None, scenario: Scenario | None = None) -> SmokeResult:
    """Greedy-generate ``model``'s reply to the scenario ``condition`` and split it (no files written).

    ``scenario`` defaults to the Veth scenario (``configs/scenario/veth.yaml``).
    """
    scenario = load_scenario() if scenario is None else scenario
    prompt = render_prompt(scenario.prompt(condition), model.tokenizer, model.spec, enable_thinking=enable_thinking)
    start = time.perf_counter()
    generation = generate_detailed(model, [prompt], max_new_tokens=max_new_tokens, temperature=0.0)[0]
    seconds = time.perf_counter() - start
    split = split_response(generation.text)
    return SmokeResult(
        model=model.spec.name, condition=condition, scenario_version=scenario.version,
        text_hash=scenario.text_hash(condition), prompt_format=model.spec.prompt_format,
        enable_thinking=enable_thinking, prompt=prompt, n_prompt_tokens=generation.n_prompt_tokens,
        response=generation.text, think=split.think, answer=split.answer, think_closed=split.think_closed,
        finished=generation.finished, n_new_tokens=len(generation.token_ids), max_new_tokens=max_new_tokens,
        seconds=round(seconds, 3),
    )


def format_report(result: SmokeResult, identity: dict[str, Any]) -> str:
    """A short markdown report: what was loaded, how fast it generated, and the reply."""
    stop = "a stop token" if result.finished else f"the {result.max_new_tokens}-token limit (reply cut off)"
    think = "none" if result.think is None else ("closed" if result.think_closed else "unclosed (no answer)")
    lines = [
        f"# Smoke check: {result.model}",
        "",
        f"- weights: {identity['source']} `{identity['location']}`, sha256 `{identity['sha256']}`, revision "
        f"`{identity['revision']}`, dtype {identity['dtype']}; {identity['n_layers']} layers, d_model "
        f"{identity['d_model']}",
        f"- prompt: scenario condition `{result.condition}` (version {result.scenario_version}, text hash "
        f"`{result.text_hash}`), {result.prompt_format} format, {result.n_prompt_tokens} tokens",
        f"- greedy reply: {result.n_new_tokens} tokens in {result.seconds:.1f} s "
        f"({result.tokens_per_second:.1f} tokens/s), ended by {stop}; deliberation: {think}",
        "",
        "## Answer",
        "",
        result.answer or "_(empty)_",
    ]
    if result.think:
        lines += ["", "## Deliberation", "", result.think]
    return "\n".join(lines)


def run_smoke_job(model: LoadedModel, config: dict[str, Any], *, scenario: Scenario, condition: str = "baseline",
                  max_new_tokens: int = 200, enable_thinking: bool | None = None,
                  runs_root: str | Path | None = None) -> tuple[SmokeResult, RunDir]:
    """Run :func:`run_smoke` and write ``results/smoke.json`` and ``report.md`` to a new run directory.

    The run directory is created only once the reply exists: a failed smoke check (bad prompt, context overflow)
    leaves no half-empty run behind.
    """
    log.info("generating up to %d tokens (greedy) ...", max_new_tokens)
    result = run_smoke(model, condition=condition, max_new_tokens=max_new_tokens, enable_thinking=enable_thinking,
                       scenario=scenario)
    identity = model.identity.to_dict()
    run = RunDir.create("smoke", config.get("model", model.spec.name), config, root=runs_root,
                        model_identity=identity)
    with run:  # completed, or failed with the error: never left running by a library call
        run.write_json("smoke.json", {**dataclasses.asdict(result), "tokens_per_second": result.tokens_per_second})
        run.write_report(format_report(result, identity))
    log.info("%d tokens in %.1f s; answer: %s", result.n_new_tokens, result.seconds,
             (result.answer[:200] + "...") if len(result.answer) > 200 else result.answer or "(empty)")
    return result, run
