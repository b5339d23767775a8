"""End-to-end smoke check of one model: ``python -m experiments.smoke [--model M] [--max-new-tokens N]``.

Loads the model, renders the Veth scenario prompt in the model's own format (chat template, or document framing for a
base model), greedy-generates one reply, splits its deliberation from its answer, and writes a run directory
(``config.json``, ``manifest.json`` with the model's identity, ``results/smoke.json``, ``report.md``). Run it first on
a new machine or with a new model: it exercises loading, prompting, generation and run directories in about a minute
on CPU for the embedded model. Run directories go under ``runs/`` (or ``$VETH_RUNS``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from activations.generation import generate_detailed
from activations.models import LoadedModel
from common.prompts import split_response
from activations.prompts import render_prompt
from behaviour.scenario import Scenario, load_scenario
from experiments.cli import add_model_args, add_run_args, format_model_list, load_from_args, parse_run_args, run_main
from common.rundir import RunDir

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


def format_report(result: SmokeResult, identity: dict) -> str:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.smoke", description=__doc__.splitlines()[0])
    add_model_args(parser)
    add_run_args(parser)
    parser.add_argument("--scenario", type=Path, default=None,
                        help="scenario file (default: configs/scenario/veth.yaml)")
    parser.add_argument("--condition", default="baseline", help="scenario condition (default: baseline)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="length limit of the reply (default 200)")
    parser.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                        help="switch a thinking model's <think> mode on or off (default: the template's default)")
    args = parse_run_args(parser, argv)
    if args.list_models:
        print(format_model_list())
        return 0
    scenario = load_scenario(args.scenario)
    scenario.prompt(args.condition)  # a bad condition fails before the model is loaded
    log.info("loading %s ...", args.model)
    model = load_from_args(args)
    log.info("generating up to %d tokens (greedy) ...", args.max_new_tokens)
    result = run_smoke(model, condition=args.condition, max_new_tokens=args.max_new_tokens,
                       enable_thinking=args.thinking, scenario=scenario)
    # One short step, so the run directory is written only once it has something to show: a failed smoke check
    # (bad prompt, context overflow) leaves no half-empty run behind.
    config = {key: value for key, value in vars(args).items() if key != "list_models"}
    run = RunDir.create("smoke", args.model, config, model_identity=model.identity.to_dict(), root=args.runs)
    run.write_json("smoke.json", {**dataclasses.asdict(result), "tokens_per_second": result.tokens_per_second})
    run.write_report(format_report(result, model.identity.to_dict()))
    log.info("%d tokens in %.1f s; answer: %s", result.n_new_tokens, result.seconds,
             (result.answer[:200] + "...") if len(result.answer) > 200 else result.answer or "(empty)")
    print(run.path)
    return 0


if __name__ == "__main__":
    run_main(main)
