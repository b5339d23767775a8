"""The Veth scenario as an Inspect (``inspect_ai``) task, scored by our judge, and Inspect logs read back as trial rows.

Run it with any provider Inspect supports (needs the ``inspect`` extra: ``pip install -e '.[inspect]'``)::

    inspect eval behaviour/inspect_task.py --model openai/<model> -T conditions=baseline,threat -T n=20

- **Samples** are the scenario's conditions (``configs/scenario/veth.yaml``), ``n`` per condition. Each sample's id is
  our trial id (:func:`behaviour.trials.trial_id`: model key, condition, prompt hash, index), so an Inspect run and
  our trial store name the same trial the same way. The model key is :func:`behaviour.backends.served_model_key` of
  the Inspect model's name (what our ``--backend openai`` computes for a server without a ``root``); pass
  ``-T model_key=KEY`` to use another (e.g. the ``model_identity.key`` of an existing trial store). Each sample
  generates with its trial's own seed (:func:`behaviour.trials.trial_seed`).
- **Prompts**: ``prompt_format=chat`` (default) sends the condition's ``system`` and ``user`` texts as the system and
  user messages, exactly as written. Inspect is chat-first, so for a base model ``prompt_format=document`` sends the
  condition's base-model ``document`` as the only (user) message; a provider that applies no chat template (a
  completion endpoint, Inspect's ``hf/`` provider with a template-less base model) then continues the document as our
  local runner does.
- **Scorer**: our judge (``-T judge=SPEC``, a :func:`behaviour.judges.factory.get_judge` spec; default the project's
  default judge) on the final answer only, through :func:`behaviour.judges.scoring.judge_row`: think blocks and
  reasoning channels are dropped, a response cut off by ``max_tokens`` before its verdict abstains. An abstention
  scores ``"abstained"``; the score metadata holds every judgement field (label, needs_review, each ensemble member's
  label in ``members`` ...).
- **Metrics**: per condition, the rate of convergence converged / (trials - refused) with its Wilson 95% interval,
  its n and the abstentions, computed by :func:`behaviour.table.convergence_table` (the seed-format table).

:func:`log_rows` converts an Inspect log into trial rows, so ``python -m experiments.score --input LOG.eval`` gives
the same table and Fisher tests as a trial store.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspect_ai import Epochs, Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import (ChatMessage, ChatMessageSystem, ChatMessageUser, ContentReasoning, GenerateConfig,
                              ModelOutput, get_model)
from inspect_ai.scorer import (Metric, SampleScore, Score, ScoreReducer, Scorer, Target, metric, score_reducer,
                              scorer)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from behaviour.backends import served_model_key
from behaviour.judges.factory import DEFAULT_JUDGE, get_judge
from behaviour.judges.scoring import judge_row
from behaviour.scenario import Scenario, load_scenario
from behaviour.table import convergence_table
from behaviour.trials import expand_conditions, plan_trials
from common.errors import ConfigError

__all__ = ["ABSTAINED", "PROMPT_FORMATS", "convergence", "log_rows", "one_trial", "scenario_samples", "trial_row", "veth",
           "veth_judge", "veth_generate"]

PROMPT_FORMATS = ("chat", "document")
ABSTAINED = "abstained"  # the score value of a trial the judge abstained on
_CUT_OFF = ("max_tokens", "model_length")  # stop reasons that mean the response was cut off


def _split(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def _messages(scenario: Scenario, condition: str, prompt_format: str) -> list[ChatMessage]:
    source = scenario.prompt(condition)
    if prompt_format == "document":
        return [ChatMessageUser(content=source.document or "")]
    system = [ChatMessageSystem(content=source.system)] if source.system else []
    return [*system, ChatMessageUser(content=source.user)]


def scenario_samples(scenario: Scenario, conditions: Sequence[str], n: int, *, model_key: str,
                     prompt_format: str = "chat", base_seed: int = 0) -> list[Sample]:
    """One Inspect sample per trial of :func:`behaviour.trials.plan_trials`, with the trial's id, seed and wording."""
    if prompt_format not in PROMPT_FORMATS:
        raise ConfigError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
    specs = plan_trials(model_key, scenario, expand_conditions(scenario, conditions), n, base_seed=base_seed)
    scenario_info = {"name": scenario.name, "version": scenario.version}
    return [Sample(input=_messages(scenario, spec.condition, prompt_format), id=spec.id,
                   metadata={"condition": spec.condition, "base_condition": spec.base_condition,
                             "trial_index": spec.index, "prompt_hash": spec.prompt_hash, "seed": spec.seed,
                             "prompt_format": prompt_format, "model_key": model_key, "scenario": scenario_info})
            for spec in specs]


@solver
def veth_generate() -> Solver:
    """Generate once with the trial's own seed (from the sample metadata); no tools."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return await generate(state, tool_calls="none", seed=state.metadata["seed"])

    return solve


def _response(output: ModelOutput | None) -> str | None:
    """The raw response as our trial store keeps it: a separate reasoning channel is put back as a ``<think>`` block
    (as :mod:`behaviour.trials` does for vLLM), so the judge drops it exactly as it drops one in the text."""
    if output is None or not output.choices:
        return None
    message = output.message
    reasoning = [c.reasoning for c in message.content if isinstance(c, ContentReasoning)] \
        if not isinstance(message.content, str) else []
    text = message.text
    return f"<think>\n{chr(10).join(reasoning)}\n</think>\n\n{text}" if reasoning else text


def trial_row(sample_id: str | int | None, metadata: dict[str, Any], output: ModelOutput | None, model: str,
              error: str | None = None) -> dict[str, Any]:
    """One Inspect sample (a running one's state, or a logged one) as our trial row: id, model, condition, response,
    finished ...; the scorer and :func:`log_rows` both use it, so they judge the same row."""
    stop = output.stop_reason if output is not None and output.choices else None
    usage = output.usage if output is not None else None
    return {"id": str(sample_id), "model": model, "backend": "inspect",
            "model_identity": {"name": model, "source": "inspect", "key": metadata.get("model_key")},
            "scenario": metadata.get("scenario"), "condition": metadata.get("condition"),
            "base_condition": metadata.get("base_condition"), "trial_index": metadata.get("trial_index"),
            "prompt_hash": metadata.get("prompt_hash"), "prompt_format": metadata.get("prompt_format"),
            "seed": metadata.get("seed"), "response": _response(output),
            # "unknown": the provider did not say; then the judge's scoring path looks at the text (was_cut_off)
            "finished": None if stop in (None, "unknown") else stop not in _CUT_OFF,
            "n_tokens": usage.output_tokens if usage is not None else None, "error": error}


def _judgement_score(judgement_fields: dict[str, Any]) -> Score:
    label = judgement_fields["label"]
    return Score(value=label if label is not None else ABSTAINED, answer=judgement_fields["final_verdict"],
                 explanation=judgement_fields["rationale"], metadata=judgement_fields)


@score_reducer(name="veth_trial")
def one_trial() -> ScoreReducer:
    """Keeps a sample's one score as it is (Inspect's default reducer would turn the label into a number). A trial is
    one sample: more trials are ``-T n=...`` (each with its own id and seed), not ``--epochs``."""

    def reduce(scores: list[Score]) -> Score:
        if len(scores) != 1:
            raise ConfigError(f"got {len(scores)} epochs of one trial; run more trials with -T n=N, not --epochs")
        return scores[0]

    return reduce


def _scores_table(scores: list[SampleScore]) -> Any:
    rows = [{"condition": (s.sample_metadata or {}).get("condition", "?"), **(s.score.metadata or {})}
            for s in scores]
    return convergence_table(rows, by=("condition",))


@metric
def convergence() -> Metric:
    """Per condition: ``<c>_rate`` = converged / (trials - refused), ``<c>_ci_low``/``<c>_ci_high`` (Wilson 95%),
    ``<c>_n`` (trials - refused) and ``<c>_abstained``; a condition whose every trial was refused has no rate."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        values: dict[str, float] = {}
        for cell in _scores_table(scores).cells:
            name = cell.key[0]
            if cell.rate is not None:
                low, high = cell.ci
                values.update({f"{name}_rate": cell.rate, f"{name}_ci_low": low, f"{name}_ci_high": high})
            values.update({f"{name}_n": float(cell.engaged), f"{name}_abstained": float(cell.unscored)})
        return values

    return compute


@scorer(metrics=[convergence()])
def veth_judge(judge: str = DEFAULT_JUDGE) -> Scorer:
    """Our judge on the final answer only (:func:`behaviour.judges.scoring.judge_row`); see the module docstring."""
    the_judge = get_judge(judge)
    lock = asyncio.Lock()  # judges are not written for concurrent calls; one at a time, off the event loop

    async def score(state: TaskState, target: Target) -> Score:
        row = trial_row(state.sample_id, state.metadata, state.output, str(state.model))
        async with lock:
            judgement = await asyncio.to_thread(judge_row, row, the_judge)
        return _judgement_score({**judgement.to_dict(), "finished": row["finished"]})

    return score


@task
def veth(conditions: str | list[str] = "baseline,threat", n: int = 20, judge: str = DEFAULT_JUDGE,
         prompt_format: str = "chat", model_key: str | None = None, base_seed: int = 0,
         scenario: str | None = None, temperature: float = 0.7, top_p: float = 0.95,
         max_tokens: int = 1024) -> Task:
    """The Veth scenario: ``n`` trials of each condition, judged by ``judge``; sampling defaults as our trial runner's
    (``--temperature``/``--top-p``/``--max-tokens`` on the command line override them)."""
    if model_key is None:
        try:  # the model eval() is running: inspect resolves tasks with it active
            model_key = served_model_key(get_model().name)
        except ValueError:
            raise ConfigError("no Inspect model is active to name the trials by; run the task through inspect eval "
                              "(or eval(veth, model=...)), or pass model_key") from None
    loaded = load_scenario(scenario)
    samples = scenario_samples(loaded, _split(conditions), int(n), model_key=model_key, prompt_format=prompt_format,
                               base_seed=int(base_seed))
    return Task(dataset=MemoryDataset(samples, name=f"{loaded.name}-{loaded.version}"), solver=veth_generate(),
                scorer=veth_judge(judge), epochs=Epochs(1, one_trial()), config=GenerateConfig(temperature=temperature, top_p=top_p,
                                                               max_tokens=max_tokens))


def log_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The samples of an Inspect eval log (``.eval`` or ``.json``) as trial rows (:func:`trial_row`), unjudged."""
    path = Path(path)
    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # inspect raises several kinds for a file that is not a log
        raise ConfigError(f"{path} is not a readable Inspect eval log ({type(exc).__name__}: {exc}); pass the .eval "
                          "or .json file inspect eval wrote (see inspect view / the logs/ folder)") from None
    if not log.samples:
        raise ConfigError(f"{path} holds no samples (status {log.status}); was the eval run with --no-log-samples "
                          "or stopped before any sample finished?")
    return [trial_row(s.id, s.metadata, s.output, log.eval.model, str(s.error.message) if s.error else None)
            for s in log.samples]
