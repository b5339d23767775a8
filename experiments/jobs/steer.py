"""The framing-shift steering job: can adding a concept direction reverse the 8B "framing shift"?

Steps (each writes its results before the next starts):

1. config checked before the model loads (:meth:`SteerConfig.validate`); verdict tokens, layers and directions checked
   against the model before any forward pass;
2. directions: a probe run's saved directions, or a difference of means over the concept data; plus controls: the
   negated direction, the other concept's direction, ``n_random`` random directions (all unit, so any alpha gives
   them the same norm);
3. typical residual norm per layer on a reference set (``results/norms.json``): alpha is relative to it;
4. cheap metric sweep, layers x alphas x directions as batched forward passes: log-odds of the verdict continuations
   after prompts ending in "Final verdict:" (``results/sweep.json``);
5. side effects per setting: KL of next-token distributions on neutral prompts, perplexity on a neutral text
   (``results/side_effects.json``);
6. the layer-choice rule (:mod:`interventions.steering_analysis`) and the comparison with random directions
   (``results/analysis.json``);
7. confirmation generation at the selected settings (alpha 0 and a random direction of the same norm included), each
   row (our ``prefill``, the model's continuation as ``response``) scored through the shared row scoring
   (:func:`behaviour.judges.scoring.score_rows`: the verdict must be the model's own), the convergence table's rate
   converged / (trials - refused) with Wilson intervals (``results/generations.jsonl``, ``results/confirmation.json``);
8. figures and ``report.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activations.generation import row_seed
from activations.models import LoadedModel
from activations.prompts import render_prompt
from behaviour.judges.factory import DEFAULT_JUDGE, check_judge_spec
from behaviour.judges.scoring import score_rows
from behaviour.rates import RATE_DEFINITION
from behaviour.table import abstention_reason, convergence_table, effective_label
from behaviour.scenario import load_scenario
from common import REPO_ROOT
from common.errors import ConfigError
from experiments.jobs.backends import get_judge  # local:<model> judges load through the model side
from experiments.jobs.trials import run_rates
from common.fileio import atomic_write_bytes, atomic_write_text
from common.yamlfile import load_yaml, load_yaml_mapping
from common.jsonl import append_jsonl, dumps_jsonl, read_jsonl_lenient
from common.rundir import RunDir
from interventions.directions_source import (
    SteeringDirections, concept_mean_differences, directions_from_run, normalise_concept,
)
from interventions.gguf_export import export_control_vector, llama_cpp_layer, steering_vector
from interventions.steering import (
    POSITION_RULES, STEER_HOOKS, ResidualNorms, Steer, generate_steered, measure_residual_norms, plan_for,
    steered_forward,
)
from interventions.steering_analysis import (
    RANDOM_PREFIX, auto_layers, compare_to_random, effects, select_setting, side_effect_table,
)
from interventions.verdict import VerdictTokens, resolve_verdict_tokens, verdict_log_odds

log = logging.getLogger(__name__)

DEFAULT_CONFIG = REPO_ROOT / "configs" / "steering" / "framing_shift.yaml"
TUPLE_FIELDS = ("concepts", "alphas", "metric_prompts", "heldout_prompts", "against", "proceed",
                "generation_conditions", "layers")


@dataclass
class SteerConfig:
    """Everything the job depends on (recorded in ``config.json``)."""

    scenario: str = "configs/scenario/veth.yaml"
    condition: str = "baseline"
    prefills: str = "configs/steering/prefills.yaml"
    neutral: str = "configs/steering/neutral.yaml"
    concepts: tuple[str, ...] = ("interest_recognition", "perspective_taking")
    directions: str | None = None
    estimator: str = "mean_diff"
    max_pairs: int = 48
    hook: str = "resid_post"
    positions: str = "all"
    layers: tuple[int, ...] | None = None
    n_auto_layers: int = 4
    skip_last_fraction: float = 0.2
    alphas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    n_random: int = 6
    metric_prompts: tuple[str, ...] = ("plain", "after_recognition", "after_shift")
    heldout_prompts: tuple[str, ...] = ("recognition_v2", "shift_v2", "recognition_p1", "shift_p2")
    against: tuple[str, ...] = (" No",)
    proceed: tuple[str, ...] = (" Yes",)
    kl_threshold: float = 0.1
    generation_conditions: tuple[str, ...] = ("recognised", "plain")
    n_samples: int = 8
    confirm_alpha_range: bool = False
    max_new_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.95
    judge: str = DEFAULT_JUDGE
    seed: int = 0
    batch_size: int = 8

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, **overrides: Any) -> SteerConfig:
        path = Path(path) if path is not None else DEFAULT_CONFIG
        if not path.exists():
            raise ConfigError(f"steering config {path} does not exist; see configs/steering/framing_shift.yaml")
        raw = load_yaml_mapping(path, "steering config")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}")
        values = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
        for key in TUPLE_FIELDS:
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_run(cls, run: RunDir) -> SteerConfig:
        """The configuration a run directory was started with (to resume it)."""
        stored = run.config
        if stored.get("experiment") != "steer":
            raise ConfigError(f"{run.path} is a {stored.get('experiment')!r} run, not a steering run")
        values = {f.name: stored[f.name] for f in fields(cls) if f.name in stored}
        values.setdefault("heldout_prompts", ())  # a run from before the held-out split: its sweep has none
        for key in TUPLE_FIELDS:
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else REPO_ROOT / p

    def validate(self) -> None:
        """Everything that can be checked without the model; raises :class:`ConfigError`."""
        self.concepts = tuple(normalise_concept(c) for c in self.concepts)
        if not self.concepts:
            raise ConfigError("give at least one concept")
        if self.hook not in STEER_HOOKS:
            raise ConfigError(f"unknown hook {self.hook!r}; steer at one of {', '.join(STEER_HOOKS)}")
        if self.positions not in POSITION_RULES:
            raise ConfigError(f"unknown position rule {self.positions!r}; choose one of {', '.join(POSITION_RULES)}")
        bad = [a for a in self.alphas if not isinstance(a, (int, float)) or not math.isfinite(float(a))]
        if bad or not self.alphas:
            raise ConfigError(f"alphas must be finite numbers, got {list(self.alphas)}")
        if any(float(a) == 0 for a in self.alphas):
            self.alphas = tuple(a for a in self.alphas if float(a) != 0)  # alpha 0 is always run once
        if self.layers is not None and any(not isinstance(x, int) or x < 0 for x in self.layers):
            raise ConfigError(f"layers must be non-negative integers, got {list(self.layers)}")
        if self.n_random < 5:
            raise ConfigError(f"n_random must be at least 5 (random-direction controls), got {self.n_random}")
        if not 0 <= self.skip_last_fraction < 1:
            raise ConfigError("skip_last_fraction must be in [0, 1)")
        if self.n_samples < 0 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("n_samples must be >= 0, max_new_tokens and batch_size >= 1")
        if self.kl_threshold <= 0:
            raise ConfigError("kl_threshold must be > 0")
        if self.directions is not None and not Path(self.directions).is_dir():
            raise ConfigError(f"--directions {self.directions}: no such directory; pass a probe run directory")
        prefills = load_prefills(self.path(self.prefills))
        for name in self.metric_prompts:
            if name not in prefills["metric_prompts"]:
                raise ConfigError(f"unknown metric prompt {name!r}; {self.prefills} defines "
                                  f"{sorted(prefills['metric_prompts'])}")
        scenario = load_scenario(self.path(self.scenario))
        for name in self.heldout_prompts:
            if name not in prefills["heldout_prompts"]:
                raise ConfigError(f"unknown held-out prompt {name!r}; {self.prefills} defines "
                                  f"{sorted(prefills['heldout_prompts'])}")
            if name in self.metric_prompts:
                raise ConfigError(f"{name!r} is both a metric prompt and a held-out prompt; a held-out prompt must "
                                  "not be one the setting is chosen on")
            scenario.prompt(prefills["heldout_prompts"][name]["condition"] or self.condition)
        for name in self.generation_conditions:
            if name not in prefills["generation_prefills"]:
                raise ConfigError(f"unknown generation condition {name!r}; {self.prefills} defines "
                                  f"{sorted(prefills['generation_prefills'])}")
        load_neutral(self.path(self.neutral))
        scenario.prompt(self.condition)
        check_judge_spec(self.judge)


def _read_yaml(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    raw = load_yaml(path, "steering input")
    if not isinstance(raw, dict) or any(k not in raw for k in required):
        raise ConfigError(f"{path}: expected a mapping with {', '.join(required)}")
    raw["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return raw


def load_prefills(path: Path) -> dict[str, Any]:
    """The prefill file, with each metric prompt and generation prefill resolved to text (steps joined by newlines)."""
    raw = _read_yaml(path, ("steps", "metric_prompts", "generation_prefills"))
    steps = raw["steps"]

    def resolve(items: list[str], where: str) -> str:
        if not isinstance(items, list):
            raise ConfigError(f"{path}: {where} must be a list of step names or texts")
        return "\n".join(steps.get(x, x) for x in items)

    raw["metric_prompts"] = {k: resolve(v, k) for k, v in raw["metric_prompts"].items()}
    heldout = raw.get("heldout_prompts") or {}
    if not isinstance(heldout, dict) or any(not isinstance(v, dict) or "steps" not in v or set(v) - {"steps",
                                                                                                     "condition"}
                                            for v in heldout.values()):
        raise ConfigError(f"{path}: heldout_prompts must map names to {{steps: [...], condition: <optional>}}")
    raw["heldout_prompts"] = {k: {"condition": v.get("condition"), "text": resolve(v["steps"], k)}
                              for k, v in heldout.items()}
    raw["generation_prefills"] = {k: resolve(v, k) for k, v in raw["generation_prefills"].items()}
    return raw


def load_neutral(path: Path) -> dict[str, Any]:
    raw = _read_yaml(path, ("prompts", "text", "reference"))
    if not raw["prompts"] or not raw["text"]:
        raise ConfigError(f"{path}: needs at least one neutral prompt and a neutral text")
    return raw


def assistant_text(rendered: str, prefill: str) -> str:
    """Append ``prefill`` to a rendered prompt; a base document ending in "Step 1:" does not get it twice."""
    if not prefill:
        return rendered
    if rendered.rstrip().endswith("Step 1:") and prefill.startswith("Step 1:"):
        return rendered.rstrip() + prefill[len("Step 1:"):]
    return rendered + prefill


# ---------------------------------------------------------------------------------------------------------------


def build_directions(model: LoadedModel, cfg: SteerConfig, layers: list[int]) -> tuple[SteeringDirections,
                                                                                     dict[str, dict[int, np.ndarray]]]:
    """The concept directions and their controls, unit length, per layer: name -> layer -> vector."""
    if cfg.directions:
        source = directions_from_run(cfg.directions, model, concepts=cfg.concepts, estimator=cfg.estimator)
        if source.hook != cfg.hook:
            raise ConfigError(f"the run's directions were read at {source.hook}; pass --hook {source.hook}")
        for concept in cfg.concepts:
            missing = [L for L in layers if L not in source.vectors[concept]]
            if missing:
                raise ConfigError(f"{cfg.directions} has no {concept} direction at layer(s) {missing}")
    else:
        log.info("directions: difference of means over up to %d concept pairs at %d layers", cfg.max_pairs,
                 len(layers))
        source = concept_mean_differences(model, cfg.concepts, layers, hook=cfg.hook, max_pairs=cfg.max_pairs,
                                          seed=cfg.seed, batch_size=cfg.batch_size, progress=True)
    unit = {c: {L: v / np.linalg.norm(v) for L, v in source.vectors[c].items() if L in layers} for c in cfg.concepts}
    named: dict[str, dict[int, np.ndarray]] = {}
    for c in cfg.concepts:
        named[c] = unit[c]
        named[f"-{c}"] = {L: -v for L, v in unit[c].items()}
    rng = np.random.default_rng(cfg.seed)
    for k in range(cfg.n_random):
        v = rng.standard_normal(model.d_model)
        named[f"{RANDOM_PREFIX}{k}"] = {L: (v / np.linalg.norm(v)).astype(np.float32) for L in layers}
    return source, named


def _metric_reducer(tokens: VerdictTokens):
    def reduce(logits: torch.Tensor, mask: torch.Tensor, index: list[int]) -> list[float]:
        return verdict_log_odds(logits[:, -1, :], tokens).cpu().tolist()
    return reduce


def run_metric_sweep(model: LoadedModel, cfg: SteerConfig, prompts: dict[str, str], named: dict[str, dict[int, Any]],
                     layers: list[int], norms: ResidualNorms, tokens: VerdictTokens) -> list[dict[str, Any]]:
    """Every (prompt, layer, direction, alpha) plus each prompt unsteered, as batched forward passes."""
    settings = [(p, None, None, 0.0) for p in prompts]
    settings += [(p, L, d, float(a)) for p in prompts for L in layers for d in named for a in cfg.alphas]
    rows = [[] if L is None else [Steer(named[d][L], a, (L,), hook=cfg.hook, positions=cfg.positions)]
            for _, L, d, a in settings]
    encoded = {p: model.encode(text) for p, text in prompts.items()}
    plan = plan_for(model, rows, norms)
    start = time.perf_counter()
    values = steered_forward(model, [encoded[p] for p, *_ in settings], plan, _metric_reducer(tokens),
                             batch_size=cfg.batch_size, progress=True, last_only=True)
    log.info("metric sweep: %d forward rows in %.0f s", len(settings), time.perf_counter() - start)
    return [{"prompt": p, "layer": L, "direction": d, "alpha": a, "metric": float(v)}
            for (p, L, d, a), v in zip(settings, values)]


def run_side_effects(model: LoadedModel, cfg: SteerConfig, neutral: dict[str, Any], named: dict[str, dict[int, Any]],
                     layers: list[int], norms: ResidualNorms) -> list[dict[str, Any]]:
    """Mean KL(unsteered || steered) over every position of the neutral prompts, and perplexity on the text."""
    texts = [*neutral["prompts"], neutral["text"]]
    encoded = [model.encode(t) for t in texts]
    n_items = len(texts)
    base_rows = [[] for _ in texts]
    base_plan = plan_for(model, base_rows)

    def logprobs(logits: torch.Tensor, mask: torch.Tensor, index: list[int]) -> list[torch.Tensor]:
        out = []
        for row, i in enumerate(index):
            n = len(encoded[i % n_items])
            out.append(torch.log_softmax(logits[row, -n:, :].float(), dim=-1).cpu())
        return out

    base = steered_forward(model, encoded, base_plan, logprobs, batch_size=cfg.batch_size)
    settings = [(None, None, 0.0)] + [(L, d, float(a)) for L in layers for d in named for a in cfg.alphas]
    rows, token_rows = [], []
    for L, d, a in settings:
        for i in range(n_items):
            rows.append([] if L is None else [Steer(named[d][L], a, (L,), hook=cfg.hook, positions=cfg.positions)])
            token_rows.append(encoded[i])

    def reduce(logits: torch.Tensor, mask: torch.Tensor, index: list[int]) -> list[float]:
        out = []
        for row, i in enumerate(index):
            item = i % n_items
            n = len(encoded[item])
            lp = torch.log_softmax(logits[row, -n:, :].float(), dim=-1).cpu()
            if item < n_items - 1:  # neutral prompt: KL at every position
                ref = base[item]
                out.append(float((ref.exp() * (ref - lp)).sum(-1).mean()))
            else:  # neutral text: perplexity of its own tokens
                ids = torch.tensor(encoded[item][1:])
                nll = -lp[:-1].gather(1, ids[:, None]).mean()
                out.append(float(torch.exp(nll)))
        return out

    start = time.perf_counter()
    values = steered_forward(model, token_rows, plan_for(model, rows, norms), reduce, batch_size=cfg.batch_size,
                             progress=True)
    log.info("side effects: %d forward rows in %.0f s", len(token_rows), time.perf_counter() - start)
    records = []
    for s, (L, d, a) in enumerate(settings):
        chunk = values[s * n_items:(s + 1) * n_items]
        for layer in (layers if L is None else [L]):  # the unsteered reference applies at every layer
            for direction in (named if d is None else [d]):
                records.append({"layer": layer, "direction": direction, "alpha": a,
                                "kl": float(np.mean(chunk[:-1])), "perplexity": chunk[-1],
                                "kl_per_prompt": chunk[:-1]})
    return records


def run_confirmation(model: LoadedModel, cfg: SteerConfig, scenario_text: str, prefills: dict[str, str],
                     named: dict[str, dict[int, Any]], selections: dict[str, Any], norms: ResidualNorms,
                     run: RunDir) -> dict[str, Any]:
    """n samples per (condition, setting): alpha 0, each selected concept setting, a random direction there."""
    settings: list[tuple[str, str, int | None, float]] = [("unsteered", "none", None, 0.0)]
    control = f"{RANDOM_PREFIX}0"
    for concept, sel in selections.items():
        if sel.layer is None:
            continue
        # The selected alpha, or every swept alpha up to it (a dose-response in the judged text).
        alphas = [a for a in cfg.alphas if 0 < a <= sel.alpha] if cfg.confirm_alpha_range else [sel.alpha]
        for a in alphas:
            settings.append((f"{concept}@L{sel.layer},a{a:g}", concept, sel.layer, float(a)))
            settings.append((f"{control}@L{sel.layer},a{a:g}", control, sel.layer, float(a)))
    settings = list(dict.fromkeys(settings))
    judge = get_judge(cfg.judge)
    prompts, rows, meta = [], [], []
    for condition in cfg.generation_conditions:
        prefill = prefills[condition]
        text = assistant_text(scenario_text, prefill)
        for name, d, L, a in settings:
            for k in range(cfg.n_samples):
                prompts.append(text)
                rows.append([] if L is None else [Steer(named[d][L], a, (L,), hook=cfg.hook, positions=cfg.positions)])
                meta.append({"id": _sample_id(condition, name, k), "condition": condition, "setting": name,
                             "direction": d, "layer": L, "alpha": a, "sample": k, "prefill": prefill})
    if not prompts:
        return {"settings": [], "cells": []}
    # One seed per sample, fixed by its position in the plan, so a resumed run draws the same samples.
    seeds = [row_seed(cfg.seed, i) for i in range(len(prompts))]
    path = run.path / "results" / "generations.jsonl"
    records = _resume_generations(path, meta)
    if records:
        log.info("confirmation: resuming, %d of %d samples already stored", len(records), len(prompts))
    plan = plan_for(model, rows, norms)
    start = time.perf_counter()
    for first in range(len(records), len(prompts), cfg.batch_size):
        index = list(range(first, min(first + cfg.batch_size, len(prompts))))
        gens = generate_steered(model, [prompts[i] for i in index], plan.subset(index), batch_size=len(index),
                                seeds=[seeds[i] for i in index], max_new_tokens=cfg.max_new_tokens,
                                temperature=cfg.temperature, top_p=cfg.top_p, attention="sdpa")
        # The row keeps our prefill apart from the model's continuation: the shared row scoring judges the model's
        # own verdict, with the prefill as context (behaviour.judges.scoring), and the cut-off rule of trials.
        generated = [{**meta[i], "response": g.text, "seed": g.seed, "finished": g.finished}
                     for i, g in zip(index, gens)]
        batch = list(score_rows(generated, judge))
        append_jsonl(path, batch)  # fsynced per batch: an interruption loses at most the batch in flight
        records += batch
        log.info("confirmation: %d/%d samples (%.0f s)", len(records), len(prompts), time.perf_counter() - start)
    if any(r.get("judge") != judge.name for r in records):  # stored by an older version or another judge
        records = list(score_rows(records, judge))
        atomic_write_text(path, dumps_jsonl(records))
    cells = confirmation_cells(records, settings)
    # Judge-only rates, or all three columns once a blind sample of these rows is filled (review_sample.csv).
    rates = run_rates(run, records, by=("condition", "setting"))
    return {"settings": [s[0] for s in settings], "cells": cells, "judge": judge.name,
            "rate_definition": RATE_DEFINITION, "abstained": abstention_counts(records),
            "rates_markdown": rates.to_markdown()}


def _sample_id(condition: str, setting: str, sample: int) -> str:
    """A generation's id (for the blind review sample and its rates): unique within the run's plan."""
    return f"{condition}/{setting}/{sample}"


def confirmation_cells(records: list[dict[str, Any]], settings: list[tuple[str, str, int | None, float]]
                       ) -> list[dict[str, Any]]:
    """One cell per (condition, setting): the convergence table's counts, rate and Wilson interval
    (:func:`behaviour.table.convergence_table`, so the rate is the table's converged / (trials - refused)), with the
    abstentions and their reasons."""
    where = {name: (d, L, a) for name, d, L, a in settings}
    table = convergence_table(records, by=("condition", "setting"))
    cells = []
    for cell in table.cells:
        condition, setting = cell.key
        d, L, a = where[setting]
        mine = [r for r in records if r["condition"] == condition and r["setting"] == setting]
        cells.append({**cell.to_dict(table.by), "direction": d, "layer": L, "alpha": a,
                      "abstention_reasons": abstention_counts(mine)})
    return cells


def abstention_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows the judge abstained on, by reason (``no verdict in the continuation``, ``truncated`` ...)."""
    return dict(Counter(abstention_reason(r) for r in records if effective_label(r) is None))


_META_KEYS = ("condition", "setting", "sample")


def _resume_generations(path: Path, meta: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Samples already stored for this plan (a torn last line is dropped); another plan's samples are an error."""
    if not path.exists():
        return []
    rows, bad = read_jsonl_lenient(path)
    if bad:  # only a torn tail can be bad in a file we append to; rewrite without it
        atomic_write_text(path, dumps_jsonl(rows))
    rows = [_from_legacy(r) for r in rows]
    if len(rows) > len(meta):
        raise ConfigError(f"{path} holds {len(rows)} samples but this run plans {len(meta)}: it is another run's")
    for row, m in zip(rows, meta):
        if any(row.get(k) != m[k] for k in _META_KEYS):
            raise ConfigError(f"{path} holds {row.get('condition')}/{row.get('setting')} #{row.get('sample')} where "
                              f"this run plans {m['condition']}/{m['setting']} #{m['sample']}: resume with the "
                              "original settings or start a new run")
    return rows


def _from_legacy(row: dict[str, Any]) -> dict[str, Any]:
    """A sample stored before the prefill rule (``response`` = prefill + continuation, the continuation apart) in
    today's form, ``response`` = the model's continuation; it has no ``judge`` field, so it is scored again."""
    if "continuation" not in row:
        return row
    out = {k: v for k, v in row.items() if k not in ("continuation", "label", "final_verdict")}
    return {"id": _sample_id(row["condition"], row["setting"], row["sample"]), **out, "response": row["continuation"]}


def export_selected(model: LoadedModel, cfg: SteerConfig, named: dict[str, dict[int, Any]], selections: dict[str, Any],
                    norms: ResidualNorms, run: RunDir) -> dict[str, str]:
    """Each selected concept setting as a llama.cpp control vector (``control_vectors/<concept>.gguf``)."""
    out = {}
    hint = getattr(getattr(model.bridge.original_model, "config", None), "model_type", None) or model.spec.name
    for concept, sel in selections.items():
        if sel.layer is None:
            continue
        try:
            llama_cpp_layer(sel.layer, cfg.hook)
        except ConfigError as exc:
            log.info("not exported as a control vector: %s", exc)
            continue
        vec = steering_vector(named[concept][sel.layer], sel.alpha, norms.norms[sel.layer])
        path = export_control_vector(run.subdir("control_vectors") / f"{concept}.gguf", {sel.layer: vec},
                                     hook=cfg.hook, model_hint=str(hint), n_layers=model.n_layers,
                                     d_model=model.d_model,
                                     metadata={"concept": concept, "alpha": f"{sel.alpha:g}", "layer": str(sel.layer),
                                               "hook": cfg.hook, "model_key": model.identity.key})
        out[concept] = str(path.relative_to(run.path))
    return out


# ---------------------------------------------------------------------------------------------------------------


def _stage(run: RunDir, name: str, compute: Any) -> Any:
    """A stage's stored result when a resumed run already has it, else computed now and written."""
    path = run.path / "results" / name
    if path.exists():
        log.info("resuming: %s already computed", name)
        return json.loads(path.read_text())
    value = compute()
    run.write_json(name, value)
    return value


def _save_named(path: Path, named: dict[str, dict[int, np.ndarray]]) -> None:
    from safetensors.numpy import save

    tensors = {f"{name}@{layer}": np.asarray(v, dtype=np.float32) for name, by in named.items()
               for layer, v in by.items()}
    atomic_write_bytes(path, save(tensors))


def _load_named(path: Path) -> dict[str, dict[int, np.ndarray]]:
    from safetensors.numpy import load

    named: dict[str, dict[int, np.ndarray]] = {}
    for key, v in load(path.read_bytes()).items():
        name, layer = key.rsplit("@", 1)
        named.setdefault(name, {})[int(layer)] = v
    return named


def reported_effects(selections: dict[str, Any], comparisons: dict[str, list[dict[str, Any]]],
                     per_prompt: dict[str, dict[tuple[int, str, float], float]],
                     prompts: list[str]) -> dict[str, dict[str, Any]]:
    """Each selected setting's effect on the report prompts (held-out when there are any): the per-prompt effects,
    their mean with a t interval over prompts, and the random-direction comparison at that setting."""
    from common.stats import mean_interval

    out: dict[str, dict[str, Any]] = {}
    for concept, sel in selections.items():
        if sel.layer is None:
            out[concept] = {"layer": None, "reason": sel.reason}
            continue
        key = (sel.layer, concept, float(sel.alpha))
        values = {p: per_prompt[p][key] for p in prompts if key in per_prompt.get(p, {})}
        mean, ci = mean_interval(list(values.values()))
        comp = next((c for c in comparisons.get(concept, [])
                     if c["layer"] == sel.layer and c["alpha"] == float(sel.alpha)), None)
        out[concept] = {"layer": sel.layer, "alpha": sel.alpha, "prompts": prompts, "per_prompt": values,
                        "effect": mean, "ci95": list(ci), "n_prompts": len(values), "random": comp}
    return out


def check_against_model(model: LoadedModel, cfg: SteerConfig) -> tuple[VerdictTokens, list[int]]:
    """Checks that need the tokenizer or the model's size, before any forward pass: verdict tokens and layers."""
    tokens = resolve_verdict_tokens(model.tokenizer, cfg.against, cfg.proceed)
    n = model.n_layers
    layers = list(cfg.layers) if cfg.layers is not None else auto_layers(n, cfg.n_auto_layers, cfg.skip_last_fraction)
    bad = [L for L in layers if L >= n]
    if bad:
        raise ConfigError(f"layer(s) {bad} out of range; {model.identity.name} has layers 0..{n - 1}")
    if cfg.directions:  # other weights or another width: refused before the run directory is made
        directions_from_run(cfg.directions, model, concepts=cfg.concepts, estimator=cfg.estimator)
    return tokens, layers


def check_resumable(model: LoadedModel, run: RunDir) -> None:
    """A run is resumed only with the weights it started with."""
    manifest = json.loads((run.path / "manifest.json").read_text())
    key = (manifest.get("model") or {}).get("key")
    if key != model.identity.key:
        raise ConfigError(f"{run.path} was run on model key {key}, but the loaded model is {model.identity.key} "
                          f"({model.identity.name}); resume with the original --model/--weights/--dtype")


def run_steer_experiment(model: LoadedModel, cfg: SteerConfig, run: RunDir) -> dict[str, Any]:
    """Run every step and write the run directory; returns the analysis summary.

    Resumable: a stage whose result is already in ``run`` (directions, norms, sweep, side effects) is read back, and
    confirmation samples already stored are kept, so rerunning on the same directory continues where it stopped.
    """
    cfg.validate()
    tokens, layers = check_against_model(model, cfg)
    n = model.n_layers
    prefills = load_prefills(cfg.path(cfg.prefills))
    neutral = load_neutral(cfg.path(cfg.neutral))
    scenario = load_scenario(cfg.path(cfg.scenario))
    scenario_text = render_prompt(scenario.prompt(cfg.condition), model.tokenizer, model.spec)
    metric_prompts = {p: assistant_text(scenario_text, prefills["metric_prompts"][p]) for p in cfg.metric_prompts}
    heldout_prompts = {}
    for name in cfg.heldout_prompts:
        item = prefills["heldout_prompts"][name]
        rendered = render_prompt(scenario.prompt(item["condition"] or cfg.condition), model.tokenizer, model.spec)
        heldout_prompts[name] = assistant_text(rendered, item["text"])
    run.write_json("inputs.json", {"verdict_tokens": tokens.to_dict(), "layers": layers,
                                   "metric_prompts": metric_prompts, "heldout_prompts": heldout_prompts,
                                   "prefills_sha256": prefills["sha256"],
                                   "neutral_sha256": neutral["sha256"], "scenario_text_hash":
                                       scenario.text_hash(cfg.condition)})

    results = run.path / "results"
    if (results / "directions.safetensors").exists() and (results / "directions.json").exists():
        log.info("resuming: directions from %s", results / "directions.safetensors")
        info = json.loads((results / "directions.json").read_text())
        source = SteeringDirections(info["hook"], {}, info["source"])
        named = _load_named(results / "directions.safetensors")
    else:
        source, named = build_directions(model, cfg, layers)
        _save_named(results / "directions.safetensors", named)
        run.write_json("directions.json", {"source": source.source, "hook": source.hook, "names": list(named),
                                           "random_seed": cfg.seed})
    if (results / "norms.json").exists():
        norms = ResidualNorms.from_dict(json.loads((results / "norms.json").read_text()))
    else:
        norms = measure_residual_norms(model, [*neutral["reference"], *neutral["prompts"], scenario_text],
                                       hook=cfg.hook, batch_size=cfg.batch_size,
                                       reference=f"{cfg.neutral} reference + prompts + scenario")
        run.write_json("norms.json", norms.to_dict())

    sweep = _stage(run, "sweep.json", lambda: run_metric_sweep(model, cfg, {**metric_prompts, **heldout_prompts},
                                                               named, layers, norms, tokens))
    side = _stage(run, "side_effects.json", lambda: run_side_effects(model, cfg, neutral, named, layers, norms))

    # The held-out split: the setting is chosen on the selection prompts' effects; the effect and the comparison with
    # random directions are reported on the held-out prompts, which the choice never saw.
    eff = effects(r for r in sweep if r["prompt"] in metric_prompts)
    eff_report = effects(r for r in sweep if r["prompt"] in heldout_prompts) if heldout_prompts else eff
    side_tab = side_effect_table(side)
    selections = {c: select_setting(eff, side_tab, c, n_layers=n, kl_threshold=cfg.kl_threshold,
                                    skip_last_fraction=cfg.skip_last_fraction) for c in cfg.concepts}
    comparisons = {d: [c.to_dict() for c in compare_to_random(eff_report, d)]
                   for d in named if not d.startswith(RANDOM_PREFIX)}
    all_prompts = [*metric_prompts, *heldout_prompts]
    per_prompt = {p: effects([r for r in sweep if r["prompt"] == p]) for p in all_prompts}
    analysis = {
        "baseline_metric": {r["prompt"]: r["metric"] for r in sweep if r["alpha"] == 0},
        "split": {"selection_prompts": list(metric_prompts), "heldout_prompts": list(heldout_prompts),
                  "held_out": bool(heldout_prompts),
                  "rule": "layer and alpha chosen on the selection prompts; effects and random-direction comparisons "
                          "reported on the held-out prompts" if heldout_prompts else
                          "no held-out prompts: effects are reported on the prompts the setting was chosen on"},
        "effects": [{"layer": L, "direction": d, "alpha": a, "effect": v,
                     "heldout_effect": eff_report.get((L, d, a)),
                     "per_prompt": {p: per_prompt[p][(L, d, a)] for p in all_prompts},
                     **side_tab.get((L, d, a), {})} for (L, d, a), v in sorted(eff.items())],
        "selections": {c: s.to_dict() for c, s in selections.items()},
        "reported": reported_effects(selections, comparisons, per_prompt,
                                     list(heldout_prompts) or list(metric_prompts)),
        "comparisons": comparisons,
        "unsteered_side_effects": side_tab.get((layers[0], next(iter(named)), 0.0)),
    }
    run.write_json("analysis.json", analysis)

    exported = export_selected(model, cfg, named, selections, norms, run)
    if exported:
        analysis["control_vectors"] = exported
        run.write_json("analysis.json", analysis)

    confirmation = run_confirmation(model, cfg, scenario_text, prefills["generation_prefills"], named, selections,
                                    norms, run) if cfg.n_samples > 0 else {"settings": [], "cells": []}
    run.write_json("confirmation.json", confirmation)

    from experiments.jobs.steer_report import steer_figures, steer_report

    steer_figures(run, cfg, analysis, layers, confirmation)
    run.write_report(steer_report(model, cfg, layers, tokens, norms, source, analysis, confirmation))
    return {"selections": analysis["selections"], "run": str(run.path)}
