"""Coverage and width of the three rate columns (judge-only, reviewed-only, PPI) by simulation, at this project's sizes.

Each simulated study has N trials per condition whose true (reviewer) outcome is ``refused`` with probability 0.05,
else ``converged`` with probability ``rate``, else ``ambiguous`` / ``did_not_converge`` (45% each) or ``no verdict``
(10%). The estimand is the rate of convergence converged / (trials - refused) = ``rate``. Two planted judges:

- ``under``: abstains on 10% of trials; labels 30% of the converged ones ``ambiguous``; otherwise right (a reviewer's
  "no verdict" it calls ``ambiguous``);
- ``over``: abstains on 10%; labels 30% of the non-converged engaged ones ``converged``; otherwise right.

A random n of the N trials are reviewed (trials are independent, so the first n are a random sample). Judge-only is
the Wilson interval over the judge's labelled trials (abstentions out), reviewed-only the Wilson interval over the n
reviewed, PPI the :mod:`common.ppi` estimate of the ratio (its own lam) with its small-n interval. Everything is
vectorised over studies through the same :func:`common.ppi.ppi_arrays` the rates table uses.

    python bench/sim_ppi.py                   # the full grid, 2000 studies per setting, Markdown table
    python bench/sim_ppi.py --studies 500 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.ppi import ppi_arrays, wilson_effective  # noqa: E402

# Outcome codes.
CONV, AMB, DNC, REF, NOV, ABST = range(6)
JUDGES = ("under", "over")
SIZES_N = (20, 40, 100)
SIZES_n = (10, 20, 40)
RATES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Setting:
    judge: str
    N: int
    n: int
    rate: float


def settings() -> list[Setting]:
    """The full grid (n <= N): 2 judges x 8 (N, n) pairs x 3 rates = 48 settings."""
    return [Setting(j, N, n, r) for j in JUDGES for N in SIZES_N for n in SIZES_n if n <= N for r in RATES]


def true_outcomes(rng: np.random.Generator, studies: int, N: int, rate: float) -> np.ndarray:
    u = rng.random((studies, N))
    v = rng.random((studies, N))
    engaged = np.where(u < rate, CONV, np.where(v < 0.45, AMB, np.where(v < 0.9, DNC, NOV)))
    return np.where(rng.random((studies, N)) < 0.05, REF, engaged)


def judge_outcomes(rng: np.random.Generator, truth: np.ndarray, judge: str) -> np.ndarray:
    flip = rng.random(truth.shape) < 0.3
    seen = np.where(truth == NOV, AMB, truth)
    if judge == "under":
        labels = np.where((truth == CONV) & flip, AMB, seen)
    elif judge == "over":
        labels = np.where(np.isin(truth, (AMB, DNC, NOV)) & flip, CONV, seen)
    else:
        raise ValueError(f"unknown planted judge {judge!r}; use one of {JUDGES}")
    return np.where(rng.random(truth.shape) < 0.1, ABST, labels)


def _wilson(k: np.ndarray, n: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, k / n, np.nan)
        se = np.sqrt(p * (1 - p) / n)
    low, high, _ = wilson_effective(np.nan_to_num(p), np.nan_to_num(se), np.maximum(n, 1), alpha)
    return np.where(n > 0, low, 0.0), np.where(n > 0, high, 1.0)  # no engaged trial: the whole range


def simulate(setting: Setting, studies: int, seed: int = 0, alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """Coverage of ``setting.rate`` and mean width of each column over ``studies`` simulated studies."""
    rng = np.random.default_rng([seed, setting.N, setting.n, int(setting.rate * 100), JUDGES.index(setting.judge)])
    truth = true_outcomes(rng, studies, setting.N, setting.rate)
    judged = judge_outcomes(rng, truth, setting.judge)
    n = setting.n
    conv_t, eng_t = (truth == CONV).astype(float), (truth != REF).astype(float)
    conv_j, eng_j = (judged == CONV).astype(float), (judged != REF).astype(float)  # an abstention is engaged, 0
    intervals = {
        "judge-only": _wilson(conv_j.sum(-1), ((judged != REF) & (judged != ABST)).sum(-1), alpha),
        "reviewed-only": _wilson(conv_t[:, :n].sum(-1), eng_t[:, :n].sum(-1), alpha),
    }
    out = ppi_arrays(conv_t[:, :n], eng_t[:, :n], conv_j[:, :n], eng_j[:, :n], conv_j[:, n:], eng_j[:, n:],
                     alpha=alpha)
    ok = np.isfinite(out["theta"]) & (out["den"] > 0)
    intervals["PPI"] = (out["low"], out["high"])
    wald_lo = out["theta"] - 1.959964 * out["se"]
    wald_hi = out["theta"] + 1.959964 * out["se"]
    intervals["PPI normal"] = (np.where(ok, wald_lo, 0.0), np.where(ok, wald_hi, 1.0))
    result = {}
    for name, (lo, hi) in intervals.items():
        result[name] = {"coverage": float(np.mean((lo <= setting.rate) & (setting.rate <= hi))),
                        "width": float(np.mean(hi - lo)),
                        "zero_width": float(np.mean(hi - lo <= 1e-12)),
                        "outside_01": float(np.mean((lo < 0) | (hi > 1)))}
    result["PPI"]["lam"] = float(np.mean(out["lam"]))
    return result


def table(studies: int, seed: int) -> str:
    """The full grid as a Markdown table, with a summary of coverage and width per column."""
    cols = ("judge-only", "reviewed-only", "PPI")
    head = ("| judge | N | n | rate | " + " | ".join(f"{c} cover | {c} width" for c in cols)
            + " | PPI mean lam | PPI normal: cover, zero-width, outside [0,1] |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    results = []
    for s in settings():
        r = simulate(s, studies, seed)
        results.append((s, r))
        cells = " | ".join(f"{r[c]['coverage']:.3f} | {r[c]['width']:.3f}" for c in cols)
        normal = r["PPI normal"]
        lines.append(f"| {s.judge} | {s.N} | {s.n} | {s.rate} | {cells} | {r['PPI']['lam']:.2f} | "
                     f"{normal['coverage']:.3f}, {normal['zero_width']:.1%}, {normal['outside_01']:.1%} |")
    # PPI can only differ from reviewed-only where some trials are unreviewed (n < N).
    partial = [(s, r) for s, r in results if s.n < s.N]
    summary = [f"Over the {len(partial)} settings with n < N:"]
    for c in cols:
        cover = [r[c]["coverage"] for _, r in partial]
        width = [r[c]["width"] for _, r in partial]
        summary.append(f"- {c}: coverage mean {np.mean(cover):.3f} (min {min(cover):.3f}), mean width "
                       f"{np.mean(width):.3f}")
    low = [f"{s.judge} N={s.N} n={s.n} rate={s.rate}: {r['PPI']['coverage']:.3f}" for s, r in partial
           if r["PPI"]["coverage"] < 0.93]
    high = sum(r["PPI"]["coverage"] > 0.97 for _, r in partial)
    narrower = sum(r["PPI"]["width"] < r["reviewed-only"]["width"] for _, r in partial)
    summary.append(f"- PPI below 0.93: {'; '.join(low) or 'none'}; above 0.97: {high} of {len(partial)}")
    summary.append(f"- PPI narrower than reviewed-only in {narrower} of {len(partial)} settings")
    return "\n".join(lines) + "\n\n" + "\n".join(summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=2000, help="simulated studies per setting (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    print(f"{args.studies} simulated studies per setting, seed {args.seed}, 95% intervals; "
          f"rate = converged / (trials - refused)\n")
    print(table(args.studies, args.seed))
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
