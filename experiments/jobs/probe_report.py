"""``report.md`` of the probe job: probes with their controls, the scenario projection, the outside evaluation."""

from __future__ import annotations

from typing import Any

from activations.models import LoadedModel
from experiments.jobs.probe_config import ProbeConfig
from probes.concept_probe import ConceptResult
from probes.figures import LABELS
from probes.metrics import Metric

__all__ = ["eval_section", "markdown"]


def _fmt(metric: dict[str, Any] | Metric) -> str:
    m = metric if isinstance(metric, dict) else metric.to_dict()
    return f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"


def _concept_section(result: ConceptResult) -> list[str]:
    sweep = result.sweep
    lines = [f"### {result.concept}", "",
             f"n = {result.n} examples in {result.n_groups} groups; grouped {sweep.n_splits}-fold CV holds out whole "
             f"groups; data hash `{result.data_hash[:12]}`."]
    if sweep.lexical is not None:
        lines.append(f"Bag-of-words baseline (same folds): AUROC {_fmt(sweep.lexical.auroc)}, "
                     f"accuracy {_fmt(sweep.lexical.accuracy)}.")
    lines.append("")
    for est in sweep.estimators:
        layer = result.selected.get(est)
        verdicts = result.verdicts[est]
        n_control = sum(v.beats_control for v in verdicts)
        n_lexical = sum(bool(v.beats_lexical) for v in verdicts)
        if layer is None:
            lines.append(f"- **{LABELS.get(est, est)}**: no layer selected: {result.selection_notes.get(est, '')}")
        else:
            row = sweep.get(est, layer)
            verdict = next(v for v in verdicts if v.layer == layer)
            lines.append(f"- **{LABELS.get(est, est)}**: selected layer {layer}: AUROC {_fmt(row.auroc)}, accuracy "
                         f"{_fmt(row.accuracy)}, control-task accuracy {_fmt(row.control_accuracy)}, selectivity "
                         f"{_fmt(row.selectivity)}. {verdict.statement}.")
        lines.append(f"  Beats the control task at {n_control}/{len(verdicts)} layers and the bag-of-words baseline "
                     f"at {n_lexical}/{len(verdicts)} layers (95% intervals).")
        if n_lexical == 0 and sweep.lexical is not None:
            lines.append("  **At no layer does this probe beat the bag-of-words baseline**: on this data the concept "
                         "is not shown to be read beyond its wording.")
    for source, row in result.by_source.items():
        probes = "; ".join(f"{LABELS.get(e, e)} (layer {v['layer']}) {_fmt(v['auroc'])}"
                           for e, v in row.items() if isinstance(v, dict) and "layer" in v)
        lines.append(f"- {source} rows only (n = {row['n']}): bag-of-words AUROC {_fmt(row['lexical'])}"
                     + (f"; {probes}" if probes else "") + ".")
    best = max(sweep.results[sweep.estimators[0]], key=lambda r: r.auroc.value)
    lines += ["", f"Best layer by AUROC ({sweep.estimators[0]}): {best.layer} ({_fmt(best.auroc)}).", ""]
    return lines


def _projection_section(summary: dict[str, Any]) -> list[str]:
    proj = summary.get("scenario_projection") or {}
    scores = proj.get("scores") or {}
    lines = ["## Scenario projection", ""]
    if not scores:
        return lines + ["No concept had a selected layer, so nothing was projected.", ""]
    lines += [f"Read at the {proj['position']}; normalised so that 0 is the concept data's negative-class mean and "
              "1 its positive-class mean. One prompt per condition, so these are descriptions, not estimates.", "",
              "| condition | " + " | ".join(f"{c} (layer {s['layer']})" for c, s in scores.items()) + " |",
              "|---|" + "---|" * len(scores)]
    for i, cond in enumerate(proj["conditions"]):
        lines.append(f"| {cond} | " + " | ".join(f"{s['normalised'][i]:.2f}" for s in scores.values()) + " |")
    trials = summary.get("trial_projection")
    if trials:
        lines += ["", f"Trials: n = {trials['n']} with a final answer (skipped {trials.get('skipped_without_answer', 0)}"
                  f"), labels {trials.get('labels')}; read as the {trials.get('position')}."]
        for concept, t in trials.get("concepts", {}).items():
            for name, sep in t["separation"].items():
                value = "not computable" if sep["auroc"] is None else _fmt(sep["auroc"])
                lines.append(f"- {concept}, {name.replace('_', ' ')}: AUROC {value} "
                             f"(n = {sep['n_pos']} converged vs {sep['n_neg']}).")
        lines.append("These AUROCs are correlational: a direction that separates verdicts need not cause them.")
    return lines + [""]


def eval_section(summary: dict[str, Any]) -> list[str]:
    ev = summary.get("eval")
    if not ev:
        return []
    lines = ["## Outside evaluation", "", f"File `{ev['file']}`: saved probes applied as trained, per layer "
             "(full table in `results/eval.json`).", ""]
    for concept, c in ev["concepts"].items():
        selected = [p for p in c["probes"] if p["selected"]]
        best = max(c["probes"], key=lambda p: p["auroc"]["value"])
        parts = [f"bag-of-words AUROC {_fmt(c['lexical_baseline']['auroc'])}"]
        parts += [f"{p['estimator']} at selected layer {p['layer']}: AUROC {_fmt(p['auroc'])}, accuracy "
                  f"{_fmt(p['accuracy'])}" for p in selected] or ["no selected layer"]
        parts.append(f"best layer {best['layer']} ({best['estimator']}): AUROC {_fmt(best['auroc'])} (chosen after "
                     "seeing this data, so optimistic)")
        lines.append(f"- {concept} (n = {c['n']}): " + "; ".join(parts) + ".")
    return lines + [""]


def markdown(model: LoadedModel, cfg: ProbeConfig, results: dict[str, ConceptResult], summary: dict[str, Any]) -> str:
    ident = model.identity
    lines = [f"# Probe report: {ident.name}", "",
             f"Model `{ident.location}` ({model.spec.kind}, {ident.architecture}, {ident.n_layers} layers, "
             f"d_model {ident.d_model}, {ident.dtype}; identity key `{ident.key}`). Hook `{cfg.hook}`, position "
             f"`{cfg.position}`, estimators {', '.join(cfg.estimators)}, seed {cfg.seed}.", "",
             "Figures: `figures/overview.png` (at a glance), `figures/sweep_<concept>.png` (per concept). "
             "Directions for steering and patching: `directions/` (index in `results/directions_index.json`).", "",
             "**Layer selection rule** (`probes.sweep.select_layer`): among layers before the last 20% whose AUROC "
             "interval lies above 0.5 and whose selectivity interval lies above 0, take the earliest layer whose AUROC "
             "reaches the best such layer's lower 95% bound.", "",
             "**Controls**, fitted on the same folds. Control task (Hewitt & Liang 2019): random labels with the "
             "task's positive rate, one per example, stratified by group and label; selectivity = task accuracy - "
             "control accuracy. On held-out groups a memorising probe cannot transfer, so the control sits near "
             "chance by construction: selectivity shows the probe beats chance with this capacity, no more. The "
             "stronger control is the lexical baseline: TF-IDF unigram+bigram logistic regression on the same texts. "
             "Intervals: Wilson (accuracy), DeLong (AUROC; paired DeLong for probe vs lexical), Newcombe "
             "(selectivity); per-layer tests are not corrected for the number of layers.", "",
             "## Probes", ""]
    for result in results.values():
        lines += _concept_section(result)
    lines += _projection_section(summary)
    lines += eval_section(summary)
    lines += ["## Caveats", "",
              "- The concept datasets are templated and hand-written by the toolkit team (see "
              "`configs/concepts/DATASHEET.md`); held-out groups test transfer across entities, not across authors.",
              "- Probe accuracy shows that information is linearly decodable, not that the model uses it; steering "
              "and patching experiments test use.", ""]
    return "\n".join(lines)
