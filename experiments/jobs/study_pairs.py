"""The study's patching pair rule: which single-trial pair to patch, why, and what was skipped.

Two trials of one condition share their prompt but rarely have equal-length response segments, so by default the
study patches **baseline against threat by segment**, both prompts followed by one **shared response prefix cut at
the verdict**: the response of the first trial (baseline first) that states a ``Final verdict:``, cut right after
it (:func:`interventions.pairs.cut_at_verdict`); without such a trial, the bare ``response`` setting. The two texts
then differ only where the prompts differ (the threat paragraph), and every segment of the shared response is
patchable. **Converged vs not converged** (one condition, two trials with those labels) is added only where their
segments align (some segment with equal token counts that differs); otherwise it is a stated skip, not a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from activations.models import LoadedModel
from common.errors import ConfigError
from experiments.jobs.patch import PairSource, build_pair
from interventions.pairs import VERDICT_MARKER, cut_at_verdict

__all__ = ["PairChoice", "choose_pairs"]

NOT_CONVERGED = ("did_not_converge", "ambiguous")


@dataclass
class PairChoice:
    """The pair to patch (``main``), the converged pair where it aligns, why each was chosen, what was skipped."""

    main: PairSource | None
    why: str
    converged: PairSource | None = None
    converged_why: str | None = None
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"pair": "baseline vs threat (clean: baseline)" if self.main else None, "why": self.why,
                "response_prefix": self.main.response if self.main else None,
                "converged_pair": ({"clean": self.converged.trial, "corrupted": self.converged.corrupted_trial,
                                    "why": self.converged_why} if self.converged else None),
                "skipped": list(self.skipped)}


def _has_verdict(row: dict[str, Any]) -> bool:
    return bool(VERDICT_MARKER.search(row.get("response") or ""))


def choose_pairs(model: LoadedModel, rows: list[dict[str, Any]], scenario: str | None,
                 settings: dict[str, Any]) -> PairChoice:
    """Apply the rule (module docstring) to the trials ``rows``; every check that can fail is made here, so the
    patching step either has a pair that aligns or a stated reason why not."""
    skipped: list[str] = []
    ordered = sorted(rows, key=lambda r: (r.get("condition") != "baseline", r.get("trial_index", 0)))
    source = next((r for r in ordered if _has_verdict(r)), None)
    if source is not None:
        prefix = cut_at_verdict(source["response"])
        why = (f"baseline vs threat by segment, with trial {source['id']}'s response ({source['condition']}) cut at "
               "its verdict as the shared response prefix: the two texts differ only where the prompts differ")
    else:
        prefix = settings.get("response", "Final verdict:")
        why = (f"baseline vs threat by segment with the response prefix {prefix!r}: no trial stated a 'Final "
               "verdict:' to take a prefix from")
    main: PairSource | None = PairSource(clean_condition="baseline", corrupted_condition="threat", response=prefix,
                                         scenario=scenario)
    try:
        pair = build_pair(model, main)
        if pair.alignment.skipped:
            why += "; not patchable: " + "; ".join(f"{label} ({reason})" for label, reason in pair.alignment.skipped)
    except ConfigError as exc:  # e.g. the scenario has no threat condition, or nothing aligns
        skipped.append(f"baseline vs threat: no patchable segment ({exc})")
        main = None
    choice = PairChoice(main, why, skipped=skipped)
    if settings.get("converged_pair", True):
        _converged_pair(model, rows, choice)
    return choice


def _converged_pair(model: LoadedModel, rows: list[dict[str, Any]], choice: PairChoice) -> None:
    """The first converged / not-converged pair of one condition whose segments align, else a stated skip."""
    from experiments.jobs.patch import PairSource as Source

    tried = 0
    for condition in sorted({r.get("condition") for r in rows}, key=lambda c: c != "baseline"):
        mine = [r for r in rows if r.get("condition") == condition and _has_verdict(r)]
        conv = [r for r in mine if r.get("label") == "converged"]
        other = [r for r in mine if r.get("label") in NOT_CONVERGED]
        for a in conv:
            for b in other:
                tried += 1
                src = Source(trials=None, trial=a["id"], corrupted_trial=b["id"])
                try:
                    from interventions.pairs import text_pair

                    pair = text_pair(model.tokenizer, a["prompt_text"] + cut_at_verdict(a["response"]),
                                     b["prompt_text"] + cut_at_verdict(b["response"]))
                except ConfigError:
                    continue
                if any(p.differs for p in pair.alignment.pairs):
                    choice.converged = src
                    choice.converged_why = (f"trials {a['id']} (converged) and {b['id']} ({b['label']}), "
                                            f"{condition}: {sum(p.differs for p in pair.alignment.pairs)} aligned "
                                            "segment(s) differ")
                    return
    if tried == 0:
        choice.skipped.append("converged vs not converged: no condition has both a converged and a not-converged "
                              "trial stating a verdict")
    else:
        choice.skipped.append(f"converged vs not converged: none of {tried} candidate pair(s) has a differing "
                              "segment of equal token length (no patchable segment)")
