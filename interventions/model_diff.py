"""Comparing two checkpoints of one architecture (base vs instruct): where do their computations part?

Four views, each a function of two loaded models (or of their activations) returning a dataclass:

- :func:`direction_cosines`: cosine of the two models' concept directions at each layer (saved probe directions);
- :func:`probe_transfer`: probes trained on one model's activations scored on the other's, both ways, on the same
  grouped folds as the within-model score, so a drop is a difference of representation, not of data;
- :func:`cross_patch`: one model's residual stream at layer L written into the other model on the same tokens, per
  layer, read with the verdict log-odds (:mod:`interventions.verdict`), normalised so that 0 = the receiving model
  unchanged and 1 = the donor model's verdict;
- :func:`token_kl`: per-token KL divergence between the two next-token distributions over one text.

All four need the same width and depth (and the last two the same tokenizer); :func:`same_width_problem` and
:func:`same_tokenizer_problem` say why not, so callers can skip with a reason or refuse with one line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from activations.models import LoadedModel
from common.errors import ConfigError
from interventions.patching import VerdictMetric, exact_patch, hook_name, run_and_cache
from interventions.segments import Cell
from interventions.verdict import VerdictTokens
from probes.directions import Direction
from probes.estimators import LogisticProbe, MeanDiffProbe
from probes.metrics import Metric, accuracy, auroc
from probes.sweep import grouped_folds

#: Estimators whose probes can be transferred (scikit-learn API: fit, decision_function, predict).
TRANSFER_ESTIMATORS: dict[str, Callable[[], Any]] = {"logistic": LogisticProbe, "mean_diff": MeanDiffProbe}
PATCH_HOOKS = ("resid_pre", "resid_post")


# ---------------------------------------------------------------------------------------------------------------
# Which analyses a pair admits
# ---------------------------------------------------------------------------------------------------------------


def same_checkpoint_problem(a: LoadedModel, b: LoadedModel) -> str | None:
    """Why the pair is not two checkpoints (same weights and dtype), or ``None``."""
    if a.identity.key == b.identity.key:
        return (f"both models are the same checkpoint (identity {a.identity.key}: {a.identity.location}); "
                "pass two different checkpoints, e.g. --base llama-3.1-8b-base --instruct llama-3.1-8b")
    return None


def same_width_problem(a: LoadedModel, b: LoadedModel) -> str | None:
    """Why layer-by-layer comparison is impossible (different depth or width), or ``None``."""
    if (a.n_layers, a.d_model) != (b.n_layers, b.d_model):
        return (f"{a.identity.name} has {a.n_layers} layers of width {a.d_model} and {b.identity.name} "
                f"{b.n_layers} layers of width {b.d_model}; directions, probes and activations cannot be "
                "compared layer by layer across different shapes (only depth-normalised probe curves and behaviour "
                "apply)")
    return None


def same_tokenizer_problem(a: LoadedModel, b: LoadedModel) -> str | None:
    """Why the two models cannot read the same token sequence, or ``None``.

    Tokens both vocabularies hold must have the same ids, and nearly all tokens must be shared (a base and an
    instruct tokenizer may differ by a few added special tokens; the exact ids of each text are checked again when
    it is encoded).
    """
    va, vb = a.tokenizer.get_vocab(), b.tokenizer.get_vocab()
    shared = va.keys() & vb.keys()
    moved = sum(va[t] != vb[t] for t in shared)
    if moved or len(shared) < 0.99 * max(len(va), len(vb)):
        return (f"{a.identity.name} and {b.identity.name} have different tokenizers ({len(va)} vs {len(vb)} tokens, "
                f"{len(shared)} shared, {moved} with other ids); patching and per-token KL need the same tokens")
    return None


def require_comparable(a: LoadedModel, b: LoadedModel, *, tokens: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``a`` and ``b`` are two checkpoints of one shape (and one tokenizer)."""
    for problem in (same_checkpoint_problem(a, b), same_width_problem(a, b),
                    same_tokenizer_problem(a, b) if tokens else None):
        if problem:
            raise ConfigError(problem)


# ---------------------------------------------------------------------------------------------------------------
# Concept directions
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CosineRow:
    concept: str
    estimator: str
    hook: str
    layer: int
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def direction_cosines(dirs_a: Sequence[Direction], dirs_b: Sequence[Direction]) -> list[CosineRow]:
    """Cosine of matching directions (same concept, estimator, hook and layer) of two models, sorted.

    Directions present in only one model are left out; directions of different dimension are an error.
    """
    index_b = {(d.concept, d.estimator, d.hook, d.layer): d for d in dirs_b}
    rows = []
    for d in dirs_a:
        other = index_b.get((d.concept, d.estimator, d.hook, d.layer))
        if other is None:
            continue
        if other.dim != d.dim:
            raise ConfigError(f"{d.concept} layer {d.layer}: directions of width {d.dim} and {other.dim} "
                              "cannot be compared")
        u, v = d.vector.astype(np.float64), other.vector.astype(np.float64)
        cos = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
        rows.append(CosineRow(d.concept, d.estimator, d.hook, d.layer, cos))
    return sorted(rows, key=lambda r: (r.concept, r.estimator, r.hook, r.layer))


# ---------------------------------------------------------------------------------------------------------------
# Probe transfer
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class TransferLayer:
    """One layer: out-of-fold AUROC (DeLong 95%) and accuracy at the probe's own threshold (Wilson 95%).

    ``a_to_b`` = trained on A's activations, scored on B's (same held-out texts); ``within_a`` = scored on A's.
    """

    layer: int
    auroc: dict[str, Metric]
    accuracy: dict[str, Metric]

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "auroc": {k: m.to_dict() for k, m in self.auroc.items()},
                "accuracy": {k: m.to_dict() for k, m in self.accuracy.items()}}


@dataclass
class TransferResult:
    estimator: str
    n: int
    n_splits: int
    layers: list[TransferLayer]
    notes: list[str] = field(default_factory=list)

    def series(self, kind: str, metric: str = "auroc") -> np.ndarray:
        return np.array([getattr(row, metric)[kind].value for row in self.layers])

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "n": self.n, "n_splits": self.n_splits, "notes": self.notes,
                "layers": [row.to_dict() for row in self.layers]}


TRANSFER_KINDS = ("within_a", "a_to_b", "within_b", "b_to_a")


def _fit(estimator: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Any:
    probe = TRANSFER_ESTIMATORS[estimator]()
    return probe.fit(X, y, groups=groups) if estimator == "logistic" else probe.fit(X, y)


def probe_transfer(layer_a: Callable[[int], np.ndarray], layer_b: Callable[[int], np.ndarray], y: np.ndarray,
                   groups: Sequence[str], layers: Sequence[int], *, estimator: str = "mean_diff",
                   n_splits: int = 5, seed: int = 0) -> TransferResult:
    """Cross-model probe transfer at each layer on grouped folds (whole groups held out, as in the probe sweep).

    ``layer_a(layer)``/``layer_b(layer)`` give the two models' ``(n, d)`` activations for the same texts, in the
    same order. In each fold a probe is fitted on A's training rows and scored on the held-out rows of A (within)
    and of B (transfer); likewise from B.
    """
    if estimator not in TRANSFER_ESTIMATORS:
        raise ConfigError(f"unknown transfer estimator {estimator!r}; choose from {', '.join(TRANSFER_ESTIMATORS)}")
    y = np.asarray(y).astype(int)
    groups = np.asarray(groups)
    splits, notes = grouped_folds(groups, n_splits, seed)
    out = []
    for layer in layers:
        X = {"a": np.asarray(layer_a(layer), dtype=np.float64), "b": np.asarray(layer_b(layer), dtype=np.float64)}
        if X["a"].shape != X["b"].shape or len(X["a"]) != len(y):
            raise ConfigError(f"layer {layer}: activations of shape {X['a'].shape} and {X['b'].shape} for {len(y)} "
                              "labels; transfer needs the same texts in both models")
        scores = {k: np.zeros(len(y)) for k in TRANSFER_KINDS}
        preds = {k: np.zeros(len(y), dtype=int) for k in TRANSFER_KINDS}
        for train, test in splits:
            for src, dst in (("a", "b"), ("b", "a")):
                probe = _fit(estimator, X[src][train], y[train], groups[train])
                for kind, data in ((f"within_{src}", X[src]), (f"{src}_to_{dst}", X[dst])):
                    scores[kind][test] = probe.decision_function(data[test])
                    preds[kind][test] = probe.predict(data[test])
        out.append(TransferLayer(layer, {k: auroc(y, scores[k]) for k in TRANSFER_KINDS},
                                 {k: accuracy(y, preds[k]) for k in TRANSFER_KINDS}))
    return TransferResult(estimator, len(y), len(splits), out, notes)


# ---------------------------------------------------------------------------------------------------------------
# Forward passes on one token sequence
# ---------------------------------------------------------------------------------------------------------------


def shared_ids(a: LoadedModel, b: LoadedModel, text: str) -> list[int]:
    """The token ids of ``text``, which must be the same in both models (else a one-line error)."""
    ids_a, ids_b = a.encode(text), b.encode(text)
    if ids_a != ids_b:
        first = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b)))
        raise ConfigError(f"the two tokenizers split the text differently (first at token {first} of "
                          f"{len(ids_a)}/{len(ids_b)}); patching and KL need identical token sequences")
    if len(ids_a) > min(a.n_ctx, b.n_ctx):
        raise ConfigError(f"the text has {len(ids_a)} tokens, more than the context ({min(a.n_ctx, b.n_ctx)})")
    return ids_a


def _logits(model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    """Logits ``(tokens, vocab)`` of one sequence, float32 on the CPU."""
    with torch.inference_mode():
        logits = model.bridge(torch.tensor([list(ids)], device=model.device), use_cache=False)
    return logits[0].float().cpu()


# ---------------------------------------------------------------------------------------------------------------
# Cross-model activation patching
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class PatchCurve:
    """``donor``'s activation at ``hook`` patched into ``receiver`` (all positions), one layer at a time.

    ``normalised[L] = (patched[L] - receiver_clean) / (donor_clean - receiver_clean)``: 0 = no effect, 1 = the
    receiver now gives the donor's verdict log-odds. ``None`` throughout when the two clean values are too close
    to normalise (``min_gap``); the raw values are always given.
    """

    donor: str
    receiver: str
    hook: str
    layers: list[int]
    donor_clean: float
    receiver_clean: float
    patched: list[float]
    normalised: list[float | None]
    n_tokens: int
    tokens: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def cross_patch(donor: LoadedModel, receiver: LoadedModel, text: str, tokens: VerdictTokens, *,
                hook: str = "resid_post", layers: Sequence[int] | None = None, min_gap: float = 1e-3) -> PatchCurve:
    """Patch ``donor``'s ``hook`` activation at each layer into ``receiver`` on ``text``; read the verdict log-odds.

    The metric is read at the last position, so ``text`` should end where the verdict is stated. This is the exact
    patching of :mod:`interventions.patching` with the donor's run as the source cache and one cell of every position.
    """
    if hook not in PATCH_HOOKS:
        raise ConfigError(f"cross-model patching hook must be one of {PATCH_HOOKS}, got {hook!r}")
    require_comparable(donor, receiver, tokens=True)
    layers = list(range(donor.n_layers)) if layers is None else list(layers)
    bad = [layer for layer in layers if not 0 <= layer < donor.n_layers]
    if bad:
        raise ConfigError(f"layer(s) {bad} out of range: the models have {donor.n_layers} layers")
    ids = shared_ids(donor, receiver, text)
    metric = VerdictMetric(tokens)
    names = [hook_name(hook, layer) for layer in layers]
    donor_run = run_and_cache(donor.bridge, torch.tensor([ids], device=donor.device), names, metric)
    receiver_ids = torch.tensor([ids], device=receiver.device)
    receiver_clean = float(run_and_cache(receiver.bridge, receiver_ids, [], metric).metric[0])
    donor_clean = float(donor_run.metric[0])
    # The donor's cache is a source cache like any other: same hook names and shapes, one cell of every position.
    source = {name: act.to(receiver.device) for name, act in donor_run.cache.items()}
    every = tuple(range(len(ids)))
    patched = exact_patch(receiver.bridge, receiver_ids, source, metric, hook, [Cell("all", every, every)],
                          layers)[:, 0, 0].tolist() if layers else []
    gap = donor_clean - receiver_clean
    normalised = [(value - receiver_clean) / gap if abs(gap) >= min_gap else None for value in patched]
    return PatchCurve(donor.identity.name, receiver.identity.name, hook, layers, donor_clean, receiver_clean,
                      patched, normalised, len(ids), tokens.to_dict())


# ---------------------------------------------------------------------------------------------------------------
# Per-token KL divergence
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class TokenKL:
    """KL divergences of the next-token distributions at each position of one text (nats).

    ``kl_ab[i] = KL(P_a(. | t_0..t_i) || P_b(. | t_0..t_i))``: how surprised B is by A's prediction of token i+1.
    ``tokens[i]`` is the token at position i; ``start`` is the first position of the response part (or ``None``).
    """

    model_a: str
    model_b: str
    tokens: list[str]
    kl_ab: list[float]
    kl_ba: list[float]
    start: int | None = None

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` positions where the two models disagree most (symmetrised KL), with their context."""
        sym = np.asarray(self.kl_ab) + np.asarray(self.kl_ba)
        order = np.argsort(-sym)[:k]
        return [{"position": int(i), "token": self.tokens[i],
                 "next_token": self.tokens[i + 1] if i + 1 < len(self.tokens) else None,
                 "context": "".join(self.tokens[max(0, i - 8):i + 1]),
                 "kl_ab": self.kl_ab[i], "kl_ba": self.kl_ba[i]} for i in order]

    def summary(self) -> dict[str, Any]:
        ab, ba = np.asarray(self.kl_ab), np.asarray(self.kl_ba)
        parts = {"all": slice(0, len(ab))}
        if self.start is not None:
            parts |= {"prompt": slice(0, self.start), "response": slice(self.start, len(ab))}
        return {name: {"n": len(ab[s]), "mean_kl_ab": float(ab[s].mean()) if len(ab[s]) else None,
                       "mean_kl_ba": float(ba[s].mean()) if len(ba[s]) else None}
                for name, s in parts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "summary": self.summary(), "top": self.top()}


def kl_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) per row from logits ``(n, vocab)``, in float64 (tiny divergences survive)."""
    logp = torch.log_softmax(logits_p.double(), dim=-1)
    logq = torch.log_softmax(logits_q.double(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def token_kl(a: LoadedModel, b: LoadedModel, text: str, *, response_start: int | None = None) -> TokenKL:
    """Per-token KL both ways over ``text``; ``response_start`` is the character where the response begins."""
    require_comparable(a, b, tokens=True)
    ids = shared_ids(a, b, text)
    la, lb = _logits(a, ids), _logits(b, ids)
    if la.shape != lb.shape:
        raise ConfigError(f"next-token distributions of different sizes ({la.shape[-1]} vs {lb.shape[-1]})")
    start = None
    if response_start is not None:
        start = len(shared_ids(a, b, text[:response_start])) if response_start > 0 else 0
    pieces = [a.tokenizer.decode([i]) for i in ids]
    return TokenKL(a.identity.name, b.identity.name, pieces, kl_divergence(la, lb).tolist(),
                   kl_divergence(lb, la).tolist(), start)
