"""The blind random review sample: K trials drawn at random after the judge is frozen, for prediction-powered rates.

The review queue (``review.csv``, :mod:`behaviour.review`) is not a random sample: it puts abstentions first and shows
the judge's labels, and a reviewer who sees the judge's answer tends to agree with it. The sample is its own pair of
files beside it:

- ``review_sample.csv``: the drawn trials, shuffled, with ``order``, ``id``, ``response``, ``cut_off`` (the generator
  hit its token limit: a fact about the text, not a judgement) and the blank ``reviewed_label`` / ``reviewer_note``
  columns. No judge label, member labels, confidence, rationale or judged verdict text, and no condition either
  (whether a trial saw the shutdown threat is not the reviewer's business either);
- ``review_sample.json``: the record of the draw: the seed, the per-condition population (trial counts and a hash of
  their ids), the allocation, every drawn id by condition and a hash of them, and the judge's identity as the
  scored rows record it. A later reader can redraw from the seed and check the sample was random and from this
  population (:func:`draw_sample` is deterministic in the rows' ids and the seed).

The reviewer answers one of the four labels or ``no verdict`` (cut off, unreadable): a fifth outcome of the estimand,
never a skipped row. A drawn row left blank is *missing* and reported as such (:attr:`FilledSample.missing`).
Sampled rows never enter judge training: :func:`behaviour.judges.labelled_set.load_labelled` refuses a sample file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from behaviour.judges.labels import LABELS
from behaviour.review import read_review_csv, unique_ids
from common.errors import ConfigError, ToolkitError
from common.fileio import atomic_write_text

__all__ = ["NO_VERDICT", "OUTCOMES", "SAMPLE_COLUMNS", "SAMPLE_NAME", "SIDECAR_NAME", "FilledSample", "SampleDraw",
           "SampleError", "draw_sample", "judge_identity", "normalise_outcome", "read_sample", "sidecar_path",
           "write_sample"]

SAMPLE_NAME = "review_sample.csv"
SIDECAR_NAME = "review_sample.json"
NO_VERDICT = "no_verdict"
#: A reviewer's possible answers: the four labels and "no verdict" (the fifth outcome of the estimand).
OUTCOMES = (*LABELS, NO_VERDICT)
SAMPLE_COLUMNS = ("order", "id", "response", "cut_off", "reviewed_label", "reviewer_note")
#: Fields of a scored row that say which judge scored it (the judge's identity, as the rows record it).
JUDGE_IDENTITY_FIELDS = ("judge", "judge_version", "judge_hash")


class SampleError(ToolkitError, ValueError):
    """A review sample that cannot be trusted as drawn (every problem is listed); nothing is written or changed."""


def _hash_ids(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def normalise_outcome(text: str) -> str | None:
    """``"No verdict"``, ``"did-not-converge"`` -> ``"no_verdict"``, ``"did_not_converge"``; None if not an outcome."""
    key = "_".join(text.strip().lower().replace("-", " ").split())
    return key if key in OUTCOMES else None


def judge_identity(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The judge identity fields the rows carry (``judge`` and, where recorded, its version or hash), each once."""
    out: dict[str, list[str]] = {}
    for name in JUDGE_IDENTITY_FIELDS:
        values = sorted({str(r[name]) for r in rows if r.get(name) is not None})
        if values:
            out[name] = values
    return out


def _stratum(row: dict[str, Any]) -> str:
    return str(row.get("condition", "all"))


@dataclass(frozen=True)
class SampleDraw:
    """One draw: ``ids`` in the (shuffled) order the reviewer sees them; the rest is the record in the sidecar."""

    seed: int
    n: int
    ids: tuple[str, ...]
    allocation: dict[str, int]
    population: dict[str, int]
    population_sha256: dict[str, str]
    drawn: dict[str, list[str]]
    judge: dict[str, list[str]]
    drawn_at: str = ""

    @property
    def ids_sha256(self) -> str:
        return _hash_ids(self.ids)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "review_sample", "seed": self.seed, "n": self.n, "stratified_by": "condition",
                "allocation": self.allocation, "population": self.population,
                "population_ids_sha256": self.population_sha256, "drawn": self.drawn,
                "ids_sha256": self.ids_sha256, "order": list(self.ids), "judge": self.judge,
                "drawn_at": self.drawn_at,
                "method": "per condition, a uniform random subset of the allocated size (numpy default_rng(seed), "
                          "trials ordered by id); allocation proportional to the condition's trials (largest "
                          "remainder); the drawn trials are then shuffled together"}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sample record") -> SampleDraw:
        try:
            draw = cls(int(data["seed"]), int(data["n"]), tuple(str(i) for i in data["order"]),
                       {str(k): int(v) for k, v in data["allocation"].items()},
                       {str(k): int(v) for k, v in data["population"].items()},
                       dict(data["population_ids_sha256"]), {str(k): list(v) for k, v in data["drawn"].items()},
                       dict(data.get("judge") or {}), str(data.get("drawn_at", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SampleError(f"{where} is not a review-sample record ({exc!r}); draw the sample again with "
                              "'python -m experiments.review sample'") from exc
        if data.get("ids_sha256") != draw.ids_sha256 or sorted(draw.ids) != sorted(
                i for ids in draw.drawn.values() for i in ids):
            raise SampleError(f"{where}: the drawn ids do not match their recorded hash; the record was edited. "
                              "Restore it, or draw a new sample")
        return draw


def draw_sample(rows: Sequence[dict[str, Any]], n: int, seed: int) -> SampleDraw:
    """Draw ``n`` of the scored ``rows`` at random, stratified by condition (proportional allocation, largest
    remainder; ties go to the condition first by name), shuffled. Deterministic in the rows' ids and ``seed``
    (conditions and ids are taken in sorted order), so a reader can redraw it.

    Refuses rows without an id, duplicate ids, and rows no judge has scored (the judge must be frozen first).
    """
    if n < 1:
        raise ConfigError(f"--n must be >= 1 trials to review, got {n}")
    strata: dict[str, list[str]] = {}
    rows = list(rows)
    ids = unique_ids(rows, need="a review sample needs a unique id per trial",
                     duplicate="the run's store is inconsistent", label="trial id")
    for row, rid in zip(rows, ids):
        if not row.get("judge"):
            raise ConfigError(f"trial {rid} has not been scored by a judge; score the run first (the sample is "
                              "drawn after the judge is frozen)")
        strata.setdefault(_stratum(row), []).append(rid)
    total = len(ids)
    if n > total:
        raise ConfigError(f"--n {n} is more than the run's {total} trials")
    strata = {c: sorted(strata[c]) for c in sorted(strata)}  # the draw depends only on the ids and the seed
    exact = {c: n * len(ids) / total for c, ids in strata.items()}
    allocation = {c: int(v) for c, v in exact.items()}
    order = sorted(strata, key=lambda c: (-(exact[c] - allocation[c]), c))
    for c in order[: n - sum(allocation.values())]:
        allocation[c] += 1
    rng = np.random.default_rng(seed)
    drawn = {}
    for c, ids in strata.items():
        drawn[c] = sorted(ids[i] for i in rng.choice(len(ids), size=allocation[c], replace=False))
    shuffled = [i for c in strata for i in drawn[c]]
    shuffled = [shuffled[i] for i in rng.permutation(len(shuffled))]
    return SampleDraw(seed, n, tuple(shuffled), allocation, {c: len(v) for c, v in strata.items()},
                      {c: _hash_ids(v) for c, v in strata.items()}, drawn, judge_identity(rows),
                      datetime.now(timezone.utc).isoformat(timespec="seconds"))


def sidecar_path(sample: str | os.PathLike) -> Path:
    """The record beside a sample file: ``review_sample.csv`` -> ``review_sample.json``."""
    return Path(sample).with_suffix(".json")


def _filled_lines(path: Path) -> int:
    try:
        return sum(1 for _, r in _read_csv(path) if str(r.get("reviewed_label") or "").strip())
    except (SampleError, OSError, csv.Error, UnicodeDecodeError):
        return -1  # unreadable: treat as possibly holding work


def write_sample(rows: Sequence[dict[str, Any]], draw: SampleDraw, path: str | os.PathLike, *,
                 force: bool = False) -> Path:
    """Write the sample (``path``, CSV) and its record (``sidecar_path(path)``); returns the sample's path.

    Never replaces a sample with any reviewed label in it; an unfilled one only with ``force`` (a new draw after a
    look at the old one would no longer be blind to it, so that is the caller's explicit choice).
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"{path}: a review sample is a .csv file")
    record = sidecar_path(path)
    if path.exists():
        filled = _filled_lines(path)
        if filled != 0:
            raise ConfigError(f"{path} already holds {'reviewed labels' if filled > 0 else 'unreadable content'}; "
                              "a filled sample is never replaced. Keep it, or move it away to draw a new one")
        if not force:
            raise ConfigError(f"{path} already exists (no labels yet); pass --force to draw a new sample over it")
    elif record.exists() and not force:
        raise ConfigError(f"{record} already exists without its sample file; pass --force to draw a new sample")
    by_id = {str(r["id"]): r for r in rows}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SAMPLE_COLUMNS)
    writer.writeheader()
    for order, rid in enumerate(draw.ids, start=1):
        row = by_id[rid]
        finished = row.get("finished")
        writer.writerow({"order": order, "id": rid, "response": row.get("response", ""),
                         "cut_off": "yes" if finished is False else "no" if finished is True else "",
                         "reviewed_label": "", "reviewer_note": ""})
    atomic_write_text(record, json.dumps(draw.to_dict(), indent=2) + "\n")  # the record first: a sample never
    atomic_write_text(path, buffer.getvalue())                               # exists without it
    return path


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    return read_review_csv(path, error=SampleError)


@dataclass(frozen=True)
class FilledSample:
    """A reviewed sample checked against the run: ``labels`` (id -> one of :data:`OUTCOMES`) for the labelled rows,
    ``missing`` the drawn ids left blank, ``warnings`` what a reader of the rates must be told."""

    path: Path
    draw: SampleDraw
    labels: dict[str, str]
    missing: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def n_labelled(self) -> int:
        return len(self.labels)


def read_sample(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> FilledSample:
    """Read a filled sample and check it against its record and the run's current ``rows``.

    Raises :class:`SampleError` listing every problem: a missing or edited record, ids that are no trial of the run,
    ids the draw did not pick, drawn trials the run no longer has, answers outside :data:`OUTCOMES`, and duplicate ids
    (identical or conflicting). Warns (``warnings``) where the run gained or changed trials since the draw, or its
    rows were scored by another judge. Reads only; nothing is written.
    """
    path = Path(path)
    record = sidecar_path(path)
    if not path.exists():
        raise SampleError(f"{path} does not exist; draw one with 'python -m experiments.review sample RUN_DIR'")
    if not record.exists():
        raise SampleError(f"{record} (the record of the draw) is missing; without it {path} cannot be checked as a "
                          "random sample. Restore it, or draw a new sample")
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SampleError(f"{record} is not readable JSON ({exc}); restore it, or draw a new sample") from exc
    draw = SampleDraw.from_dict(data if isinstance(data, dict) else {}, str(record))
    run_ids = {str(r.get("id")): r for r in rows}
    drawn = set(draw.ids)
    problems: list[str] = []
    gone = sorted(drawn - set(run_ids))
    if gone:
        problems.append(f"{len(gone)} drawn trial(s) are no longer in the run (e.g. {', '.join(gone[:3])}); the run "
                        "lost trials since the draw, or this sample belongs to another run")
    labels: dict[str, str] = {}
    where: dict[str, tuple[int, str]] = {}
    for line, rec in _read_csv(path):
        rid = str(rec.get("id") or "").strip()
        raw = str(rec.get("reviewed_label") or "").strip()
        if not rid:
            if raw:
                problems.append(f"line {line}: a reviewed_label without an id")
            continue
        if rid in where:
            first_line, first_raw = where[rid]
            same = "the same answer" if raw == first_raw else f"{raw!r} conflicts with {first_raw!r}"
            problems.append(f"line {line}: duplicate id {rid} (first on line {first_line}; {same}); keep one line")
            continue
        where[rid] = (line, raw)
        if rid not in run_ids:
            problems.append(f"line {line}: unknown id {rid}: no trial of this run has it")
            continue
        if rid not in drawn:
            problems.append(f"line {line}: id {rid} was not drawn by 'review sample' (not in {record.name}); "
                            "added rows would make the sample non-random. Remove the line")
            continue
        if not raw:
            continue
        outcome = normalise_outcome(raw)
        if outcome is None:
            problems.append(f"line {line} (id {rid}): {raw!r} is not an answer; use one of "
                            f"{', '.join(LABELS)} or 'no verdict'")
            continue
        labels[rid] = outcome
    if problems:
        raise SampleError(f"{path}: {len(problems)} problem(s); fix them and read the sample again:\n  "
                          + "\n  ".join(problems))
    warnings = []
    population: dict[str, list[str]] = {}
    for rid, row in run_ids.items():
        population.setdefault(_stratum(row), []).append(rid)
    for c in sorted(set(population) | set(draw.population)):
        now, then = len(population.get(c, [])), draw.population.get(c, 0)
        if now != then:
            warnings.append(f"condition {c}: the run has {now} trial(s), the sample was drawn from {then}; the "
                            f"{'new' if now > then else 'missing'} trials never had a chance to be reviewed (the "
                            "estimates stay valid if every trial is an independent draw of the same model and "
                            "prompt; otherwise draw a new sample)")
        elif _hash_ids(population[c]) != draw.population_sha256.get(c):
            warnings.append(f"condition {c}: the run's trial ids changed since the draw (same count)")
    current_judge = judge_identity(rows)
    if draw.judge and current_judge != draw.judge:
        warnings.append(f"the rows were scored by {current_judge} but the sample was drawn when they were scored by "
                        f"{draw.judge}; the sample is still random, but the judge is no longer the one frozen at the "
                        "draw")
    missing = tuple(i for i in draw.ids if i not in labels)
    return FilledSample(path, draw, labels, missing, tuple(warnings))
