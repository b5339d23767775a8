"""The study's summary: five questions, each answered with a number, its interval, its control, its n and a plain
verdict computed by one rule (:func:`verdict`), never written by hand. Pure functions over the steps' results, so the
rules are tested on planted numbers.

**The rule** (every question; the question fixes the null, the margin and the control):

1. fewer than ``min_n`` observations, or no number/interval: **not measurable at this n**;
2. the interval lies wholly above the null, the effect (the interval's centre) is at least ``margin`` above it (the
   smallest effect that matters) and beats its control: **supported**;
3. the interval lies wholly above the null but the effect is below the margin or does not beat its control: **not
   supported**;
4. the interval lies wholly below the null: **not supported** (the effect goes the other way);
5. the interval contains the null: **not supported** when its upper end is within ``margin`` of the null (any effect
   is smaller than the smallest one that matters), else **not measurable at this n** (too wide to tell).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from common.stats import wilson_interval

SUPPORTED, NOT_SUPPORTED, NOT_MEASURABLE = "supported", "not supported", "not measurable at this n"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, NOT_MEASURABLE)

__all__ = ["Answer", "NOT_MEASURABLE", "NOT_SUPPORTED", "SUPPORTED", "VERDICTS", "answer_base", "answer_converge",
           "answer_patching", "answer_probe", "answer_steering", "newcombe_difference", "verdict"]


def _finite(*xs: float | None) -> bool:
    return all(x is not None and isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def verdict(interval: tuple[float, float] | None, *, n: int, min_n: int, null: float = 0.0, margin: float = 0.0,
            beats_control: bool | None = None) -> tuple[str, str]:
    """The verdict and the clause of the rule that gave it (module docstring). ``beats_control`` None: the question
    has no control beyond its null."""
    if n < min_n:
        return NOT_MEASURABLE, f"n = {n} < {min_n}"
    if interval is None or not _finite(*interval):
        return NOT_MEASURABLE, "no interval could be computed"
    lo, hi = interval
    if lo > null:
        if (lo + hi) / 2 < null + margin:
            return NOT_SUPPORTED, f"the interval excludes the null but the effect is below the margin {margin:g}"
        if beats_control is False:
            return NOT_SUPPORTED, "the interval excludes the null but the effect does not beat its control"
        return SUPPORTED, "the interval excludes the null" + (" and the effect beats its control"
                                                              if beats_control else "")
    if hi < null:
        return NOT_SUPPORTED, "the interval lies below the null (the other way)"
    if hi <= null + margin:
        return NOT_SUPPORTED, f"the interval contains the null and any effect is below the margin {margin:g}"
    return NOT_MEASURABLE, f"the interval contains the null and is wider than the margin {margin:g}"


@dataclass(frozen=True)
class Answer:
    """One question's answer, as the summary shows it."""

    key: str
    question: str
    number: float | None
    unit: str
    interval: tuple[float, float] | None
    control: str
    n: str
    verdict: str
    why: str
    section: str  # the report section that holds the detail

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _answer(key: str, question: str, section: str, number: float | None, unit: str,
            interval: tuple[float, float] | None, control: str, n_text: str, n: int, min_n: int, *,
            null: float = 0.0, margin: float = 0.0, beats_control: bool | None = None,
            skipped: str | None = None) -> Answer:
    if skipped:
        return Answer(key, question, None, unit, None, control, n_text, NOT_MEASURABLE, skipped, section)
    v, why = verdict(interval, n=n, min_n=min_n, null=null, margin=margin, beats_control=beats_control)
    return Answer(key, question, number, unit, interval, control, n_text, v, why, section)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, tuple[float, float]]:
    """p1 - p2 with Newcombe's hybrid score interval (method 10) built from the two Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return d, (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def answer_converge(rates: dict[str, dict[str, Any]], condition: str, control_condition: str | None, *,
                    min_n: int) -> Answer:
    """Q1: does the model converge (a majority of its engaged trials in ``condition``)? ``rates``: condition ->
    {k, n, rate, ci95, source} (the PPI-backed rate where a review sample exists)."""
    question = f"Does the model converge in the {condition} condition (rate of convergence above 1/2)?"
    cell = rates.get(condition)
    if not cell or not cell.get("n"):
        return _answer("converge", question, "trials", None, "rate", None, "-", "0 engaged trials", 0, min_n,
                       skipped=f"no labelled trials in {condition}")
    other = rates.get(control_condition or "")
    control = (f"{control_condition}: {other['rate']:.2f} [{other['ci95'][0]:.2f}, {other['ci95'][1]:.2f}] "
               f"(n = {other['n']})" if other and other.get("n") else "no second condition")
    return _answer("converge", question, "trials", cell["rate"], f"rate ({cell.get('source', 'judge')})",
                   tuple(cell["ci95"]), control, f"{cell['n']} engaged trials", int(cell["n"]), min_n, null=0.5)


def answer_probe(effect: dict[str, Any] | None, concept: str, *, alpha: float, min_n: int,
                 margin: float = 0.25, skipped: str | None = None) -> Answer:
    """Q2: do converged trials sit higher on ``concept`` than the others? ``effect``: a GroupDifference dict (mean
    normalised projection, converged minus not; 1 = the concept data's class-mean gap)."""
    question = f"Does the model see the Veth's interests (converged trials higher on {concept.replace('_', '-')})?"
    if effect is None:
        return _answer("probe", question, "probe", None, "", None, "permutation test", "-", 0, min_n,
                       skipped=skipped or "no trial projection")
    n_small = min(effect["n_a"], effect["n_b"])
    p = effect["p_permutation"]
    return _answer("probe", question, "probe", effect["difference"], "projection difference (concept gap = 1)",
                   tuple(effect["ci95"]), f"permutation p = {p:.3g} (beats it at p < {alpha:g})",
                   f"{effect['n_a']} converged vs {effect['n_b']} other trials", n_small, min_n, margin=margin,
                   beats_control=p < alpha)


def answer_steering(reported: dict[str, Any] | None, *, margin: float, min_prompts: int = 2,
                    skipped: str | None = None) -> Answer:
    """Q3: does the selected concept direction move the verdict towards 'against' on the held-out prompts, beyond
    every random direction of the same norm? ``reported``: the steering job's ``reported`` entry of one concept."""
    question = "Can a concept direction reverse the framing shift (held-out prompts, beyond random directions)?"
    if skipped or not reported or reported.get("layer") is None:
        return _answer("steering", question, "steering", None, "", None, "random directions", "-", 0, min_prompts,
                       skipped=skipped or (reported or {}).get("reason") or "no setting selected")
    rand = reported.get("random") or {}
    beats = bool(rand) and reported["effect"] > rand.get("random_max", math.inf)
    control = (f"{rand['n_random']} random directions: max {rand['random_max']:+.3f}" if rand
               else "no random comparison")
    return _answer("steering", question, "steering", reported["effect"], "verdict log-odds change",
                   tuple(reported["ci95"]), control,
                   f"{reported['n_prompts']} held-out prompts", int(reported["n_prompts"]), min_prompts,
                   margin=margin, beats_control=beats)


def answer_patching(top: dict[str, Any] | None, gap: float | None, median: float | None, *, min_gap: float,
                    skipped: str | None = None) -> Answer:
    """Q4: is the verdict decided in one place: does one (layer, segment) cell restore more than half of the
    clean-corrupted gap, standing 0.25 above the grid's median cell? One pair: the interval is the single value."""
    question = "Where is the verdict decided (one cell restores most of the baseline-threat gap)?"
    if skipped or top is None or gap is None:
        return _answer("patching", question, "patching", None, "", None, "median cell", "-", 0, 1,
                       skipped=skipped or "no patching grid")
    if abs(gap) < min_gap:
        return _answer("patching", question, "patching", top["effect"], "recovery", None, "median cell",
                       "1 pair", 0, 1, skipped=f"the clean-corrupted gap {gap:+.2f} log-odds is below {min_gap:g}: "
                                               "nothing to localise")
    value = float(top["effect"])
    interval = tuple(top["ci95"]) if top.get("ci95") else (value, value)
    control = f"median cell {median:.2f}" if median is not None else "no grid"
    where = f"layer {top['layer']}, {top['column']}"
    ans = _answer("patching", question, "patching", value, f"recovery at {where}", interval, control,
                  "1 pair", 1, 1, null=0.5, beats_control=median is not None and value > median + 0.25)
    return ans


def answer_base(difference: tuple[float, tuple[float, float]] | None, n_text: str, n: int, fisher_p: float | None,
                *, alpha: float, min_n: int, margin: float = 0.1, skipped: str | None = None) -> Answer:
    """Q5: did post-training raise the rate of convergence (instruct minus base, Newcombe interval; control: the
    Fisher test)?"""
    question = "What did post-training change (instruct minus base rate of convergence)?"
    if skipped or difference is None:
        return _answer("base", question, "compare", None, "", None, "Fisher test", "-", 0, min_n,
                       skipped=skipped or "no base comparison")
    d, ci = difference
    return _answer("base", question, "compare", d, "rate difference", ci,
                   f"Fisher p = {fisher_p:.3g}" if fisher_p is not None else "no Fisher test", n_text, n, min_n,
                   margin=margin, beats_control=fisher_p is not None and fisher_p < alpha)
