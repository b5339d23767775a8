"""Figures and ``report.md`` of the base-vs-instruct comparison (:mod:`experiments.jobs.compare`)."""

from __future__ import annotations

from typing import Any

import numpy as np

ROLE_COLOURS = {"base": "tab:blue", "instruct": "tab:orange"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def probe_figure(result: Any) -> Any:
    """Probe AUROC by layer for both models on one axis per concept (normalised depth when depths differ)."""
    plt = _plt()
    probes = result.results["probes"]
    concepts = list(probes["base"])
    fig, axes = plt.subplots(1, len(concepts), figsize=(5.5 * len(concepts), 3.8), squeeze=False)
    normalised = probes["depth_normalised"]
    for ax, concept in zip(axes[0], concepts):
        for role in ("base", "instruct"):
            for est, curve in probes[role][concept]["curves"].items():
                x = curve["depth"] if normalised else curve["layer"]
                style = "-" if est == "logistic" else "--"
                name = result.models[role]["name"]
                ax.plot(x, curve["auroc"], style, color=ROLE_COLOURS[role], label=f"{role} ({name}) {est}")
                ax.fill_between(x, curve["low"], curve["high"], color=ROLE_COLOURS[role], alpha=0.12)
        lexical = probes["base"][concept].get("lexical_auroc")
        if lexical:  # the same texts and folds for both models: one bag-of-words line
            ax.axhline(lexical["value"], color="black", ls=":", lw=1, label=f"bag-of-words {lexical['value']:.2f}")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_title(concept.replace("_", "-"))
        ax.set_xlabel("normalised depth (layer+1)/n_layers" if normalised else "layer")
        ax.set_ylabel("CV AUROC (95% DeLong)")
        ax.set_ylim(0.3, 1.02)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def cosine_transfer_figure(result: Any) -> Any:
    """Per concept: direction cosine by layer (top) and probe transfer AUROC both ways against within-model (bottom)."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator
    transfer = result.results.get("transfer", {})
    cos_rows = result.results.get("cosine", [])
    concepts = list(dict.fromkeys([*transfer, *(r["concept"] for r in cos_rows)]))
    fig, axes = plt.subplots(2, len(concepts), figsize=(5.5 * len(concepts), 6.5), squeeze=False, sharex="col")
    for j, concept in enumerate(concepts):
        ax = axes[0][j]
        for est in sorted({r["estimator"] for r in cos_rows if r["concept"] == concept}):
            rows = [r for r in cos_rows if r["concept"] == concept and r["estimator"] == est]
            ax.plot([r["layer"] for r in rows], [r["cosine"] for r in rows], marker=".", label=est)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel("cosine(base, instruct)")
        ax.set_title(concept.replace("_", "-"))
        ax.legend(fontsize=7)
        ax = axes[1][j]
        if concept in transfer:
            layers = [row["layer"] for row in transfer[concept]["layers"]]
            for key, label, role, style in (("within_a", "within base", "base", "-"),
                                            ("a_to_b", "base probe on instruct", "base", "--"),
                                            ("within_b", "within instruct", "instruct", "-"),
                                            ("b_to_a", "instruct probe on base", "instruct", "--")):
                vals = [row["auroc"][key]["value"] for row in transfer[concept]["layers"]]
                ax.plot(layers, vals, style, color=ROLE_COLOURS[role], label=label)
            ax.set_ylabel(f"AUROC ({transfer[concept]['estimator']})")
            ax.legend(fontsize=7)
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def patching_figure(result: Any) -> Any:
    plt = _plt()
    from matplotlib.ticker import MaxNLocator
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    hook = ""
    for name, curve in result.results["patching"].items():
        if not isinstance(curve, dict) or "normalised" not in curve:
            continue
        y = [np.nan if v is None else v for v in curve["normalised"]]
        donor, hook = name.split("_into_")[0], curve["hook"]
        ax.plot(curve["layers"], y, marker=".", color=ROLE_COLOURS[donor], label=name.replace("_", " "))
    ax.axhline(0, color="grey", lw=0.8)
    ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(f"layer patched ({hook}, all positions)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("normalised verdict log-odds\n0 = receiver unchanged, 1 = donor's")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def kl_figure(result: Any) -> Any:
    """Per-token KL strip: one cell per token, both directions, with the response start marked."""
    plt = _plt()
    kl = result.results["kl"]
    values = np.vstack([kl["kl_ab"], kl["kl_ba"]])
    fig, ax = plt.subplots(figsize=(min(24, 2 + 0.04 * values.shape[1]), 2.4))
    im = ax.imshow(values, aspect="auto", cmap="magma", interpolation="nearest")
    ax.set_yticks([0, 1], ["KL(base||instruct)", "KL(instruct||base)"])
    if kl.get("start") is not None:
        ax.axvline(kl["start"] - 0.5, color="cyan", lw=1)
    for row in kl["top"][:5]:
        ax.annotate(repr(row["token"])[1:-1][:12], (row["position"], -0.6), fontsize=6, rotation=60, ha="left",
                    annotation_clip=False)
    ax.set_xlabel("token position (cyan line: response starts)")
    fig.colorbar(im, ax=ax, label="nats")
    fig.tight_layout()
    return fig


def behaviour_figure(table: Any) -> Any:
    from behaviour.table import plot_convergence

    return plot_convergence(table)


def figure_drawers(result: Any) -> dict[str, Any]:
    """Figure name -> a function drawing it, for the analyses present in ``result``."""
    out = {}
    if "probes" in result.results:
        out["probe_curves"] = lambda: probe_figure(result)
    if "cosine" in result.results or "transfer" in result.results:
        out["cosine_transfer"] = lambda: cosine_transfer_figure(result)
    if "patching" in result.results:
        out["patching"] = lambda: patching_figure(result)
    if "kl" in result.results:
        out["kl_tokens"] = lambda: kl_figure(result)
    return out


def _fmt(metric: dict[str, Any]) -> str:
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


def markdown(result: Any, cfg: Any) -> str:
    m = result.models
    lines = [f"# Base vs instruct: {m['base']['name']} vs {m['instruct']['name']}", ""]
    lines += ["| role | model | kind | layers | width | identity |", "|---|---|---|---|---|---|"]
    lines += [f"| {role} | {m[role]['name']} | {m[role]['kind']} | {m[role]['n_layers']} | {m[role]['d_model']} | "
              f"`{m[role]['key']}` |" for role in ("base", "instruct")]
    if m["base"]["architecture"] != m["instruct"]["architecture"]:
        lines += ["", f"Different architectures ({m['base']['architecture']} vs {m['instruct']['architecture']}): "
                  "two model families, not two checkpoints of one model. Differences below mix pre-training data, "
                  "size and post-training; only the depth-normalised probe curves and behaviour are comparable."]
    for w in result.warnings:
        lines += ["", f"Warning: {w}"]
    lines += ["", "## Skipped analyses", ""]
    lines += [f"- **{name}**: {why}" for name, why in result.skipped.items()] or ["- none: every analysis ran"]
    r = result.results
    if "probes" in r:
        lines += ["", "## Probe curves", "",
                  f"Probe runs: base {result.probe_runs['base']['how']} (`{result.probe_runs['base']['path']}`), "
                  f"instruct {result.probe_runs['instruct']['how']} (`{result.probe_runs['instruct']['path']}`). "
                  f"Same concept data, hook `{cfg.hook}`, position `{cfg.position}`, grouped {cfg.n_splits}-fold CV.",
                  ""]
        if r["probes"]["depth_normalised"]:
            lines += ["The layer counts differ, so curves are compared at normalised depth (layer+1)/n_layers "
                      "(`figures/probe_curves.png`).", ""]
        lines += ["Best layer of each curve (the maximum of many layers is optimistic; the selected layer follows the "
                  "probe job's rule). The bag-of-words baseline sees the same texts and folds.", "",
                  "| concept | estimator | model | best AUROC [95% CI] | at layer (depth) | selected layer | "
                  "bag-of-words AUROC |", "|---|---|---|---|---|---|---|"]
        for concept in r["probes"]["base"]:
            for role in ("base", "instruct"):
                entry = r["probes"][role][concept]
                for est, c in entry["curves"].items():
                    i = int(np.nanargmax(c["auroc"]))
                    lines.append(f"| {concept} | {est} | {role} | {c['auroc'][i]:.3f} [{c['low'][i]:.3f}, "
                                 f"{c['high'][i]:.3f}] | {c['layer'][i]} ({c['depth'][i]:.2f}) | "
                                 f"{(entry['selected_layer'] or {}).get(est)} | "
                                 f"{_fmt(entry['lexical_auroc']) if entry.get('lexical_auroc') else '—'} |")
    if "cosine" in r:
        lines += ["", "## Direction cosines", "", "Cosine of the base and instruct directions (same concept, "
                  "estimator, layer), fitted on all the concept data; minimum and layer of the minimum:", ""]
        for concept in dict.fromkeys(x["concept"] for x in r["cosine"]):
            for est in dict.fromkeys(x["estimator"] for x in r["cosine"] if x["concept"] == concept):
                rows = [x for x in r["cosine"] if x["concept"] == concept and x["estimator"] == est]
                low = min(rows, key=lambda x: x["cosine"])
                lines.append(f"- {concept} / {est}: first layer {rows[0]['cosine']:.3f}, last layer "
                             f"{rows[-1]['cosine']:.3f}, minimum {low['cosine']:.3f} at layer {low['layer']}")
    if "transfer" in r:
        lines += ["", "## Probe transfer", "", "Out-of-fold AUROC (DeLong 95%) on grouped folds; a probe trained on "
                  "one model's activations scored on the other's held-out texts. At each concept's layer of largest "
                  "transfer loss:", "",
                  "| concept | layer | within base | base→instruct | within instruct | instruct→base |",
                  "|---|---|---|---|---|---|"]
        for concept, t in r["transfer"].items():
            loss = [row["auroc"]["within_a"]["value"] - row["auroc"]["a_to_b"]["value"]
                    + row["auroc"]["within_b"]["value"] - row["auroc"]["b_to_a"]["value"] for row in t["layers"]]
            row = t["layers"][int(np.nanargmax(loss))]
            a = row["auroc"]
            lines.append(f"| {concept} | {row['layer']} | {_fmt(a['within_a'])} | {_fmt(a['a_to_b'])} | "
                         f"{_fmt(a['within_b'])} | {_fmt(a['b_to_a'])} |")
    if "patching" in r:
        lines += ["", "## Cross-model activation patching", "",
                  f"`{cfg.patch_hook}` at all positions of the scenario document ending in `Final verdict:`; "
                  f"metric: verdict log-odds (against {list(cfg.against)} over proceed {list(cfg.proceed)}), "
                  "normalised 0 = receiver unchanged, 1 = donor's value. One prompt, so no interval: a "
                  "single-trial measurement.", ""]
        for name, curve in r["patching"].items():
            if isinstance(curve, dict) and "normalised" in curve:
                first = next((layer for layer, v in zip(curve["layers"], curve["normalised"])
                              if v is not None and v >= 0.5), None)
                lines.append(f"- {name.replace('_', ' ')}: donor {curve['donor_clean']:.3f}, receiver "
                             f"{curve['receiver_clean']:.3f}; effect passes 0.5 first at layer {first}")
    if "kl" in r:
        kl = r["kl"]
        s = kl["summary"]
        lines += ["", "## Per-token KL", "", f"Over the scenario document and a response ({kl['response_origin']}); "
                  f"mean KL(base||instruct) {s['all']['mean_kl_ab']:.3f} nats over {s['all']['n']} tokens"
                  + (f" (prompt {s['prompt']['mean_kl_ab']:.3f}, response {s['response']['mean_kl_ab']:.3f})"
                     if "response" in s and s["response"]["n"] else "") + ". Largest divergences:", "",
                  "| position | context (…token) | KL(b‖i) | KL(i‖b) |", "|---|---|---|---|"]
        for row in kl["top"]:
            context = row["context"].replace("\n", "⏎").replace("|", "\\|")
            lines.append(f"| {row['position']} | {context} | {row['kl_ab']:.3f} | {row['kl_ba']:.3f} |")
    if "behaviour" in r:
        lines += ["", "## Behaviour", "", "Trials runs: " + "; ".join(
            f"{role}: " + ", ".join(f"`{p}`" for p in paths)
            + (" (computed now, --trials-n)" if role in r["behaviour"].get("computed_now", ()) else "")
            for role, paths in r["behaviour"]["runs"].items()),
            "", r["behaviour"]["markdown"]]
    return "\n".join(lines) + "\n"
