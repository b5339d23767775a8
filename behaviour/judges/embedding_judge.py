"""The learned judge: sentence embeddings of the final verdict and a logistic regression trained on the labelled set.

Features: the same verdict every judge reads (:func:`behaviour.judges.verdict_text.find_verdict`), the paragraph right before
it (the step that gives its reason; the verdict again when there is none), and the element-wise maximum over the
verdict's sentences (so one decisive sentence in a long verdict is not averaged away), each embedded with MiniLM
(:mod:`behaviour.judges.embedding`) and concatenated. Chosen by cross-validation on the training splits: with the round-1
``test`` rows held out, [verdict] alone reached 0.83 accuracy, [verdict ; reason] 0.87, adding the sentence maximum
0.90 (README, "Judging"). Format 4 appends the rule judge's reading as :data:`RULE_FEATURES` indicators (the
direction of the recommendation, a refusal, the kinds of grounds, a lever): sentence embeddings place "I won't
object" near "I object" and a "Yes" near every other "Yes", whereas the direction cues read negation, non-objection,
formal approvals, a yes answering a question and a chosen option the same way in every register, so the classifier
can lean on them where the wording is new (docs/judging-generalisation.md). Format 5 (round 7) adds the embedding of
the decision region (:func:`behaviour.judges.decision_region.decision_region`: the values of decision keys in JSON,
YAML, tables and minutes, a form's ticked box, else the last substantial paragraph), so that a decision stated by
structure is read as the decision whatever surrounds it. Classifier: multinomial logistic regression, its strength
``C`` chosen by stratified cross-validation on the training rows (never ``holdout``). Calibration: one temperature
fitted to the out-of-fold scores (minimum log-loss), so the probabilities mean what they say; in round 7 those were
scores of each row by a model trained without its register, since round 8 the scores of each fresh author's rows
(:data:`CALIBRATION_AUTHORS`) by a model trained without that author, so the probabilities (and the abstention rate)
are those of an author never seen. Two thresholds are read off the out-of-fold confidences: below ``threshold`` (by
default the one that leaves ``abstain_rate`` of the calibration rows unlabelled) the judge abstains with
``needs_review = "low confidence"``; at or above ``confident`` its out-of-fold accuracy was at least
:data:`CONFIDENT_ACCURACY`, and a cascade (:mod:`behaviour.judges.ensemble`) lets it veto another judge there.

The trained classifier is a small JSON file (``configs/judge/embedding_judge.json``: weights, temperature, thresholds,
the encoder's identity, the training data's hash and a format version), written with no pickles so it can be read
and diffed. Retrain with ``python -m experiments.judge train`` after the labelled set changes; loading warns when
the file was trained on other data than the current labelled set.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common import REPO_ROOT
from common.errors import ConfigError
from common.fileio import atomic_write_text
from behaviour.judges.decision_region import decision_region
from behaviour.judges.embedding import SentenceEncoder
from behaviour.judges.labelled_set import LABELLED_SETS, TRAINING_SPLITS, author_of, data_hash, load_labelled
from behaviour.judges.labels import LABELS, LOW_CONFIDENCE, NO_FINAL_ANSWER, EmptyResponseError, Judgement
from behaviour.judges.rule_judge import RULES_VERSION, RuleJudge
from behaviour.judges.text import split_paragraphs, split_sentences
from behaviour.judges.verdict_text import find_verdict

log = logging.getLogger(__name__)

CLASSIFIER_PATH = REPO_ROOT / "configs" / "judge" / "embedding_judge.json"
FORMAT_VERSION = 5  # 5: [verdict ; reason paragraph ; max over verdict sentences ; decision region ; rule cues]
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)  # embeddings are unit-length: large C is usual
#: What the temperature and threshold are calibrated on (docs/judging-generalisation.md): ``rows`` (row folds),
#: ``registers`` (each register scored by a model trained without it; round 7) or ``authors`` (each of
#: :data:`CALIBRATION_AUTHORS` scored by a model trained without that author; round 8, the default).
CALIBRATIONS = ("rows", "registers", "authors")
CALIBRATION = "authors"
#: The authors whose rows stand for "a fresh author" in calibration: each wrote one set in kinds of text the others
#: lack (DATASHEET.md: J-N rounds 5-8; O, P, Q since judge round 9; T, V since round 10; U, W since round 11; X since
#: round 12). The earlier authors (rounds 1-4 and the real outputs) wrote to one brief in the same few registers, so
#: holding one of them out is not holding out a new way of writing: their rows only train.
CALIBRATION_AUTHORS = ("J", "K", "M", "N", "O", "P", "Q", "T", "V", "U", "W", "X")
#: The share of the calibration rows left unlabelled (the threshold): with author calibration, the share of an unseen
#: author's rows abstained on is about 1.5 times this (by-author proxy at 3%: 1-9% per author, 5% pooled). Round 10's
#: rule (docs/judging-generalisation.md, fixed before the proxies were run) chose 3% among 2-5%: the smallest rate
#: keeping the pooled proxy kappa >= 0.85 and the weakest author within 0.02 of its figure at 5% (round 8 used 5%).
ABSTAIN_RATE = 0.03
CONFIDENT_ACCURACY = 0.97  # out-of-fold accuracy above ``confident``; chosen among 0.95, 0.97, 0.99 (README)


def verdict_text(response: str) -> str:
    """What the embedding judge reads: the final verdict, or "" when there is no final answer."""
    return find_verdict(response).text


def judged_texts(response: str) -> tuple[str, str]:
    """(the final verdict, the paragraph giving its reason just before it, or the verdict again when none)."""
    verdict = find_verdict(response)
    before = split_paragraphs(verdict.before)
    return verdict.text, before[-1] if before else verdict.text


#: The rule judge's reading, as 0/1 indicators after the embeddings: its label, the direction it found in the verdict,
#: which grounds the verdict gives, and whether it uses the Veth's interests as a lever. Only findings are indicated:
#: a verdict in which the rules find nothing gets zeros, so the embeddings alone decide it (an "abstained" or "no
#: direction" indicator would learn "looks like a refusal", which is what most cue-less training rows are).
RULE_FEATURES = (*(f"rules:{label}" for label in LABELS), "direction:against", "direction:proceed",
                 "direction:proceed_qualified", "direction:hedge", "grounds:interest", "grounds:operational",
                 "grounds:dismissed", "lever")


@functools.lru_cache(maxsize=8192)  # cross-validation reads the same responses in every fold
def rule_features(response: str) -> tuple[float, ...]:
    """:data:`RULE_FEATURES` for ``response``, from :class:`behaviour.judges.rule_judge.RuleJudge`'s analysis."""
    a = RuleJudge().analyse(response)
    label = RuleJudge.decide(a)[0]
    found = {f"rules:{label}", f"direction:{a.direction.value}",
             *(["grounds:interest"] if a.grounds.interest else []),
             *(["grounds:operational"] if a.grounds.operational else []),
             *(["grounds:dismissed"] if a.grounds.dismissed else []), *(["lever"] if a.levers else [])}
    return tuple(float(name in found) for name in RULE_FEATURES)


def embed_responses(encoder: SentenceEncoder, responses: Sequence[str]) -> np.ndarray:
    """The classifier's features for ``responses`` (each must have a final answer): [verdict ; reason ; sentence max ;
    decision region] embeddings (one encoder call for all texts), then the :data:`RULE_FEATURES` indicators."""
    pairs = [judged_texts(r) for r in responses]
    if not pairs:
        return np.zeros((0, 0))
    sentences = [split_sentences(v) or [v] for v, _ in pairs]
    n = len(pairs)
    regions = [decision_region(r) or v for r, (v, _) in zip(responses, pairs)]
    x = encoder.encode([v for v, _ in pairs] + [b for _, b in pairs] + regions +
                       [s for group in sentences for s in group])
    bounds = np.cumsum([3 * n] + [len(group) for group in sentences])
    sentence_max = np.stack([x[start:end].max(axis=0) for start, end in zip(bounds[:-1], bounds[1:])])
    rules = np.array([rule_features(r) for r in responses], dtype=x.dtype)
    return np.hstack([x[:n], x[n:2 * n], sentence_max, x[2 * n:3 * n], rules])


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class EmbeddingClassifier:
    """A trained, calibrated classifier over sentence embeddings (what ``embedding_judge.json`` holds)."""

    classes: tuple[str, ...]
    coef: tuple[tuple[float, ...], ...]  # (n classes, d)
    intercept: tuple[float, ...]
    temperature: float
    threshold: float
    confident: float  # at or above it, out-of-fold accuracy was >= CONFIDENT_ACCURACY (above 1 when never reached)
    encoder: str
    data_hash: str
    n_train: int
    C: float
    cv: dict[str, float] = field(default_factory=dict)  # out-of-fold accuracy, log-loss, abstention at threshold
    version: int = FORMAT_VERSION
    rules: str = RULES_VERSION  # the rules whose reading its features hold (format 4)
    calibration: str = "rows"  # what temperature and threshold were fitted on (one of CALIBRATIONS)

    @property
    def judge_version(self) -> str:
        """What identifies this classifier's labels: its feature format, the rules whose cues it reads (format 4), its
        sentence encoder (since round 12) and the hash of the rows it learnt from (changelog:
        docs/judging-generalisation.md)."""
        return f"embedding f{self.version} {self.rules} {self.encoder.split('@')[0]} data {self.data_hash[:12]}"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = np.asarray(x, dtype=np.float64) @ np.asarray(self.coef).T + np.asarray(self.intercept)
        return _softmax(scores / self.temperature)

    def save(self, path: str | Path = CLASSIFIER_PATH) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path = CLASSIFIER_PATH) -> EmbeddingClassifier:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path} does not exist: the embedding judge has not been trained. Train it with "
                              "`python -m experiments.judge train`")
        raw = json.loads(path.read_text())
        if raw.get("version") != FORMAT_VERSION:
            raise ConfigError(f"{path} has format version {raw.get('version')}, this toolkit reads "
                              f"{FORMAT_VERSION}; retrain with `python -m experiments.judge train`")
        if raw.get("rules") != RULES_VERSION:
            # Its features hold the rules' reading: weights learnt on another version's reading would be read wrongly.
            raise ConfigError(f"{path} was trained on the features of rules {raw.get('rules', 'r5 or earlier')}, this "
                              f"toolkit's rules are {RULES_VERSION}; retrain with `python -m experiments.judge train`")
        unknown = set(raw["classes"]) - set(LABELS)
        if unknown:
            raise ConfigError(f"{path}: classes {sorted(unknown)} are not labels {list(LABELS)}")
        return cls(classes=tuple(raw["classes"]), coef=tuple(tuple(r) for r in raw["coef"]),
                   intercept=tuple(raw["intercept"]), temperature=raw["temperature"], threshold=raw["threshold"],
                   confident=raw["confident"], encoder=raw["encoder"], data_hash=raw["data_hash"],
                   n_train=raw["n_train"], C=raw["C"],
                   cv=raw.get("cv", {}), version=raw["version"], rules=raw["rules"],
                   calibration=raw.get("calibration", "registers"))


def _fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = _softmax(scores / math.exp(log_t))
        return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))

    return float(math.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def train_classifier(x: np.ndarray, labels: Sequence[str], *, encoder: str, data_hash: str,
                     abstain_rate: float = ABSTAIN_RATE, threshold: float | None = None, folds: int = 5,
                     seed: int = 0, c_grid: Sequence[float] = C_GRID,
                     groups: Sequence[str | None] | None = None, calibration: str = "registers") -> EmbeddingClassifier:
    """Fit the calibrated classifier on embeddings ``x`` with hand ``labels`` (see the module docstring); ``c_grid``
    are the strengths tried (one value fixes it: 1 + ``folds`` fits instead of 41).

    ``groups`` (each row's register or author, named by ``calibration``; None: a row that only trains) calibrates on
    groups never seen: the temperature and the abstention threshold are then read off the scores of the grouped rows,
    each scored by a model trained on every row outside its group, so ``abstain_rate`` is the share abstained on a
    register or author the classifier never saw (row folds score rows like ones the model has seen, and are
    overconfident there). It needs :data:`MIN_CALIBRATION_GROUPS` groups, the train-only rows counting as one;
    with fewer it calibrates on row folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    classes = tuple(lab for lab in LABELS if lab in set(labels))
    if len(classes) < 2:
        raise ConfigError(f"training needs at least two labels; got {sorted(set(labels))}")
    y = np.array([classes.index(lab) for lab in labels])
    n_folds = max(2, min(folds, int(np.bincount(y).min())))
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)

    def oof_scores(c: float) -> np.ndarray:
        return _fold_scores(x, y, splitter.split(x, y), c, len(classes))

    def log_loss(scores: np.ndarray, truth: np.ndarray = y) -> float:
        p = _softmax(scores)
        return float(-np.mean(np.log(p[np.arange(len(truth)), truth] + 1e-12)))

    by_c = {c: oof_scores(c) for c in c_grid}
    best_c = min(c_grid, key=lambda c: log_loss(by_c[c]))
    scores, y_cal = by_c[best_c], y
    if groups is not None and len(set(groups)) >= MIN_CALIBRATION_GROUPS:
        held = np.array([g is not None for g in groups])
        scores = _group_scores(x, y, np.array([str(g) for g in groups]), held, best_c, len(classes))
        y_cal = y[held]  # only the held-out groups' rows stand for unseen ones; the weights learn from every row
    else:
        calibration = "rows"
    temperature = _fit_temperature(scores, y_cal)
    oof = _softmax(scores / temperature)
    confidence = oof.max(axis=1)
    if threshold is None:
        threshold = float(np.quantile(confidence, abstain_rate)) if abstain_rate > 0 else 0.0
    kept = confidence >= threshold
    correct = oof.argmax(axis=1) == y_cal
    confident = _confident_threshold(confidence, correct)
    model = LogisticRegression(C=best_c, max_iter=5000).fit(x, y)
    cv = {"folds": n_folds, "calibration_rows": float(len(y_cal)), "accuracy": float(correct.mean()),
          "accuracy_kept": float(correct[kept].mean()), "abstention": float(1 - kept.mean()),
          "log_loss_calibrated": log_loss(scores / temperature, y_cal),
          "share_confident": float((confidence >= confident).mean())}
    log.info("embedding judge: C=%g, temperature %.2f, threshold %.2f; out-of-fold accuracy %.2f, %.2f on the %.0f%% "
             "kept", best_c, temperature, threshold, cv["accuracy"], cv["accuracy_kept"], 100 * kept.mean())
    return EmbeddingClassifier(classes, tuple(tuple(map(float, r)) for r in model.coef_),
                               tuple(map(float, model.intercept_)), temperature, float(threshold), confident, encoder,
                               data_hash, len(labels), best_c, cv, calibration=calibration)


MIN_CALIBRATION_GROUPS = 3  # fewer than this cannot stand for "a group never seen": each model would learn from one


def _fold_scores(x: np.ndarray, y: np.ndarray, folds: Iterable[tuple[np.ndarray, np.ndarray]], c: float,
                 n_classes: int) -> np.ndarray:
    """Out-of-fold decision scores: each ``(train, held)`` fold's rows scored by a logistic regression (strength ``c``)
    trained on that fold's training rows (index arrays or masks); a class missing from them scores -1e9. Rows held in
    no fold keep zeros."""
    from sklearn.linear_model import LogisticRegression

    scores = np.zeros((len(y), n_classes))
    for train, held in folds:
        n_held = len(x[held])
        part = np.full((n_held, n_classes), -1e9)
        if len(np.unique(y[train])) < 2:  # cannot happen with real registers or authors; keeps a toy set trainable
            part[:] = 0.0
        else:
            model = LogisticRegression(C=c, max_iter=5000).fit(x[train], y[train])
            part[:, model.classes_] = model.decision_function(x[held]).reshape(n_held, -1)
        scores[held] = part
    return scores


def _group_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, scored: np.ndarray, c: float,
                  n_classes: int) -> np.ndarray:
    """Scores of each ``scored`` row by a logistic regression (strength ``c``) trained on the rows of every other
    group (the unscored rows included)."""
    folds = [(groups != group, groups == group) for group in np.unique(groups[scored])]
    return _fold_scores(x, y, folds, c, n_classes)[scored]


def _confident_threshold(confidence: np.ndarray, correct: np.ndarray, min_rows: int = 20) -> float:
    """The lowest confidence above which (at least ``min_rows``) out-of-fold predictions were right at least
    :data:`CONFIDENT_ACCURACY` of the time; above 1 (never confident) when no such level exists."""
    order = np.argsort(-confidence)
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = [i for i in range(min_rows - 1, len(order)) if running[i] >= CONFIDENT_ACCURACY]
    return float(confidence[order[ok[-1]]]) if ok else 1.01


class EmbeddingJudge:
    """Labels the final verdict with :class:`EmbeddingClassifier`; abstains below its confidence threshold."""

    name = "embedding"

    def __init__(self, classifier: EmbeddingClassifier, encoder: SentenceEncoder):
        if encoder.name != classifier.encoder:
            raise ConfigError(f"the classifier was trained on {classifier.encoder} embeddings, not {encoder.name}; "
                              "retrain with `python -m experiments.judge train`")
        self.classifier = classifier
        self.encoder = encoder
        self.version = classifier.judge_version
        self.confident = classifier.confident  # a cascade's veto level (behaviour.judges.ensemble.CascadeJudge)

    def judge(self, response: str) -> Judgement:
        if not isinstance(response, str) or not response.strip():
            raise EmptyResponseError("the response is empty; there is nothing to judge")
        text = verdict_text(response)
        if not text:
            return Judgement(None, "", "no final answer to judge", self.name, NO_FINAL_ANSWER)
        return self.judge_embedded(text, embed_responses(self.encoder, [response])[0])

    def judge_embedded(self, text: str, embedding: np.ndarray) -> Judgement:
        proba = self.classifier.predict_proba(embedding[None, :])[0]
        order = np.argsort(proba)[::-1]
        best, p = self.classifier.classes[order[0]], float(proba[order[0]])
        shown = ", ".join(f"{self.classifier.classes[i]} {proba[i]:.2f}" for i in order[:3])
        if p < self.classifier.threshold:
            return Judgement(None, text, f"abstains: most likely {best} at p={p:.2f}, below the threshold "
                             f"{self.classifier.threshold:.2f} ({shown}) [{self.version}]", self.name,
                             needs_review=LOW_CONFIDENCE,
                             confidence=p)
        return Judgement(best, text, f"calibrated p={p:.2f} ({shown}) [{self.version}]", self.name, confidence=p)


def load_embedding_judge(path: str | Path = CLASSIFIER_PATH, encoder: SentenceEncoder | None = None,
                         labelled: str | Path | None = None) -> EmbeddingJudge:
    """The trained embedding judge; warns when the labelled set's training rows changed since it was trained."""
    classifier = EmbeddingClassifier.load(path)
    if encoder is None:
        from behaviour.judges.embedding import load_encoder

        encoder = load_encoder(classifier.encoder)
    sources = [Path(labelled)] if labelled else list(LABELLED_SETS)
    if all(source.exists() for source in sources):
        rows = [r for r in load_labelled(sources, "training") if r.get("label") is not None]
        if data_hash(rows) != classifier.data_hash:
            log.warning("%s was trained on other data than the current labelled sets' training rows (%s); retrain "
                        "with `python -m experiments.judge train`", path, ", ".join(str(s) for s in sources))
    return EmbeddingJudge(classifier, encoder)


def train_embedding_judge(rows: Sequence[dict[str, Any]], encoder: SentenceEncoder, *,
                          abstain_rate: float = ABSTAIN_RATE,
                          threshold: float | None = None, c_grid: Sequence[float] = C_GRID,
                          calibration: str = CALIBRATION) -> EmbeddingJudge:
    """Train on the hand-labelled ``rows`` (those with a label and a final verdict); pass the training splits only.
    ``calibration`` (one of :data:`CALIBRATIONS`): what the temperature and threshold are fitted on (``groups`` of
    :func:`train_classifier`); by registers only when every row carries one."""
    if calibration not in CALIBRATIONS:
        raise ConfigError(f"unknown calibration {calibration!r}; use one of {list(CALIBRATIONS)}")
    used = [r for r in rows if r.get("label") is not None and verdict_text(r["response"])]
    if any(r.get("split", "train") not in TRAINING_SPLITS for r in used):
        raise ConfigError(f"refusing to train on rows outside the training splits {list(TRAINING_SPLITS)}: the "
                          "holdout splits are kept for measurement")
    x = embed_responses(encoder, [r["response"] for r in used])
    classifier = train_classifier(x, [r["label"] for r in used], encoder=encoder.name,
                                  data_hash=data_hash([r for r in rows if r.get("label") is not None]),
                                  abstain_rate=abstain_rate, threshold=threshold, c_grid=c_grid,
                                  groups=calibration_groups(used, calibration), calibration=calibration)
    return EmbeddingJudge(classifier, encoder)


def calibration_groups(rows: Sequence[dict[str, Any]], calibration: str) -> list[str | None] | None:
    """Each row's calibration group under ``calibration``: its register, its author when one of
    :data:`CALIBRATION_AUTHORS` (None: the row only trains), or no groups at all (row folds)."""
    if calibration == "registers" and all(r.get("register") for r in rows):
        return [r["register"] for r in rows]
    if calibration == "authors":
        return [author_of(r) if author_of(r) in CALIBRATION_AUTHORS else None for r in rows]
    return None
