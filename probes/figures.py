"""Figures of a probe sweep: AUROC and accuracy by layer with 95% bands, per concept and at a glance."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402

from probes.concept_probe import ConceptResult  # noqa: E402
from probes.metrics import Metric  # noqa: E402

__all__ = ["COLOURS", "LABELS", "concept_figure", "overview_figure"]

COLOURS = {"logistic": "tab:blue", "mean_diff": "tab:orange", "mean_diff_iid": "tab:green"}
LABELS = {"logistic": "logistic probe", "mean_diff": "mass-mean probe", "mean_diff_iid": "mass-mean (iid)"}


def _band(ax: Any, layers: list[int], metrics: list[Metric], colour: str, label: str, style: str = "-") -> None:
    ax.plot(layers, [m.value for m in metrics], style, color=colour, label=label, lw=1.6)
    ax.fill_between(layers, [m.low for m in metrics], [m.high for m in metrics], color=colour, alpha=0.18, lw=0)


def _lexical_line(ax: Any, layers: list[int], metric: Metric, label: str) -> None:
    ax.axhline(metric.value, color="tab:red", ls="--", lw=1.2, label=label)
    ax.axhspan(metric.low, metric.high, color="tab:red", alpha=0.08, lw=0)


def concept_figure(result: ConceptResult) -> Any:
    """AUROC and accuracy against layer: probes, control task and lexical baseline, each with its 95% interval."""
    sweep = result.sweep
    fig, (ax_auc, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    for est in sweep.estimators:
        rows = sweep.results[est]
        colour = COLOURS.get(est, "tab:purple")
        _band(ax_auc, sweep.layers, [r.auroc for r in rows], colour, LABELS.get(est, est))
        _band(ax_acc, sweep.layers, [r.accuracy for r in rows], colour, LABELS.get(est, est))
        _band(ax_acc, sweep.layers, [r.control_accuracy for r in rows], colour, f"{LABELS.get(est, est)}: control task",
              style=":")
        if result.selected.get(est) is not None:
            for ax in (ax_auc, ax_acc):
                ax.axvline(result.selected[est], color=colour, lw=0.8, alpha=0.6)
    if sweep.lexical is not None:
        _lexical_line(ax_auc, sweep.layers, sweep.lexical.auroc, "bag-of-words baseline")
        _lexical_line(ax_acc, sweep.layers, sweep.lexical.accuracy, "bag-of-words baseline")
    for ax, name in ((ax_auc, "AUROC"), (ax_acc, "accuracy")):
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"held-out-group {name}")
        ax.set_ylim(0.3, 1.02)
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result.concept}: grouped {sweep.n_splits}-fold CV, n={result.n}, {result.n_groups} groups "
                 "(bands: 95% intervals; vertical lines: selected layers)", fontsize=10)
    fig.tight_layout()
    return fig


def overview_figure(results: dict[str, ConceptResult]) -> Any:
    """One panel per concept: the logistic probe's AUROC by layer against the bag-of-words line, at a glance."""
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.6), squeeze=False)
    for ax, (concept, result) in zip(axes[0], results.items()):
        sweep = result.sweep
        est = "logistic" if "logistic" in sweep.estimators else sweep.estimators[0]
        _band(ax, sweep.layers, [r.auroc for r in sweep.results[est]], COLOURS.get(est, "tab:blue"),
              LABELS.get(est, est))
        _band(ax, sweep.layers, [r.control_accuracy for r in sweep.results[est]], "tab:grey",
              "control task (accuracy)", style=":")
        if sweep.lexical is not None:
            _lexical_line(ax, sweep.layers, sweep.lexical.auroc, "bag-of-words AUROC")
        layer = result.selected.get(est)
        if layer is not None:
            ax.axvline(layer, color="black", lw=0.8)
            ax.annotate(f"selected: {layer}", (layer, 0.33), fontsize=8, xytext=(3, 0), textcoords="offset points")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_ylim(0.3, 1.02)
        ax.set_title(f"{concept} (n={result.n})", fontsize=10)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out-group AUROC")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
