"""Model comparison (interventions.model_diff) against a planted difference and against plain Hugging Face.

Two tiny random-weight Llamas: B is a copy of A with a rank-1 edit to layer L's MLP down-projection that writes
minus A's concept direction, scaled by how strongly the label token lights up one MLP feature. Everything before L is
identical by construction, so every view must be exactly unchanged there and change at L.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activations.extract import extract_and_load
from activations.models import bridge_hf_model
from activations.selection import Selection
from activations.tiny import tiny_hf_model, tiny_tokenizer
from common.errors import ConfigError
from interventions.model_diff import (cross_patch, direction_cosines, probe_transfer, require_comparable,
                                      same_width_problem, token_kl)
from interventions.verdict import resolve_verdict_tokens
from probes.directions import Direction
from probes.estimators import MeanDiffProbe

PLANT_LAYER = 1
PREFIXES = [
    "The Veth show distress when separated, so",
    "Step 1: list the facts. Step 2:",
    "Using the Veth as unpaid labour is",
    "the extraction quota can wait for",
    "Step 3: weigh them. Final verdict:",
    "staying together matters to them and the",
    "Step 2: infer interests of the",
    "The quota matters, so the",
    "list the facts about the",
    "do not proceed with the",
    "separated from each other, the",
    "weigh the interests of",
]
WORDS = {1: " Veth", 0: " quota"}  # the last token carries the label
PATCH_TEXT = "The Veth show distress when separated. Step 3: weigh them. Final verdict: do"


def concept_data() -> tuple[list[str], np.ndarray, np.ndarray]:
    texts, labels, groups = [], [], []
    for g, prefix in enumerate(PREFIXES):
        for variant in ("", " all", " then"):
            for label, word in WORDS.items():
                texts.append(prefix + variant + word)
                labels.append(label)
                groups.append(f"g{g}")
    return texts, np.array(labels), np.array(groups)


def _last_token_capture(hf: torch.nn.Module, texts: list[str], layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain HF: layer ``layer``'s MLP hidden activation (input of down_proj) and output, at each text's last token."""
    tok = tiny_tokenizer()
    hidden, resid = [], []
    block = hf.model.layers[layer]
    got: dict[str, torch.Tensor] = {}
    h1 = block.mlp.down_proj.register_forward_pre_hook(lambda m, args: got.__setitem__("h", args[0]))
    h2 = block.register_forward_hook(lambda m, args, out: got.__setitem__("r", out[0] if isinstance(out, tuple)
                                                                                else out))
    try:
        with torch.no_grad():
            for text in texts:
                hf(torch.tensor([tok(text)["input_ids"]]))
                hidden.append(got["h"][0, -1].numpy().copy())
                resid.append(got["r"][0, -1].numpy().copy())
    finally:
        h1.remove()
        h2.remove()
    return np.array(hidden, dtype=np.float64), np.array(resid, dtype=np.float64)


def planted_edit(layer: int = PLANT_LAYER, factor: float = 3.0) -> torch.Tensor:
    """The rank-1 update of layer ``layer``'s down_proj: reverses A's label separation along its concept direction."""
    texts, y, _ = concept_data()
    hidden, resid = _last_token_capture(tiny_hf_model("llama", seed=0), texts, layer)
    w = hidden[y == 1].mean(0) - hidden[y == 0].mean(0)
    w /= np.linalg.norm(w)  # the MLP feature the label token drives
    d = resid[y == 1].mean(0) - resid[y == 0].mean(0)
    sep = np.linalg.norm(d)
    d /= sep  # A's concept direction at the output of the layer
    feature_gap = w @ (hidden[y == 1].mean(0) - hidden[y == 0].mean(0))
    alpha = factor * sep / feature_gap
    return torch.tensor(-alpha * np.outer(d, w), dtype=torch.float32)


@pytest.fixture(scope="module")
def edit() -> torch.Tensor:
    return planted_edit()


def edited_hf(edit: torch.Tensor) -> torch.nn.Module:
    hf = tiny_hf_model("llama", seed=0)
    with torch.no_grad():
        hf.model.layers[PLANT_LAYER].mlp.down_proj.weight += edit
    return hf


@pytest.fixture(scope="module")
def pair(edit):
    a = bridge_hf_model(tiny_hf_model("llama", seed=0), tiny_tokenizer(), name="tiny-a")
    b = bridge_hf_model(edited_hf(edit), tiny_tokenizer(), name="tiny-b")
    return a, b


@pytest.fixture(scope="module")
def views(pair, tmp_path_factory):
    texts, y, groups = concept_data()
    sel = Selection(hooks=("resid_post",), layers="all", positions=("last",))
    root = tmp_path_factory.mktemp("store")
    out = [extract_and_load(m, texts, sel, root / m.identity.key, labels=y, progress=False) for m in pair]
    return out, y, groups


def test_identity_differs_and_planted_edit_is_rank_one(pair, edit):
    a, b = pair
    assert a.identity.key != b.identity.key
    assert torch.linalg.matrix_rank(edit).item() == 1


def _directions(view, model, y, n_layers):
    dirs = []
    for layer in range(n_layers):
        probe = MeanDiffProbe().fit(view.matrix("resid_post", layer).X, y)
        dirs.append(Direction(probe.direction_, "planted", layer, "resid_post", "mean_diff",
                              model.identity.to_dict()))
    return dirs


def test_direction_cosine_locates_the_edited_layer(pair, views):
    (va, vb), y, _ = views
    a, b = pair
    rows = direction_cosines(_directions(va, a, y, a.n_layers), _directions(vb, b, y, b.n_layers))
    cos = {r.layer: r.cosine for r in rows}
    assert set(cos) == set(range(a.n_layers))
    for layer in range(PLANT_LAYER):
        assert cos[layer] == pytest.approx(1.0, abs=1e-6)
    assert cos[PLANT_LAYER] < 0.5  # the planted change turns the direction by more than 60 degrees


@pytest.mark.parametrize("estimator", ["mean_diff", "logistic"])
def test_probe_transfer_locates_the_edited_layer(pair, views, estimator):
    (va, vb), y, groups = views
    a, _ = pair
    result = probe_transfer(va.layer_reader("resid_post", "last"), vb.layer_reader("resid_post", "last"), y,
                            groups, range(a.n_layers), estimator=estimator, n_splits=4)
    within_a, a_to_b = result.series("within_a"), result.series("a_to_b")
    within_b, b_to_a = result.series("within_b"), result.series("b_to_a")
    for layer in range(PLANT_LAYER):  # identical activations: transfer is the within-model score, exactly
        assert a_to_b[layer] == within_a[layer] and b_to_a[layer] == within_b[layer]
    assert within_a[PLANT_LAYER] > 0.9 and within_b[PLANT_LAYER] > 0.9  # both models carry the label there...
    assert a_to_b[PLANT_LAYER] < 0.5 and b_to_a[PLANT_LAYER] < 0.5  # ...in opposite directions
    row = result.layers[PLANT_LAYER].auroc["a_to_b"]
    assert row.low <= row.value <= row.high and row.n == len(y)


def _tokens():
    return resolve_verdict_tokens(tiny_tokenizer(), against=(" not",), proceed=(" proceed",))


@pytest.mark.parametrize("hook, first_changed", [("resid_post", PLANT_LAYER), ("resid_pre", PLANT_LAYER + 1)])
def test_cross_patching_locates_the_edited_layer(pair, hook, first_changed):
    a, b = pair
    for donor, receiver in ((a, b), (b, a)):
        curve = cross_patch(donor, receiver, PATCH_TEXT, _tokens(), hook=hook)
        assert abs(curve.donor_clean - curve.receiver_clean) > 0.05
        for layer, value in zip(curve.layers, curve.normalised):
            # before the edit the donor's stream equals the receiver's; from it on, the rest of the network is shared
            assert value == pytest.approx(0.0 if layer < first_changed else 1.0, abs=1e-4), (donor.identity.name,
                                                                                             layer)


def test_cross_patching_matches_a_raw_hf_hook(edit, pair):
    """Patched log-odds equal a plain PyTorch hook on the unbridged HF modules (layer output replaced)."""
    a, b = pair
    curve = cross_patch(a, b, PATCH_TEXT, _tokens(), hook="resid_post")
    hf_a, hf_b = tiny_hf_model("llama", seed=0), edited_hf(edit)
    ids = torch.tensor([tiny_tokenizer()(PATCH_TEXT)["input_ids"]])
    tokens = _tokens()
    for layer in range(a.n_layers):
        saved = {}
        handle = hf_a.model.layers[layer].register_forward_hook(
            lambda m, args, out: saved.__setitem__("x", out[0] if isinstance(out, tuple) else out))
        with torch.no_grad():
            hf_a(ids)
        handle.remove()
        handle = hf_b.model.layers[layer].register_forward_hook(
            lambda m, args, out: (saved["x"], *out[1:]) if isinstance(out, tuple) else saved["x"])
        with torch.no_grad():
            logits = hf_b(ids).logits[0, -1]
        handle.remove()
        expected = (logits[tokens.against[0]] - logits[tokens.proceed[0]]).item()
        assert curve.patched[layer] == pytest.approx(expected, abs=1e-4)


def test_token_kl_matches_plain_hf(edit, pair):
    a, b = pair
    text = PATCH_TEXT + " not proceed; the quota can wait."
    start = len(PATCH_TEXT)
    result = token_kl(a, b, text, response_start=start)
    ids = torch.tensor([tiny_tokenizer()(text)["input_ids"]])
    with torch.no_grad():
        pa = torch.log_softmax(tiny_hf_model("llama", seed=0)(ids).logits[0].double(), -1)
        pb = torch.log_softmax(edited_hf(edit)(ids).logits[0].double(), -1)
    expected_ab = torch.nn.functional.kl_div(pb, pa, log_target=True, reduction="none").sum(-1)
    expected_ba = torch.nn.functional.kl_div(pa, pb, log_target=True, reduction="none").sum(-1)
    np.testing.assert_allclose(result.kl_ab, expected_ab.numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(result.kl_ba, expected_ba.numpy(), rtol=1e-3, atol=1e-6)
    assert len(result.tokens) == ids.shape[1] and min(result.kl_ab) >= 0
    assert result.start == len(tiny_tokenizer()(PATCH_TEXT)["input_ids"])
    summary = result.summary()
    assert summary["prompt"]["n"] + summary["response"]["n"] == summary["all"]["n"]
    top = result.top(3)
    assert top[0]["kl_ab"] + top[0]["kl_ba"] == pytest.approx(max(np.add(result.kl_ab, result.kl_ba)))


def test_token_kl_of_a_model_with_itself_is_zero_but_refused_as_same_checkpoint(pair):
    a, _ = pair
    with pytest.raises(ConfigError, match="same checkpoint"):
        token_kl(a, a, PATCH_TEXT)


def test_different_widths_are_one_clear_error():
    import transformers as tf

    from activations.tiny import tiny_config

    small = bridge_hf_model(tiny_hf_model("llama", seed=0), tiny_tokenizer(), name="tiny-64")
    config = tiny_config("llama", vocab_size=len(tiny_tokenizer()))
    config.hidden_size = 32
    config.intermediate_size = 64
    torch.manual_seed(0)
    wide = bridge_hf_model(tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval(),
                           tiny_tokenizer(), name="tiny-32")
    assert "width 64" in same_width_problem(small, wide)
    with pytest.raises(ConfigError, match="layer by layer") as err:
        require_comparable(small, wide)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="layer by layer"):
        cross_patch(small, wide, PATCH_TEXT, _tokens())


def test_tokenizer_check_allows_a_few_added_tokens_but_not_moved_ids():
    from types import SimpleNamespace

    from interventions.model_diff import same_tokenizer_problem

    def fake(vocab, name):
        return SimpleNamespace(tokenizer=SimpleNamespace(get_vocab=lambda: vocab),
                               identity=SimpleNamespace(name=name))

    vocab = {f"t{i}": i for i in range(1000)}
    assert same_tokenizer_problem(fake(vocab, "a"), fake({**vocab, "<think>": 1000}, "b")) is None
    swapped = {**vocab, "t1": 2, "t2": 1}
    assert "2 with other ids" in same_tokenizer_problem(fake(vocab, "a"), fake(swapped, "b"))
    other = {f"u{i}": i for i in range(1000)}
    assert "0 shared" in same_tokenizer_problem(fake(vocab, "a"), fake(other, "b"))
