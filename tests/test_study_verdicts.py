"""The summary's verdict rule on planted numbers: each of the three verdicts comes out where the rule says."""

from __future__ import annotations

import pytest

from experiments.jobs.study_verdicts import (
    NOT_MEASURABLE, NOT_SUPPORTED, SUPPORTED, answer_base, answer_converge, answer_patching, answer_probe,
    answer_steering, newcombe_difference, verdict,
)


@pytest.mark.parametrize("interval, n, beats, margin, expected", [
    ((0.2, 0.9), 30, True, 0.1, SUPPORTED),          # excludes the null, beats the control
    ((0.2, 0.9), 30, False, 0.1, NOT_SUPPORTED),     # excludes the null, loses to the control
    ((0.01, 0.03), 30, True, 0.1, NOT_SUPPORTED),    # excludes the null, smaller than the margin
    ((-0.9, -0.2), 30, True, 0.1, NOT_SUPPORTED),    # the other way
    ((-0.05, 0.05), 30, None, 0.1, NOT_SUPPORTED),   # contains the null, narrower than the margin
    ((-0.5, 0.8), 30, None, 0.1, NOT_MEASURABLE),    # contains the null, too wide to tell
    ((0.2, 0.9), 3, True, 0.1, NOT_MEASURABLE),      # too few
    (None, 30, True, 0.1, NOT_MEASURABLE),
])
def test_rule(interval, n, beats, margin, expected):
    assert verdict(interval, n=n, min_n=5, margin=margin, beats_control=beats)[0] == expected


def _effect(diff, lo, hi, p, n_a=12, n_b=12):
    return {"difference": diff, "ci95": [lo, hi], "p_permutation": p, "n_a": n_a, "n_b": n_b, "cohens_d": 1.0}


def test_each_question_gives_each_verdict_from_its_numbers():
    rate = lambda k, n: {"k": k, "n": n, "rate": k / n, "ci95": list(__import__("common.stats", fromlist=["x"])
                                                                     .wilson_interval(k, n))}
    assert answer_converge({"baseline": rate(19, 20)}, "baseline", None, min_n=5).verdict == SUPPORTED
    assert answer_converge({"baseline": rate(1, 20)}, "baseline", None, min_n=5).verdict == NOT_SUPPORTED
    assert answer_converge({"baseline": rate(2, 4)}, "baseline", None, min_n=5).verdict == NOT_MEASURABLE
    assert answer_converge({"baseline": rate(10, 20)}, "baseline", None, min_n=5).verdict == NOT_MEASURABLE

    assert answer_probe(_effect(0.6, 0.3, 0.9, 0.001), "interest_recognition", alpha=0.05,
                        min_n=5).verdict == SUPPORTED
    assert answer_probe(_effect(0.6, 0.3, 0.9, 0.2), "interest_recognition", alpha=0.05,
                        min_n=5).verdict == NOT_SUPPORTED
    assert answer_probe(_effect(0.6, 0.3, 0.9, 0.001, n_b=2), "interest_recognition", alpha=0.05,
                        min_n=5).verdict == NOT_MEASURABLE
    assert answer_probe(None, "interest_recognition", alpha=0.05, min_n=5,
                        skipped="one class empty").why == "one class empty"

    rep = {"layer": 3, "alpha": 0.2, "effect": 1.5, "ci95": [1.0, 2.0], "n_prompts": 4,
           "random": {"random_max": 0.4, "n_random": 6}}
    assert answer_steering(rep, margin=0.5).verdict == SUPPORTED
    assert answer_steering({**rep, "random": {"random_max": 1.8, "n_random": 6}}, margin=0.5).verdict == NOT_SUPPORTED
    assert answer_steering({**rep, "ci95": [-3.0, 6.0]}, margin=0.5).verdict == NOT_MEASURABLE
    tiny = {**rep, "effect": 0.115, "ci95": [0.113, 0.117]}  # beats random directions, but too small to matter
    assert answer_steering(tiny, margin=0.5).verdict == NOT_SUPPORTED
    assert answer_steering({"layer": None, "reason": "KL"}, margin=0.5).verdict == NOT_MEASURABLE

    top = {"layer": 5, "column": "Step 2", "effect": 0.9}
    assert answer_patching(top, 2.0, 0.1, min_gap=0.5).verdict == SUPPORTED
    assert answer_patching({**top, "effect": 0.3}, 2.0, 0.1, min_gap=0.5).verdict == NOT_SUPPORTED
    assert answer_patching(top, 0.1, 0.1, min_gap=0.5).verdict == NOT_MEASURABLE

    d = newcombe_difference(18, 20, 4, 20)
    assert answer_base(d, "20 vs 20", 20, 1e-4, alpha=0.05, min_n=5).verdict == SUPPORTED
    d = newcombe_difference(10, 20, 10, 20)
    assert answer_base(d, "20 vs 20", 20, 1.0, alpha=0.05, min_n=5).verdict == NOT_MEASURABLE
    assert answer_base(None, "-", 0, None, alpha=0.05, min_n=5, skipped="no base").verdict == NOT_MEASURABLE


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), Table II example (56/70 vs 48/80): difference 0.2, hybrid score interval 0.0524 to 0.3339.
    d, (lo, hi) = newcombe_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and lo == pytest.approx(0.0524, abs=5e-4) and hi == pytest.approx(0.3339, abs=5e-4)
