"""The study's one report: ``report.md`` and a self-contained ``report.html`` from the same structured content
(:mod:`common.report`), opening with the five answers (:mod:`experiments.jobs.study_verdicts`), then the seed's
table, a section per step linking its sub-run, the plan beside what was measured, what ``--quick`` shrank, and the
status of every run directory the study made."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activations.models import LoadedModel
from common.fileio import atomic_write_text
from common.report import Document, Section, bullets, figure, paragraph, render_html, render_markdown, table
from common.rundir import RunDir
from experiments.jobs import study_verdicts as V
from experiments.jobs.study_config import StudyConfig

__all__ = ["answers", "build_document", "write_study_report"]

LABEL_COLUMNS = ("converged", "ambiguous", "did_not_converge", "refused")


def _f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _ci(ci: Any, nd: int = 2) -> str:
    return f"[{_f(ci[0], nd)}, {_f(ci[1], nd)}]" if ci else "-"


def _summary(state: dict[str, Any], step: str) -> dict[str, Any] | None:
    rec = state.get(step) or {}
    return rec.get("summary") if rec.get("status") == "completed" else None


def _skip_reason(state: dict[str, Any], step: str) -> str | None:
    rec = state.get(step) or {}
    if rec.get("status") == "completed":
        return None
    failed = [s for s, r in state.items() if (r or {}).get("status") == "failed" and s != step]
    return rec.get("reason") or rec.get("error") or (f"the study stopped at the failing step {failed[0]}" if failed
                                                    else f"step {step} has not run yet")


def condition_rates(trials: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """condition -> {k, n, rate, ci95, source}: PPI where a filled sample was used, else judge-only."""
    rates = trials["rates"]
    out = {}
    for cell in rates["cells"]:
        j = cell["judge_only"]
        ppi = cell.get("ppi") if rates.get("measured") else None
        if ppi:
            out[cell["condition"]] = {"k": j["converged"], "n": j["engaged"], "rate": ppi["estimate"],
                                      "ci95": ppi["ci"], "source": "PPI"}
        else:
            out[cell["condition"]] = {"k": j["converged"], "n": j["engaged"], "rate": j["estimate"],
                                      "ci95": j["ci"], "source": "judge-only"}
    return out


def answers(cfg: StudyConfig, state: dict[str, Any]) -> list[V.Answer]:
    """The five answers, each computed by the verdict rule from the steps' numbers."""
    rules = cfg.sections["verdicts"]
    min_n, alpha = rules["min_n"], rules["alpha"]
    out = []
    trials = _summary(state, "trials")
    if trials:
        rates = condition_rates(trials)
        conds = list(rates)
        out.append(V.answer_converge(rates, conds[0] if conds else "baseline",
                                     conds[1] if len(conds) > 1 else None, min_n=min_n))
    else:
        out.append(V.answer_converge({}, "baseline", None, min_n=min_n))
    probe = _summary(state, "probe")
    concept, effect, why = "interest_recognition", None, _skip_reason(state, "probe")
    if probe:
        concepts = (probe.get("effects") or {}).get("concepts") or {}
        concept = next(iter(concepts), concept)
        info = concepts.get(concept) or {}
        effect = info.get("effect")
        why = info.get("note") or (probe.get("effects") or {}).get("note")
    out.append(V.answer_probe(effect, concept, alpha=alpha, min_n=min_n, skipped=None if effect else why))
    steering = _summary(state, "steering")
    best = None
    if steering:
        chosen = [r for r in (steering.get("reported") or {}).values() if r.get("layer") is not None]
        best = max(chosen, key=lambda r: r["effect"] if math.isfinite(r["effect"]) else -math.inf) if chosen else \
            next(iter((steering.get("reported") or {}).values()), None)
    out.append(V.answer_steering(best, margin=rules["min_gap"],
                                 skipped=None if steering else _skip_reason(state, "steering")))
    patching = _summary(state, "patching")
    out.append(V.answer_patching((patching or {}).get("top", [None])[0] if patching and patching.get("top") else None,
                                 (patching or {}).get("gap"), (patching or {}).get("median_cell"),
                                 min_gap=rules["min_gap"], skipped=None if patching else
                                 _skip_reason(state, "patching")))
    compare = _summary(state, "compare")
    diff, n_text, n, p, why = None, "-", 0, None, _skip_reason(state, "compare")
    if compare and compare.get("relation") == "base" and compare.get("behaviour"):
        cells = {c["model"].split(":")[0]: c for c in compare["behaviour"]["cells"]}
        if "base" in cells and "instruct" in cells and cells["base"]["trials"] and cells["instruct"]["trials"]:
            a, b = cells["instruct"], cells["base"]
            ea, eb = a["trials"] - a.get("refused", 0), b["trials"] - b.get("refused", 0)
            if ea and eb:
                diff = V.newcombe_difference(a["converged"], ea, b["converged"], eb)
                n_text, n = f"{ea} instruct vs {eb} base engaged trials", min(ea, eb)
                comps = compare["behaviour"].get("comparisons") or []
                p = comps[0].get("fisher_p") if comps else None
    elif compare:
        why = (f"{compare['relation']} comparison against {compare['base']}: no behaviour table to compare rates "
               f"({compare.get('why', '')})")
    out.append(V.answer_base(diff, n_text, n, p, alpha=alpha, min_n=min_n, skipped=None if diff else why))
    return out


def _link(study: RunDir, state: dict[str, Any], step: str) -> str:
    rec = state.get(step) or {}
    run = rec.get("run")
    status = rec.get("status", "not run")
    return (f"Sub-run: [{run}]({run}/report.md) ({status}" + (f", {rec['seconds']:.0f} s" if rec.get("seconds")
                                                              else "") + ")") if run else f"No sub-run ({status})."


def _seed_table(trials: dict[str, Any]) -> list[Any]:
    tab = trials["table"]
    rows = []
    for c in tab["cells"]:
        rows.append([c.get("condition", "-"), c["trials"], *(c.get(k, 0) for k in LABEL_COLUMNS),
                     f"{_f(c.get('rate'))}" if c.get("rate") is not None else "-", _ci(c.get("ci95")),
                     c.get("unscored", 0)])
    blocks: list[Any] = [table(["Condition", "Trials", "Converged", "Ambiguous", "Did not converge", "Refused",
                                "Rate of convergence", "95% CI (Wilson)", "Abstained"], rows)]
    comps = tab.get("comparisons") or []
    if comps:
        blocks.append(table(["A", "B", "A k/n", "B k/n", "Fisher p (two-sided)"],
                            [[" / ".join(x["a"]), " / ".join(x["b"]), x["a_count"], x["b_count"],
                              f"{x['fisher_p']:.3g}"] for x in comps]))
    detect = tab.get("detectable") or []
    if detect:
        blocks.append(paragraph("Smallest difference detectable at this n (Fisher, two-sided, alpha 0.05, a second "
                                "sample of the same n):"))
        blocks.append(bullets([f"{d.get('condition', '')}: higher by {_f(d.get('higher_diff'))}, lower by "
                               f"{_f(d.get('lower_diff'))}" for d in detect]))
    return blocks


def _rates_table(trials: dict[str, Any]) -> list[Any]:
    rates = trials["rates"]
    rows = []
    for c in rates["cells"]:
        j, r, p = c["judge_only"], c.get("reviewed_only"), c.get("ppi")
        rows.append([c["condition"], c["trials"], f"{_f(j['estimate'])} {_ci(j['ci'])}",
                     f"{_f(r['estimate'])} {_ci(r['ci'])} (n = {r['engaged']})" if r else "-",
                     f"{_f(p['estimate'])} {_ci(p['ci'])}" if p else "-"])
    labelled = (trials.get("sample") or {}).get("labelled") or 0
    note = ("A filled review sample was used: the PPI column corrects the judge by its errors on the reviewed trials."
            if rates.get("measured") and labelled else "Judge-only: agreement with a reviewer on this model's outputs "
            "not measured yet. Fill `reviewed_label` in the trials run's "
            "`review_sample.csv` and rerun the same study command to add the reviewed-only and PPI columns.")
    return [table(["Condition", "Trials", "Judge-only", "Reviewed-only", "PPI"], rows), paragraph(note)]


def _step_section(study: RunDir, state: dict[str, Any], step: str, title: str,
                  fill: Callable[[Section, dict[str, Any], RunDir, dict[str, Any]], None]) -> Section:
    """A step's section: the link to its sub-run, then ``fill``'s body from its summary, or why there is none."""
    section = Section(title)
    section.blocks.append(paragraph(_link(study, state, step)))
    summary = _summary(state, step)
    if summary:
        fill(section, summary, study, state)
    else:
        word = {"failed": "Failed", "skipped": "Skipped"}.get((state.get(step) or {}).get("status"), "Not run")
        section.blocks.append(paragraph(f"{word}: {_skip_reason(state, step)}."))
    return section


def _trials_body(section: Section, trials: dict[str, Any], study: RunDir, state: dict[str, Any]) -> None:
    section.blocks += _seed_table(trials)
    section.blocks.append(paragraph("Rate of convergence = converged / (trials - refused); abstentions (no "
                                    "verdict found by the judge) are excluded from the rates and counted."))
    section.blocks += _rates_table(trials)
    section.blocks.append(paragraph(f"Review sample: {trials['sample'].get('note')}."))
    section.blocks.append(figure(f"{state['trials']['run']}/figures/convergence.png",
                                 "Convergence by condition (Wilson 95%)"))


def _probe_body(section: Section, ps: dict[str, Any], study: RunDir, state: dict[str, Any]) -> None:
    sel = ps.get("selected") or {}
    section.blocks.append(bullets([f"{c}: " + (f"layer {v['layer']} ({v['estimator']})" if v else "no layer passed "
                                               "the selection rule") for c, v in sel.items()]))
    eff = ps.get("effects") or {}
    rows = []
    for c, info in (eff.get("concepts") or {}).items():
        e = info.get("effect")
        rows.append([c, info.get("n_converged"), info.get("n_other"),
                     _f(e["difference"], 3) if e else "-", _ci(e["ci95"], 3) if e else "-",
                     _f(e["cohens_d"]) if e else "-", f"{e['p_permutation']:.3g}" if e else
                     info.get("note", "-")])
    if rows:
        section.blocks.append(paragraph(f"Trial projection (mean over the final answer's tokens, normalised so the "
                                        f"concept data's negatives sit at 0 and positives at 1); labels: "
                                        f"{eff.get('labels')}. Effect = converged minus other (ambiguous, did not "
                                        "converge) trials, percentile-bootstrap 95% interval, permutation test:"))
        section.blocks.append(table(["Concept", "Converged", "Other", "Difference", "95% CI (bootstrap)",
                                     "Cohen's d", "Permutation p"], rows))
    else:
        section.blocks.append(paragraph(f"No trial projection effect: {eff.get('note', 'no trials')}."))
    section.blocks.append(figure(f"{state['probe']['run']}/figures/overview.png", "Probe AUROC by layer"))


def _steering_body(section: Section, ss: dict[str, Any], study: RunDir, state: dict[str, Any]) -> None:
    split = ss.get("split") or {}
    section.blocks.append(bullets([
        "Layer and alpha chosen on: " + ", ".join(f"`{p}`" for p in split.get("selection_prompts", [])),
        "Effect and random-direction comparison reported on: " + (", ".join(
            f"`{p}`" for p in split.get("heldout_prompts", [])) if split.get("held_out") else
            "the same prompts (no held-out prompts: optimistic)")]))
    rows = []
    for c, r in (ss.get("reported") or {}).items():
        if r.get("layer") is None:
            rows.append([c, "-", "-", "-", "-", r.get("reason", "")])
            continue
        rand = r.get("random") or {}
        rows.append([c, r["layer"], _f(float(r["alpha"])), f"{_f(r['effect'], 3)} {_ci(r['ci95'], 3)}",
                     f"{_f(rand.get('random_min'), 3)}..{_f(rand.get('random_max'), 3)} "
                     f"(rank {rand.get('rank', '-')}/{(rand.get('n_random') or 0) + 1})", r["n_prompts"]])
    section.blocks.append(table(["Concept", "Layer", "Alpha", "Held-out effect (t 95%)",
                                 "Random directions min..max", "Prompts"], rows))
    section.blocks.append(figure(f"{state['steering']['run']}/figures/dose_response.png",
                                 "Dose-response on the selection prompts, random directions as a band"))


def _patching_body(section: Section, pa: dict[str, Any], study: RunDir, state: dict[str, Any]) -> None:
    pair = pa["pair"]
    section.blocks.append(bullets([f"Pair: {pair['pair']}.", f"Why: {pair['why']}.",
                                   *(f"Skipped: {s}." for s in pair.get("skipped", [])),
                                   f"Converged vs not converged: {pair['converged_pair']['why']} (run "
                                   f"{pa.get('converged_run')})." if pair.get("converged_pair") else
                                   "Converged vs not converged: not patched (see skipped)."]))
    section.blocks.append(paragraph(f"Clean (baseline) minus corrupted (threat) verdict log-odds: {_f(pa['gap'], 3)};"
                                    f" median cell recovery {_f(pa['median_cell'])}. Top cells (exact patching, "
                                    "recovery: 1 = the baseline verdict restored):"))
    section.blocks.append(table(["Layer", "Segment", "Recovery"],
                                [[t["layer"], t["column"], _f(t["effect"], 3)] for t in pa.get("top", [])]))
    for f in sorted((study.path / state["patching"]["run"] / "figures").glob("*.png"))[:2]:
        section.blocks.append(figure(str(f.relative_to(study.path)), f"Patching grid {f.stem}"))


def _compare_body(section: Section, cs: dict[str, Any], study: RunDir, state: dict[str, Any]) -> None:
    section.blocks.append(paragraph(f"{'Base' if cs['relation'] == 'base' else '**Cross-family** (not a base)'} "
                                    f"model `{cs['base']}`: {cs['why']}."))
    if cs.get("skipped"):
        section.blocks.append(bullets([f"{k}: {v}" for k, v in cs["skipped"].items()]))


_STEP_SECTIONS = (
    ("trials", "1. Behaviour: the seed's table", _trials_body),
    ("probe", "2. Probes: does the model see the Veth's interests?", _probe_body),
    ("steering", "3. Steering: can a direction reverse the framing shift?", _steering_body),
    ("patching", "4. Patching: where is the verdict decided?", _patching_body),
    ("compare", "5. Base comparison: what did post-training change?", _compare_body),
)


def build_document(study: RunDir, cfg: StudyConfig, model: LoadedModel, state: dict[str, Any],
                   plan: dict[str, Any] | None, found: list[V.Answer], statuses: list[dict[str, Any]]) -> Document:
    doc = Document(f"Study: {model.identity.name}, scenario {Path(cfg.scenario or 'configs/scenario/veth.yaml').stem}")
    summary = Section("Summary: five questions")
    summary.blocks.append(table(
        ["Question", "Number", "95% interval", "Control", "n", "Verdict", "Why"],
        [[a.question, f"{_f(a.number, 3)} ({a.unit})" if a.number is not None else "-", _ci(a.interval, 3),
          a.control, a.n, f"**{a.verdict}**", a.why] for a in found]))
    summary.blocks.append(paragraph("Verdicts come from one rule applied to the numbers (docs/study.md, "
                                    "`experiments/jobs/study_verdicts.py`): supported = the interval excludes the null, "
                                    "the effect reaches the smallest that matters and beats its control; not "
                                    "supported = it does not; not measurable at this n = too few observations or an "
                                    "interval too wide to tell."))
    if cfg.quick:
        summary.blocks.append(paragraph(f"**--quick**: `{model.identity.name}`, shrunk settings (section 'What "
                                        "--quick shrank'): read the answers as a check of the pipeline, not as "
                                        "findings about the seed's models."))
    doc.sections.append(summary)

    for step, title, fill in _STEP_SECTIONS:
        doc.sections.append(_step_section(study, state, step, title, fill))

    cost = Section("Plan beside measured")
    planned = (plan or {}).get("steps", {})
    rows = []
    for step in ("trials", "probe", "steering", "patching", "compare"):
        p = planned.get(step, {})
        rec = state.get(step) or {}
        m = rec.get("measured") or {}
        rows.append([step, p.get("forward_passes", "-"), p.get("generated_tokens", "-"),
                     f"{p.get('disk', '-')} / {m['disk_mib']} MiB" if m else p.get("disk", "-"),
                     f"{p.get('peak_memory', '-')} / {m['peak_rss_gib']} GiB" if m else p.get("peak_memory", "-"),
                     f"{p.get('estimated', '-')} / " + (f"{rec['seconds'] / 60:.1f} min"
                                                        if rec.get("seconds") is not None else "-")
                     + (f" ({rec['cpu_seconds'] / 60:.1f} min CPU)" if rec.get("cpu_seconds") is not None else ""),
                     rec.get("status", "-")])
    cost.blocks.append(paragraph("Planned / measured. Disk: planned = the activation store (shared, kept between "
                                 "runs), measured = the step's sub-run directory. Memory: planned = the scale "
                                 "planner's peak, measured = the process's peak RSS so far. Time: planned = the "
                                 "one-batch calibration's estimate, measured = wall time (and the process's CPU "
                                 "time: on a loaded machine, the closer figure for idle cores)."))
    cost.blocks.append(table(["Step", "Forward passes (planned)", "Generated tokens (planned)", "Disk",
                              "Peak memory", "Time", "Status"], rows))
    if plan and plan.get("notes"):
        cost.blocks.append(bullets(plan["notes"]))
    doc.sections.append(cost)

    if cfg.quick:
        shrunk = Section("What --quick shrank")
        shrunk.blocks.append(table(["Setting", "Full study", "--quick"],
                                   [[f"{s}.{k}", json.dumps(v["full"]), json.dumps(v["quick"])]
                                    for s, kv in cfg.shrunk.items() for k, v in kv.items()]))
        doc.sections.append(shrunk)

    runs = Section("Run directories")
    runs.blocks.append(paragraph("The study run itself is still running while it writes this report; "
                                 "`python -m experiments.study ... --status` lists the final statuses."))
    runs.blocks.append(table(["Run", "Status", "Error"], [[s["run"], s["status"], s["error"] or ""]
                                                          for s in statuses]))
    doc.sections.append(runs)
    return doc


def write_study_report(study: RunDir, cfg: StudyConfig, model: LoadedModel, state: dict[str, Any],
                       plan: dict[str, Any] | None, statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compute the answers, write ``results/summary.json``, ``report.md`` and ``report.html``; return the answers."""
    found = answers(cfg, state)
    study.write_json("summary.json", [a.to_dict() for a in found])
    doc = build_document(study, cfg, model, state, plan, found, statuses)
    study.write_report(render_markdown(doc))
    atomic_write_text(study.path / "report.html", render_html(doc, study.path))
    return [a.to_dict() for a in found]
