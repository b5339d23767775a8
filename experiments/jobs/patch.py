"""The single-trial patching job: exact patching of each component and direction, attribution patching on the same
grids, their agreement, heatmaps, ``results/effects.json`` and ``report.md``.

Layout of a run directory::

    results/effects.json      every grid (normalised values, raw log-odds, 95% intervals over noise samples, top cells)
    results/agreement.json    attribution vs exact per grid: Spearman, top-k overlap, largest disagreements
    results/pair.json         the texts, tokens per segment, the alignment and what was skipped and why
    figures/<direction>_<component>.png   layer x segment (token, head) heatmaps, exact beside attribution
    report.md
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from activations.models import LoadedModel
from activations.prompts import render_prompt
from behaviour.scenario import load_scenario
from common.errors import ConfigError
from common.rundir import RunDir
from interventions.attribution import Agreement, attribution_grid, compare, gradients
from interventions.patching import (COMPONENTS, PatchGrid, PatchPair, VerdictMetric,
                                    check_layers_heads, hook_name, patch_grid, prepare_runs, target_and_source)
from interventions.pairs import (load_trial_text, noise_pair, parse_replacements, symmetric_replace,
                                 text_pair)
from interventions.segments import Cell, check_direction
from interventions.verdict import DEFAULT_AGAINST, DEFAULT_PROCEED, resolve_verdict_tokens

log = logging.getLogger("experiments.jobs.patch")


@dataclass(frozen=True)
class PairSource:
    """Where the clean text comes from (a trial, a text or a scenario condition) and how it is corrupted (another
    trial, text or condition, symmetric replacements, or Gaussian noise on named segments)."""

    trials: str | None = None
    trial: str | None = None
    corrupted_trial: str | None = None
    clean: str | None = None
    corrupted: str | None = None
    clean_condition: str | None = None
    corrupted_condition: str | None = None
    response: str = "Final verdict:"
    corrupted_response: str | None = None
    scenario: str | None = None
    replace: tuple[str, ...] | list[str] = ()
    noise: tuple[str, ...] | list[str] = ()
    noise_scale: float = 3.0
    noise_samples: int = 8
    seed: int = 0


def build_pair(model: LoadedModel, src: PairSource) -> PatchPair:
    """The :class:`PatchPair` described by ``src`` in this model's tokenizer (and chat format, for conditions)."""
    tok = model.tokenizer

    def render(condition: str) -> str:
        return render_prompt(load_scenario(src.scenario).prompt(condition), tok, model.spec) + src.response

    if src.trial is not None:
        clean = load_trial_text(src.trials or "", src.trial)
    elif src.clean is not None:
        clean = src.clean
    elif src.clean_condition is not None:
        clean = render(src.clean_condition)
    else:
        raise ConfigError("give a clean source: a trial, a text or a scenario condition")
    if src.replace:
        return symmetric_replace(tok, clean, parse_replacements(src.replace))
    if src.noise:
        return noise_pair(tok, clean, list(src.noise), scale=src.noise_scale, samples=src.noise_samples,
                          seed=src.seed)
    if src.corrupted_trial is not None:
        return text_pair(tok, clean, load_trial_text(src.trials or "", src.corrupted_trial),
                         f"trial {src.corrupted_trial} (clean: trial {src.trial})")
    if src.corrupted is not None:
        return text_pair(tok, clean, src.corrupted)
    if src.corrupted_response is not None and src.clean_condition is not None:
        return text_pair(tok, clean, render(src.clean_condition).removesuffix(src.response) + src.corrupted_response,
                         "another response prefix on the same prompt")
    if src.corrupted_condition is not None:
        return text_pair(tok, clean, render(src.corrupted_condition),
                         f"condition {src.corrupted_condition} (clean: {src.clean_condition or 'given text'})")
    raise ConfigError("give a corruption: a trial, a text, a condition, replacements or noise segments")


@dataclass(frozen=True)
class PatchConfig:
    """What to patch. ``positions``: ``tokens``, ``segments`` or ``auto`` (tokens when the pair aligns by token and
    the patched window has at most ``token_limit`` tokens)."""

    components: tuple[str, ...] = COMPONENTS
    directions: tuple[str, ...] = ("denoising",)
    positions: str = "auto"
    window: int | None = None
    token_limit: int = 48
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    against: tuple[str, ...] = DEFAULT_AGAINST
    proceed: tuple[str, ...] = DEFAULT_PROCEED
    attribution: bool = True
    top_k: int = 5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(cfg: PatchConfig, model: LoadedModel) -> VerdictMetric:
    """Every check that needs no forward pass; returns the metric."""
    bad = [c for c in cfg.components if c not in COMPONENTS]
    if bad or not cfg.components:
        raise ConfigError(f"unknown component(s) {bad or '(none)'}; choose from {', '.join(COMPONENTS)}")
    for direction in cfg.directions:
        check_direction(direction)
    if cfg.positions not in ("auto", "tokens", "segments"):
        raise ConfigError(f"--positions {cfg.positions!r}: choose auto, tokens or segments")
    if cfg.window is not None and cfg.window < 1:
        raise ConfigError("--window must be at least 1 token")
    check_layers_heads(model.bridge, cfg.layers, cfg.heads)
    return VerdictMetric(resolve_verdict_tokens(model.tokenizer, cfg.against, cfg.proceed))


def choose_cells(pair: PatchPair, cfg: PatchConfig, direction: str, tokenizer: Any) -> tuple[list[Cell], str]:
    """The columns of the block-component grids, labelled for the heatmap (``*`` marks segments that differ)."""
    per = cfg.positions
    if per == "auto":
        span = pair.alignment.clean_len if cfg.window is None else min(cfg.window, pair.alignment.clean_len)
        per = "tokens" if pair.alignment.mode == "tokens" and span <= cfg.token_limit else "segments"
    if per == "tokens":
        cells = pair.alignment.cells(direction, "token", cfg.window)  # type: ignore[arg-type]
        ids = pair.clean[0].tolist()
        differing = set(pair.alignment.differing_positions)
        labels = [f"{c.label} {tokenizer.convert_ids_to_tokens(ids[int(c.label)])}"
                  f"{' *' if int(c.label) in differing else ''}" for c in cells]
        return [Cell(lab, c.target, c.source) for lab, c in zip(labels, cells)], "token"
    cells = pair.alignment.cells(direction, "segment")  # type: ignore[arg-type]
    marks = [p.differs for p in pair.alignment.pairs]
    return [Cell(c.label + (" *" if d else ""), c.target, c.source) for c, d in zip(cells, marks)], "segment"


def run_patch(model: LoadedModel, pair: PatchPair, cfg: PatchConfig, run: RunDir) -> dict[str, Any]:
    """Run every grid of ``cfg`` on ``pair``, write results, figures and the report into ``run``."""
    metric = validate(cfg, model)
    bridge = model.bridge
    layers, heads = check_layers_heads(bridge, cfg.layers, cfg.heads)
    names = [hook_name(c, layer) for c in cfg.components for layer in layers]
    run.write_json("pair.json", {"clean_text": pair.clean_text, "corrupted_text": pair.corrupted_text,
                                 "corruption": pair.corruption, "alignment": pair.alignment.to_dict(),
                                 "clean_tokens": pair.clean[0].tolist(),
                                 "corrupted_tokens": pair.corrupted[0].tolist()})
    start = time.perf_counter()
    clean, corrupted = prepare_runs(bridge, pair, names, metric)
    cache_s = time.perf_counter() - start
    log.info("clean log-odds %.3f, corrupted %.3f (mean of %d)", float(clean.metric.mean()),
             float(corrupted.metric.mean()), corrupted.metric.numel())
    grids: list[PatchGrid] = []
    agreements: list[Agreement] = []
    timings: dict[str, float] = {"cache_s": cache_s, "exact_s": 0.0, "attribution_s": 0.0}
    for direction in cfg.directions:
        cells, kind = choose_cells(pair, cfg, direction, model.tokenizer)
        grads = None
        if cfg.attribution:
            t0 = time.perf_counter()
            grads = gradients(bridge, target_and_source(clean, corrupted, direction)[0], names, metric)
            timings["attribution_s"] += time.perf_counter() - t0
        for component in cfg.components:
            grid_cells = [pair.alignment.all_positions(direction)] if component == "z" else cells  # type: ignore
            log.info("%s %s: %d layers x %d %s", direction, component, len(layers),
                     len(heads) if component == "z" else len(cells), "heads" if component == "z" else kind + "s")
            t0 = time.perf_counter()
            exact = patch_grid(bridge, clean, corrupted, metric, component, direction, grid_cells,  # type: ignore
                               kind, layers, heads)
            timings["exact_s"] += time.perf_counter() - t0
            grids.append(exact)
            if cfg.attribution:
                t0 = time.perf_counter()
                approx = attribution_grid(bridge, clean, corrupted, metric, component, direction,  # type: ignore
                                          grid_cells, kind, layers, grads, heads)
                timings["attribution_s"] += time.perf_counter() - t0
                grids.append(approx)
                agreements.append(compare(exact, approx, k=cfg.top_k))
    run.write_json("effects.json", {"metric": metric.describe(), "verdict_tokens": metric.tokens.to_dict(),
                                    "corruption": pair.corruption, "grids": [g.to_dict() for g in grids],
                                    "timings": timings})
    if agreements:
        run.write_json("agreement.json", [a.to_dict() for a in agreements])
    for direction in cfg.directions:
        for component in cfg.components:
            pair_grids = [g for g in grids if g.direction == direction and g.component == component]
            run.save_figure(heatmap(pair_grids), f"{direction}_{component}")
    run.write_report(report(model, pair, cfg, metric, grids, agreements, timings))
    return {"grids": len(grids), "timings": timings,
            "agreement": [a.to_dict() for a in agreements],
            "top": {f"{g.direction}/{g.component}/{g.method}": g.top(3) for g in grids}}


def heatmap(grids: list[PatchGrid]) -> Any:
    """Exact (and attribution) grids side by side: rows layers, columns segments/tokens/heads, colour = effect."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = len(grids[0].columns)
    fig, axes = plt.subplots(1, len(grids), figsize=(max(4.0, 0.45 * n_cols + 2) * len(grids),
                                                       max(3.0, 0.22 * len(grids[0].layers) + 2)), squeeze=False)
    for ax, grid in zip(axes[0], grids):
        effect = grid.effect.numpy()
        bound = max(1.0, float(abs(effect).max()))
        im = ax.imshow(effect, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto", origin="lower")
        ax.set_xticks(range(n_cols), grid.columns, rotation=70, ha="right", fontsize=7)
        ax.set_yticks(range(len(grid.layers)), [str(layer) for layer in grid.layers], fontsize=7)
        ax.set_ylabel("layer")
        what = "recovery (clean=1)" if grid.direction == "denoising" else "damage (1 - normalised)"
        ax.set_title(f"{grid.component} {grid.direction} ({grid.method})\n{what}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def _fmt_top(grid: PatchGrid, k: int) -> list[str]:
    lines = []
    for item in grid.top(k):
        ci = f" [95% CI {item['ci95'][0]:.2f}, {item['ci95'][1]:.2f}]" if "ci95" in item else ""
        lines.append(f"  - layer {item['layer']}, {item['column']}: effect {item['effect']:.3f}{ci}")
    return lines


def report(model: LoadedModel, pair: PatchPair, cfg: PatchConfig, metric: VerdictMetric, grids: list[PatchGrid],
           agreements: list[Agreement], timings: dict[str, float]) -> str:
    first = grids[0]
    gap = first.clean_metric - first.corrupted_metric
    al = pair.alignment
    lines = [
        f"# Activation patching: {model.identity.name}", "",
        f"- **Metric**: {metric.describe()}; normalised per sample so that clean = 1 and corrupted = 0.",
        f"- **Clean** log-odds {first.clean_metric:.3f}, **corrupted** {first.corrupted_metric:.3f} "
        f"(gap {gap:.3f}{'; mean over noise samples' if pair.noise else ''}). "
        "A small gap makes normalised values noisy.",
        f"- **Corruption**: {pair.corruption}.",
        "- **Directions**: " + "; ".join(
            {"denoising": "denoising = run the corrupted input, patch in clean activations (sufficiency; effect = "
                          "recovery, 1 = clean verdict restored)",
             "noising": "noising = run the clean input, patch in corrupted activations (necessity; effect = damage "
                        "= 1 - normalised, 1 = clean verdict destroyed)"}[d] for d in cfg.directions) + ".",
        f"- **Alignment**: by {al.mode} ({al.clean_len} clean tokens, {al.corrupted_len} corrupted); "
        f"{len(al.pairs)} aligned segments" + (", `*` marks those whose tokens differ" if al.pairs else "") + ".",
    ]
    if al.skipped:
        lines.append("- **Not patchable** (no counterpart of equal length): "
                     + "; ".join(f"{label} ({why})" for label, why in al.skipped) + ".")
    lines.append(f"- **Samples**: {first.samples}" + (
        " noise draws; intervals are TransformerLens percentile bootstrap 95% CIs over them." if first.samples > 1
        else " (one pair: no interval; use Gaussian noise with several samples for intervals)."))
    lines += ["", "## Top components (exact patching)", ""]
    for grid in grids:
        if grid.method != "exact":
            continue
        lines.append(f"- **{grid.component}, {grid.direction}** ({len(grid.layers)} layers x {len(grid.columns)} "
                     f"{grid.column_kind}s):")
        lines += _fmt_top(grid, cfg.top_k)
    if agreements:
        lines += ["", "## Attribution patching vs exact", "",
                  "First-order estimate from one backward pass; false negatives where attention saturates or direct "
                  "and indirect effects cancel (AtP*).", "",
                  "| grid | cells | Spearman | top-k overlap | largest disagreement (exact vs attribution) |",
                  "|---|---|---|---|---|"]
        for a in agreements:
            d = a.disagreements[0]
            lines.append(f"| {a.component} {a.direction} | {a.n_cells} (+{a.n_trivial} zero in both) | "
                         f"{a.spearman:.2f} | "
                         f"{a.top_k_overlap:.2f} (k={a.top_k}) | layer {d['layer']} {d['column']}: "
                         f"{d['exact']:.2f} vs {d['attribution']:.2f} |")
    lines += ["", f"Cost: caching {timings['cache_s']:.1f} s, exact sweeps {timings['exact_s']:.1f} s, attribution "
              f"{timings['attribution_s']:.1f} s.", "",
              "Figures: `figures/<direction>_<component>.png`; numbers: `results/effects.json`, "
              "`results/agreement.json`, `results/pair.json`."]
    return "\n".join(lines)

