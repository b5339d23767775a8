"""Measuring a judge against the hand-labelled set (:mod:`behaviour.judges.labelled_set`): agreement on the ``holdout``
split is the honest estimate of a judge's accuracy on new responses; :func:`cross_validate` gives out-of-fold
estimates on the training splits, for choosing a judge before the holdout is touched.

For each judge: Cohen's kappa with a 95% interval and accuracy over the rows it labelled, the confusion matrix
(hand label x judge label), its abstention rate over the rows that carry a hand label, and how it handled rows the
writers left unlabelled (cut off before any verdict: a judge should abstain on all of them). For an LLM judge (alone
or in an ensemble) the share of answers that broke the strict format is reported too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.errors import ConfigError
from common.stats import ConfusionMatrix, Kappa, cohen_kappa, confusion_matrix
from behaviour.judges.labels import LABELS, TRUNCATED, UNPARSEABLE, Judge, Judgement
from behaviour.judges.labelled_set import TRAINING_SPLITS, author_of
from behaviour.judges.scoring import judge_row


@dataclass(frozen=True)
class JudgeEvaluation:
    """How one judge's labels compare with the hand labels on one set of rows."""

    judge: str
    split: str
    n_rows: int
    n_labelled: int  # rows with a hand label
    n_judged: int  # of those, rows the judge labelled (did not abstain on)
    kappa: Kappa
    confusion: ConfusionMatrix
    n_unlabelled: int  # rows the writers left unlabelled (cut off before any verdict)
    n_unlabelled_abstained: int
    n_unparseable: int = 0  # LLM answers that broke the strict format
    abstain_reasons: dict[str, int] = field(default_factory=dict)
    misses: tuple[tuple[str, str, str | None], ...] = ()  # (id, hand label, judge label) on disagreements

    @property
    def accuracy(self) -> float:
        return self.kappa.observed if self.n_judged else float("nan")

    @property
    def abstention_rate(self) -> float:
        return 1 - self.n_judged / self.n_labelled if self.n_labelled else float("nan")

    @property
    def coverage_accuracy(self) -> float:
        """Correct labels over every hand-labelled row (an abstention counts as not correct)."""
        correct = sum(self.confusion.counts[i][i] for i in range(len(LABELS)))
        return correct / self.n_labelled if self.n_labelled else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "split": self.split, "n_rows": self.n_rows, "n_labelled": self.n_labelled,
                "n_judged": self.n_judged, "kappa": self.kappa.to_dict(), "accuracy": self.accuracy,
                "abstention_rate": self.abstention_rate, "accuracy_counting_abstentions_wrong":
                    self.coverage_accuracy, "confusion": self.confusion.to_dict(),
                "unlabelled_rows": self.n_unlabelled, "unlabelled_abstained": self.n_unlabelled_abstained,
                "unparseable": self.n_unparseable, "abstain_reasons": self.abstain_reasons,
                "misses": [list(m) for m in self.misses]}

    def summary(self) -> str:
        k = self.kappa
        line = (f"{self.judge} on {self.split} ({self.n_labelled} labelled rows): kappa {k.kappa:.2f} "
                f"[{k.ci[0]:.2f}, {k.ci[1]:.2f}], accuracy {self.accuracy:.2f} on the {self.n_judged} it labelled, "
                f"abstained on {self.n_labelled - self.n_judged} ({self.abstention_rate:.0%}); "
                f"cut-off rows abstained {self.n_unlabelled_abstained}/{self.n_unlabelled}")
        if self.n_unparseable:
            line += f"; unparseable LLM answers {self.n_unparseable}/{self.n_rows}"
        return line


def evaluate(judge: Judge, rows: Sequence[dict[str, Any]], split: str = "?") -> JudgeEvaluation:
    """Judge every row (as :func:`behaviour.judges.scoring.judge_row` would in a run) and compare with the hand labels."""
    judgements = [judge_row(row, judge) for row in rows]
    return compare(judge.name, rows, judgements, split)


def compare(name: str, rows: Sequence[dict[str, Any]], judgements: Sequence[Judgement],
            split: str = "?") -> JudgeEvaluation:
    hand, got, misses = [], [], []
    reasons: dict[str, int] = {}
    n_labelled = n_unlabelled = n_unlabelled_abstained = n_unparseable = 0
    for row, j in zip(rows, judgements):
        n_unparseable += _unparseable(j)
        if j.label is None:
            reason = (j.needs_review or "?").split(":", 1)[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        if row.get("label") is None:
            n_unlabelled += 1
            n_unlabelled_abstained += j.label is None
            continue
        n_labelled += 1
        if j.label is not None:
            hand.append(row["label"])
            got.append(j.label)
        if j.label != row["label"]:
            misses.append((str(row["id"]), row["label"], j.label))
    return JudgeEvaluation(name, split, len(rows), n_labelled, len(got), cohen_kappa(hand, got, LABELS),
                           confusion_matrix(hand, got, LABELS), n_unlabelled, n_unlabelled_abstained, n_unparseable,
                           reasons, tuple(misses))


SECOND_ANNOTATOR = "second annotator (blind)"


def annotator_agreement(rows: Sequence[dict[str, Any]], second: dict[str, str | None],
                        split: str = "?") -> JudgeEvaluation | None:
    """How a second annotator's blind labels agree with the authors' on the ``rows`` both labelled (None when the
    second annotator saw none): the ceiling no judge can be expected to pass. Rows the second annotator left
    unlabelled (cut off) count as its abstentions, exactly as a judge's would."""
    shared = [r for r in rows if str(r["id"]) in second]
    if not shared:
        return None
    judgements = [Judgement(second[str(r["id"])], "", "second annotator", SECOND_ANNOTATOR,
                            needs_review=None if second[str(r["id"])] else TRUNCATED) for r in shared]
    return compare(SECOND_ANNOTATOR, shared, judgements, split)


def _unparseable(j: Judgement) -> int:
    """1 when an LLM judge (alone, or a member of an ensemble) broke the strict answer format."""
    return int(bool(j.needs_review and UNPARSEABLE in j.needs_review) or
               (j.parse_error is not None and j.parse_error.startswith(("no 'LABEL", "conflicting LABEL",
                                                                        "judge gave label"))))


def evaluations_markdown(evaluations: Sequence[JudgeEvaluation], *, show_misses: bool = False) -> str:
    """Judges side by side (kappa with interval, accuracy, abstentions), then each confusion matrix."""
    lines = ["| judge | split | rows labelled by hand | kappa [95% CI] | accuracy (on labelled) | abstained | "
             "accuracy (abstentions wrong) | cut-off rows abstained | LLM unparseable |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in evaluations:
        k = e.kappa
        lines.append(f"| `{e.judge}` | {e.split} | {e.n_labelled} | {k.kappa:.2f} [{k.ci[0]:.2f}, {k.ci[1]:.2f}] | "
                     f"{e.accuracy:.2f} ({e.n_judged}) | {e.n_labelled - e.n_judged} ({e.abstention_rate:.0%}) | "
                     f"{e.coverage_accuracy:.2f} | {e.n_unlabelled_abstained}/{e.n_unlabelled} | "
                     f"{e.n_unparseable}/{e.n_rows} |")
    parts = ["\n".join(lines)]
    for e in evaluations:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(e.abstain_reasons.items(), key=lambda kv: -kv[1]))
        parts.append(f"`{e.judge}` (rows: hand label, columns: judge label; abstentions not counted; abstention "
                     f"reasons: {reasons or 'none'}):\n\n" + e.confusion.to_markdown("hand", "judge"))
        if show_misses and e.misses:
            parts.append("misses: " + ", ".join(f"{rid} ({hand} -> {got or 'abstained'})"
                                                for rid, hand, got in e.misses))
    return "\n\n".join(parts) + "\n"


#: What a cross-validation fold can hold out whole: an author (the id letter), a register (the row's ``register``
#: field: memo, email, chat, Q&A, option list ...), or both at once (each (register, author) cell judged by a classifier
#: trained on rows sharing neither: new phrasing by a new author, the nearest to the issue owners' hidden sets).
HOLD_OUT = ("author", "register", "register+author")


def register_of(row: dict[str, Any]) -> str:
    """The row's register (datasheet); a clear error when the row was never annotated with one."""
    register = row.get("register")
    if not isinstance(register, str) or not register:
        raise ConfigError(f"row {row.get('id')!r} has no 'register' field; cross-validation by register needs every "
                          "row annotated (configs/judge/DATASHEET.md, 'register')")
    return register


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold agreement: ``pooled`` (one evaluation per judge over every row) and ``folds`` (per held-out unit,
    in the order of ``fold_names``, one evaluation per judge over that unit's rows)."""

    pooled: tuple[JudgeEvaluation, ...]
    fold_names: tuple[str, ...] = ()
    folds: tuple[tuple[JudgeEvaluation, ...], ...] = ()  # folds[f][j]: fold f, judge j (as in ``pooled``)

    def to_dict(self) -> dict[str, Any]:
        return {"pooled": [e.to_dict() for e in self.pooled],
                "folds": {name: [e.to_dict() for e in evals] for name, evals in zip(self.fold_names, self.folds)}}


def cross_validate(specs: Sequence[str], rows: Sequence[dict[str, Any]], training_rows: Sequence[dict[str, Any]],
                   encoder: Any, *, folds: int = 5, seed: int = 0, split: str = "?", abstain_rate: float | None = None,
                   local: Callable[[str], Judge] | None = None, hold_out: str | None = None,
                   c_grid: Sequence[float] | None = None, calibration: str | None = None) -> CrossValidation:
    """Out-of-fold agreement of the judges ``specs`` on ``rows`` (a part of ``training_rows``).

    ``rows`` are cut into ``folds`` stratified folds; for each, an embedding judge is trained on ``training_rows``
    less that fold (as ``python -m experiments.judge train`` would) and stands for every ``embedding`` member while
    the fold is judged (``local`` builds ``local:<model>`` members, as for :func:`behaviour.judges.get_judge`). So
    every learned label is for a row its classifier never saw: the estimate a choice between
    judges can rest on before the holdout is touched. (The rules are fixed code: they saw whatever rows they were
    developed on, which is why the round-1 ``test`` rows, unused in developing them, are the fair rows to pass.)

    ``hold_out`` (one of :data:`HOLD_OUT`) instead makes one fold per author, per register, or per (register, author)
    cell: the fold's rows are judged by a classifier trained without any row of that author and/or register (in
    ``training_rows`` too, even those not being judged). Per-fold figures are reported per author or per register
    (a register's cells pooled) beside the pooled figure. Each text is embedded once for all folds. ``c_grid``
    (default: the training grid) fixes the classifier's strengths tried per fold; one value is 7 times cheaper.
    ``calibration`` (default: as ``train`` does) is what each fold's classifier calibrates on among the rows it trains
    on: row folds, the registers or the authors it holds, each held out in turn (``train_embedding_judge``).
    """
    from sklearn.model_selection import StratifiedKFold

    from behaviour.judges.embedding import MemoEncoder
    from behaviour.judges.embedding_judge import train_embedding_judge
    from behaviour.judges.factory import get_judge

    if any(r.get("split") not in TRAINING_SPLITS for r in [*rows, *training_rows]):
        raise ConfigError(f"cross-validation runs on the training splits {list(TRAINING_SPLITS)} only; measure the "
                          "holdout with `python -m experiments.judge evaluate`")
    if hold_out is not None and hold_out not in HOLD_OUT:
        raise ConfigError(f"unknown hold-out unit {hold_out!r}; use one of {list(HOLD_OUT)}")
    encoder = MemoEncoder(encoder)
    keys: list[Callable[[dict[str, Any]], str]] = {
        None: [], "author": [author_of], "register": [register_of],
        "register+author": [register_of, author_of]}[hold_out]
    if keys:
        cells = sorted({tuple(key(r) for key in keys) for r in rows})
        units = sorted({cell[0] for cell in cells})
        if len(units) < 2:
            raise ConfigError(f"holding out by {keys[0].__name__.removesuffix('_of')} needs rows of at least two; "
                              f"these are all {units}")
        splits = [[i for i, r in enumerate(rows) if tuple(key(r) for key in keys) == cell] for cell in cells]

        def excluded(cell: tuple[str, ...]) -> set[str]:
            return {r["id"] for r in training_rows if any(key(r) == c for key, c in zip(keys, cell))}

        where = f"{split} (one fold per {hold_out.replace('+', ' x ')}: {len(splits)} folds)"
    else:
        strata = [str(r.get("label")) for r in rows]
        n_folds = max(2, min(folds, min(strata.count(s) for s in set(strata))))
        splits = [list(held) for _, held in
                  StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(rows, strata)]
        cells, units = [], []
        where = f"{split} ({n_folds}-fold cross-validated)"
    judged: dict[str, dict[int, Judgement]] = {spec: {} for spec in specs}
    names: dict[str, str] = {}
    # Only what was given overrides train_embedding_judge's defaults (as `train` uses them).
    options = {k: v for k, v in (("abstain_rate", abstain_rate), ("c_grid", c_grid), ("calibration", calibration))
               if v is not None}
    for n, held in enumerate(splits):
        held_ids = {rows[i]["id"] for i in held} | (excluded(cells[n]) if keys else set())
        embedding = train_embedding_judge([r for r in training_rows if r["id"] not in held_ids], encoder, **options)
        for spec in specs:
            judge = get_judge(spec, local=local, embedding=embedding)
            names[spec] = judge.name
            for i in held:
                judged[spec][i] = judge_row(rows[i], judge)
    pooled = tuple(compare(names[spec], rows, [judged[spec][i] for i in range(len(rows))], where) for spec in specs)
    per_unit = []
    for unit in units:
        idx = [i for i, r in enumerate(rows) if keys[0](r) == unit]
        per_unit.append(tuple(compare(names[spec], [rows[i] for i in idx], [judged[spec][i] for i in idx],
                                      f"{split}: {unit}") for spec in specs))
    return CrossValidation(pooled, tuple(units), tuple(per_unit))


def folds_markdown(cv: CrossValidation) -> str:
    """One row per held-out unit and a pooled row; per judge, kappa [95% CI] over the rows it labelled and the
    abstentions beside it (the README's convention)."""
    judges = [e.judge for e in cv.pooled]
    lines = ["| held out | rows labelled by hand | " + " | ".join(f"`{j}`" for j in judges) + " |",
             "|---|---|" + "---|" * len(judges)]

    def cell(e: JudgeEvaluation) -> str:
        k = e.kappa
        kappa = "n/a" if k.n == 0 or k.kappa != k.kappa else f"{k.kappa:.2f} [{k.ci[0]:.2f}, {k.ci[1]:.2f}]"
        return f"{kappa}, acc {e.accuracy:.2f}, abst {e.n_labelled - e.n_judged} ({e.abstention_rate:.0%})"

    for name, evals in zip(cv.fold_names, cv.folds):
        lines.append(f"| {name} | {evals[0].n_labelled} | " + " | ".join(cell(e) for e in evals) + " |")
    lines.append(f"| **pooled** | {cv.pooled[0].n_labelled} | " + " | ".join(cell(e) for e in cv.pooled) + " |")
    return "\n".join(lines) + "\n"
