"""Figures and ``report.md`` of the framing-shift steering job (see :mod:`experiments.jobs.steer`)."""

from __future__ import annotations

import math
from typing import Any

from activations.models import LoadedModel
from common.rundir import RunDir
from interventions.directions_source import SteeringDirections
from interventions.steering import ResidualNorms
from interventions.steering_analysis import RANDOM_PREFIX
from interventions.verdict import VerdictTokens

SMALL_MODEL_LAYERS = 32  # below this many layers (and ~1B parameters) we call the model "small" in the report


def _series(analysis: dict[str, Any], layer: int, direction: str, key: str) -> tuple[list[float], list[float]]:
    pts = sorted((e["alpha"], e[key]) for e in analysis["effects"]
                 if e["layer"] == layer and e["direction"] == direction and key in e)
    if key == "effect":
        pts = [(0.0, 0.0)] + pts
    elif analysis.get("unsteered_side_effects") and key in analysis["unsteered_side_effects"]:
        pts = [(0.0, analysis["unsteered_side_effects"][key])] + pts
    return [a for a, _ in pts], [v for _, v in pts]


def steer_figures(run: RunDir, cfg: Any, analysis: dict[str, Any], layers: list[int],
                  confirmation: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directions = sorted({e["direction"] for e in analysis["effects"]})
    randoms = [d for d in directions if d.startswith(RANDOM_PREFIX)]
    others = [d for d in directions if not d.startswith(RANDOM_PREFIX)]
    # Dose-response: one panel per layer, concept and controls against alpha, the random directions as a band.
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.6), squeeze=False, sharey=True)
    for ax, layer in zip(axes[0], layers):
        rand = [_series(analysis, layer, d, "effect") for d in randoms]
        if rand:
            xs = rand[0][0]
            lo = [min(r[1][i] for r in rand) for i in range(len(xs))]
            hi = [max(r[1][i] for r in rand) for i in range(len(xs))]
            ax.fill_between(xs, lo, hi, color="grey", alpha=0.3, label=f"{len(rand)} random (min-max)")
        for d in others:
            x, y = _series(analysis, layer, d, "effect")
            ax.plot(x, y, marker="o", ls="--" if d.startswith("-") else "-", label=d)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("alpha (x typical residual norm)")
    axes[0][0].set_ylabel("change in verdict log-odds\n(against - proceed)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle("Dose-response of the verdict metric (mean over metric prompts)")
    run.save_figure(fig, "dose_response")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for layer in layers:
        for d in [o for o in others if not o.startswith("-")] + randoms[:1]:
            for ax, key in zip(axes, ("kl", "perplexity")):
                x, y = _series(analysis, layer, d, key)
                ax.plot(x, y, marker=".", label=f"{d} L{layer}")
    unsteered = analysis.get("unsteered_side_effects") or {}
    if "perplexity" in unsteered:
        axes[1].axhline(unsteered["perplexity"], color="black", lw=0.5, label="unsteered")
    axes[0].axhline(cfg.kl_threshold, color="red", lw=0.8, ls=":", label="KL threshold")
    axes[0].set_ylabel("mean KL on neutral prompts (nats)")
    axes[1].set_ylabel("perplexity on neutral text")
    for ax in axes:
        ax.set_xlabel("alpha")
        ax.set_yscale("symlog", linthresh=1e-3) if ax is axes[0] else ax.set_yscale("log")
    axes[1].legend(fontsize=6)
    fig.suptitle("Side effects against alpha")
    run.save_figure(fig, "side_effects")

    cells = confirmation.get("cells") or []
    if cells:
        # Convergence rate against alpha, one panel per condition: each direction's cells at their alphas, the
        # unsteered cell at alpha 0 on every line, Wilson 95% intervals as error bars.
        conditions = list(dict.fromkeys(c["condition"] for c in cells))
        fig, axes = plt.subplots(1, len(conditions), figsize=(4.5 * len(conditions), 3.6), squeeze=False,
                                 sharey=True)
        for ax, condition in zip(axes[0], conditions):
            mine = [c for c in cells if c["condition"] == condition]
            base = next((c for c in mine if c["layer"] is None), None)
            lines = sorted({(c["direction"], c["layer"]) for c in mine if c["layer"] is not None})
            for k, (direction, layer) in enumerate(lines):
                pts = ([base] if base else []) + sorted(
                    (c for c in mine if c["direction"] == direction and c["layer"] == layer), key=lambda c: c["alpha"])
                pts = [c for c in pts if c["rate"] is not None]  # no engaged trial: no rate to draw
                xs = [(c["alpha"] if c["layer"] is not None else 0.0) + 0.004 * k for c in pts]
                ys = [c["rate"] for c in pts]
                err = [[max(0.0, y - c["ci95"][0]) for y, c in zip(ys, pts)],
                       [max(0.0, c["ci95"][1] - y) for y, c in zip(ys, pts)]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, ls="--" if direction.startswith(RANDOM_PREFIX)
                            else "-", label=f"{direction} L{layer}")
            if not lines and base and base["rate"] is not None:
                ax.errorbar([0], [base["rate"]], fmt="o", capsize=3, label="unsteered")
            ax.set_title(f"{condition} (n per point: {mine[0]['trials'] + mine[0]['abstained']})")
            ax.set_xlabel("alpha")
            ax.set_ylim(-0.05, 1.05)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
            else:  # every point lacked an engaged trial: say so rather than draw an empty legend
                ax.text(0.5, 0.5, "no engaged trial: no rate", ha="center", va="center", transform=ax.transAxes)
        axes[0][0].set_ylabel("converged / (trials - refused)\n(Wilson 95%)")
        fig.suptitle("Confirmation generation, judged")
        run.save_figure(fig, "convergence")


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{nd}f}"
    return str(x)


def confirmation_lines(cfg: Any, confirmation: dict[str, Any]) -> list[str]:
    """The confirmation section: counts per cell with the abstentions and why, then the rates (judge-only, or
    judge-only, reviewed-only and PPI once a blind sample is filled: :func:`behaviour.rates.judged_rates`)."""
    cells = confirmation["cells"]
    abstained = confirmation.get("abstained") or {}
    why = "; ".join(f"{reason}: {k}" for reason, k in sorted(abstained.items(), key=lambda kv: -kv[1]))
    total = sum(c["trials"] + c["abstained"] for c in cells)
    lines = [f"n = {cfg.n_samples} samples per cell, temperature {cfg.temperature}, top-p {cfg.top_p}, "
             f"{cfg.max_new_tokens} new tokens max, judge `{confirmation.get('judge')}`. Each sample is scored "
             "through the shared row scoring: the verdict must come from the model's continuation (our prefill is "
             "context, not an answer; a continuation with no verdict of its own abstains as `no verdict in the "
             "continuation`, one cut off before its verdict as `truncated`). Transcripts: "
             "`results/generations.jsonl` (each row's `prefill` and the model's `response` apart).", "",
             f"Abstained: {sum(abstained.values())} of {total} samples" + (f" ({why})." if why else "."), "",
             "| condition | setting | labelled | converged | ambiguous | did not converge | refused | "
             "abstained (why) |", "|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        reasons = ", ".join(f"{r} {k}" for r, k in cell.get("abstention_reasons", {}).items())
        lines.append(f"| {cell['condition']} | {cell['setting']} | {cell['trials']} | {cell['converged']} | "
                     f"{cell['ambiguous']} | {cell['did_not_converge']} | {cell['refused']} | "
                     f"{cell['abstained']}{f' ({reasons})' if reasons else ''} |")
    rates = confirmation.get("rates_markdown")
    if rates:
        lines += ["", "### Rates of convergence", "", rates.rstrip(), "",
                  "To measure the judge on these generations: `python -m experiments.review sample RUN_DIR --n K "
                  "--seed S --input RUN_DIR/results/generations.jsonl`, fill `reviewed_label` in "
                  "`RUN_DIR/review_sample.csv`, then run the same steering command on RUN_DIR again (every stage "
                  "resumes; the rates gain the reviewed-only and PPI columns)."]
    return lines


def steer_report(model: LoadedModel, cfg: Any, layers: list[int], tokens: VerdictTokens, norms: ResidualNorms,
                 source: SteeringDirections, analysis: dict[str, Any], confirmation: dict[str, Any]) -> str:
    n = model.n_layers
    lines = [
        f"# Steering: can the framing shift be reversed? ({model.identity.name})", "",
        f"Model `{model.identity.name}` ({n} layers, d_model {model.d_model}, {model.identity.dtype}); directions: "
        f"{source.source.get('kind')} at `{cfg.hook}`; steered positions: `{cfg.positions}`; layers swept {layers}; "
        f"alphas {list(cfg.alphas)} x the typical residual norm at the layer (norms measured on "
        f"{norms.n_tokens} tokens of {norms.n_texts} reference texts, `results/norms.json`).",
        "",
        f"Verdict metric: log P({', '.join(tokens.against_text)!s}) - log P({', '.join(tokens.proceed_text)!s}) for "
        "the next token after each metric prompt ending in `Final verdict:` (positive = against the proposal). "
        "Unsteered: " + ", ".join(f"{p} {_fmt(v, 2)}" for p, v in analysis["baseline_metric"].items()) + ".",
        "",
        "## Selected settings (layer-choice rule)", "",
        f"Rule: layers < {math.floor(n * (1 - cfg.skip_last_fraction))} (last {cfg.skip_last_fraction:.0%} skipped), "
        f"alpha > 0, mean KL on neutral prompts <= {cfg.kl_threshold}; the largest effect wins.", "",
        "| concept | layer | alpha | effect on log-odds | KL | reason |", "|---|---|---|---|---|---|",
    ]
    for c, s in analysis["selections"].items():
        lines.append(f"| {c} | {_fmt(s['layer'])} | {_fmt(s['alpha'], 2)} | {_fmt(s['effect'])} | {_fmt(s['kl'])} | "
                     f"{s['reason']} |")
    split = analysis.get("split") or {"held_out": False, "selection_prompts": list(cfg.metric_prompts),
                                        "heldout_prompts": []}
    where = ("the held-out prompts " + ", ".join(f"`{p}`" for p in split["heldout_prompts"])
             if split["held_out"] else "the same prompts the setting was chosen on (no held-out prompts: optimistic)")
    lines += ["", "## Held-out split", "",
              "- Chosen on (selection prompts): " + ", ".join(f"`{p}`" for p in split["selection_prompts"]) + ".",
              f"- Reported on: {where}.", ""]
    for c, r in (analysis.get("reported") or {}).items():
        if r.get("layer") is None:
            continue
        lo, hi = r["ci95"]
        lines.append(f"- **{c}** at layer {r['layer']}, alpha {r['alpha']:g}: effect {_fmt(r['effect'])} "
                     f"(95% t interval over {r['n_prompts']} prompts {_fmt(lo)}..{_fmt(hi)}); per prompt "
                     + ", ".join(f"{p} {_fmt(v)}" for p, v in r["per_prompt"].items()) + ".")
    lines += ["", "## Concept directions against random directions of the same norm", "",
              f"Effect = change in the verdict log-odds vs unsteered, mean over {where}. `outside` = above every "
              "random direction's effect (or below every one); with k random directions, 1/(k+1) is the chance of "
              "that by luck, so one such setting among many is expected even with no real effect.", "",
              "| direction | layer | alpha | effect | random min..max | z | rank | outside | KL | perplexity |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    side = {(e["layer"], e["direction"], e["alpha"]): e for e in analysis["effects"]}
    verdicts = []
    for d, comps in analysis["comparisons"].items():
        for c in comps:
            e = side.get((c["layer"], d, c["alpha"]), {})
            lines.append(f"| {d} | {c['layer']} | {_fmt(c['alpha'], 2)} | {_fmt(c['effect'])} | "
                         f"{_fmt(c['random_min'])}..{_fmt(c['random_max'])} | {_fmt(c['z'], 2)} | "
                         f"{c['rank']}/{c['n_random'] + 1} | {'yes' if c['outside'] else 'no'} | "
                         f"{_fmt(e.get('kl'))} | {_fmt(e.get('perplexity'), 1)} |")
    for c, s in analysis["selections"].items():
        if s["layer"] is None:
            verdicts.append(f"- **{c}**: no setting passed the side-effect threshold, so nothing is claimed.")
            continue
        comp = next((x for x in analysis["comparisons"].get(c, [])
                     if x["layer"] == s["layer"] and x["alpha"] == s["alpha"]), None)
        if comp is None:
            continue
        toward = "towards 'against'" if comp["effect"] > 0 else "towards 'proceed'"
        if comp["outside"] and comp["effect"] > comp["random_max"]:
            verdicts.append(f"- **{c}** at layer {s['layer']}, alpha {s['alpha']:g}: effect {comp['effect']:+.3f} "
                            f"({toward}) lies above all {comp['n_random']} random directions "
                            f"(max {comp['random_max']:+.3f}). The setting was selected for its large effect, so "
                            "this comparison is optimistic; the negated and other-concept rows above are the check.")
        elif comp["outside"]:
            verdicts.append(f"- **{c}** at layer {s['layer']}, alpha {s['alpha']:g}: effect {comp['effect']:+.3f} "
                            f"({toward}) lies below all {comp['n_random']} random directions "
                            f"(min {comp['random_min']:+.3f}): the concept pushes towards proceeding, the opposite "
                            "of the hypothesis.")
        else:
            verdicts.append(f"- **{c}** at layer {s['layer']}, alpha {s['alpha']:g}: effect {comp['effect']:+.3f} "
                            f"({toward}) is within the random directions' spread "
                            f"({comp['random_min']:+.3f}..{comp['random_max']:+.3f}): **no effect beyond random "
                            "directions of the same norm.**")
    lines += ["", "## Verdict", "", *verdicts]

    cells = confirmation.get("cells") or []
    lines += ["", "## Confirmation generation", ""]
    if cells:
        lines += confirmation_lines(cfg, confirmation)
    else:
        lines.append("No confirmation generation (n_samples = 0 or no setting selected).")
    small = n < SMALL_MODEL_LAYERS and model.d_model < 2048
    lines += ["", "## What this run can and cannot show", "",
              "- The metric is the next-token log-odds of single verdict tokens after a prefill; it measures a shift "
              "in the verdict's first word, not a changed argument. Generation plus the judge is the check on text.",
              "- Random directions of the same norm are the baseline for 'any perturbation this large'; a concept "
              "direction's effect counts only outside their spread, and only at a setting whose KL on neutral "
              "prompts stays under the threshold (a reversal that destroys fluency does not count).",
              "- Confirmation cells have small n: intervals are wide, and only differences that their Wilson "
              "intervals separate should be read."]
    if small:
        lines.append(f"- **{model.identity.name} is a small model** ({n} layers): its continuations of this scenario "
                     "are largely degenerate and the judge often finds no clear verdict; the framing shift was seen in "
                     "an 8B model, and whether a model this small shows it at all is unknown. This run shows that "
                     "the pipeline works end to end and what the controls look like; it cannot show whether "
                     "steering reverses the framing shift. That needs the same command on llama-3.1-8b (README).")
    return "\n".join(lines)
