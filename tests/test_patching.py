"""Activation patching checked against independent implementations on tiny random-weight models.

- per-token grids equal TransformerLens's own ``get_act_patch_*`` functions on the same inputs;
- per-segment grids (equal and unequal lengths, both directions, heads) equal a raw PyTorch implementation with
  forward hooks on the plain Hugging Face modules (no TransformerLens at all);
- attribution scores equal TransformerLens's ``attribution_patch`` node scores;
- planted components (a head, an MLP) come out on top in exact and attribution patching;
- exact identities: patching the whole corrupted input at layer 0 restores the clean metric exactly.
"""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching as tlp
from transformer_lens.tools.analysis.attribution_patching import attribution_patch

from activations.models import bridge_hf_model
from activations.tiny import tiny_hf_model, tiny_model, tiny_tokenizer
from common.errors import ConfigError
from interventions.attribution import attribution_grid, attribution_scores, compare, gradients
from interventions.pairs import noise_pair, symmetric_replace, text_pair
from interventions.patching import (COMPONENTS, VerdictMetric, check_layers_heads, hook_name, patch_grid,
                                    prepare_runs, target_and_source)
from interventions.segments import align, tokenize_segments
from interventions.verdict import resolve_verdict_tokens, verdict_log_odds

CLEAN = "Step 1: list the facts. Step 2: infer interests. Step 3: weigh them. Final verdict:"
CORRUPTED = "Step 1: weigh the facts. Step 2: infer interests. Step 3: weigh them. Final verdict:"
LONGER = ("Step 1: list the facts.\n\nThe Veth show distress when separated.\n\nStep 2: infer interests. "
          "Step 3: weigh them. Final verdict:")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=0)


@pytest.fixture(scope="module")
def metric(model):
    return VerdictMetric(resolve_verdict_tokens(model.tokenizer, [" do"], [" not"]))


def _names(model):
    return [hook_name(c, layer) for c in COMPONENTS for layer in range(model.n_layers)]


# ---------------------------------------------------------------- segments and alignment

def test_segments_label_sections_steps_and_verdict():
    tok = tiny_tokenizer()
    ids, segs = tokenize_segments(tok, LONGER)
    assert [s.label for s in segs] == ["Step 1", "The Veth show", "Step 2", "Step 3", "Final verdict"]
    assert segs[0].start == 0 and segs[-1].end == len(ids)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))  # contiguous, no token lost
    # The placeholder lines of an answer format do not start reasoning steps.
    _, fmt = tokenize_segments(tok, "Reason in steps:\nStep 1: [analysis]\nStep 2: [analysis]\n\nStep 1: list")
    assert [s.label for s in fmt] == ["Reason in steps", "Step 1"]


def test_align_by_token_and_by_segment_with_reasons():
    tok = tiny_tokenizer()
    a = align(*tokenize_segments(tok, CLEAN), *tokenize_segments(tok, CORRUPTED))
    assert a.mode == "tokens" and a.differing_positions
    assert [p.differs for p in a.pairs] == [True, False, False, False]
    b = align(*tokenize_segments(tok, CLEAN), *tokenize_segments(tok, LONGER))
    assert b.mode == "segments"
    assert ("The Veth show", "only in the corrupted text") in b.skipped
    assert any("tokens in the clean text" in why for _, why in b.skipped)  # Step 1 differs in length
    with pytest.raises(ConfigError, match="per-token patching needs texts of equal token length"):
        b.cells("denoising", "token")
    with pytest.raises(ConfigError, match="cannot align the pair: lengths differ"):
        align(*tokenize_segments(tok, "Step 1: list"), *tokenize_segments(tok, "Final verdict: do not proceed"))
    with pytest.raises(ConfigError, match="tokenize identically"):
        align(*tokenize_segments(tok, CLEAN), *tokenize_segments(tok, CLEAN))


# ---------------------------------------------------------------- against TransformerLens's own patching

@pytest.mark.parametrize("component,tl_fn", [("resid_pre", tlp.get_act_patch_resid_pre),
                                             ("attn_out", tlp.get_act_patch_attn_out),
                                             ("mlp_out", tlp.get_act_patch_mlp_out)])
def test_per_token_grid_equals_transformer_lens(model, metric, component, tl_fn):
    pair = text_pair(model.tokenizer, CLEAN, CORRUPTED)
    clean, corrupted = prepare_runs(model.bridge, pair, _names(model), metric)
    cells = pair.alignment.cells("denoising", "token")
    ours = patch_grid(model.bridge, clean, corrupted, metric, component, "denoising", cells, "token",
                      range(model.n_layers))
    theirs = tl_fn(model.bridge, pair.corrupted, clean.cache, lambda logits: metric(logits)[0])
    assert ours.raw.shape == theirs.shape
    torch.testing.assert_close(ours.raw, theirs.float(), atol=1e-5, rtol=1e-5)
    assert ours.raw.std() > 1e-4  # the grid is not flat: the check has something to compare


def test_heads_over_all_positions_equal_transformer_lens(model, metric):
    pair = text_pair(model.tokenizer, CLEAN, CORRUPTED)
    clean, corrupted = prepare_runs(model.bridge, pair, _names(model), metric)
    ours = patch_grid(model.bridge, clean, corrupted, metric, "z", "denoising",
                      [pair.alignment.all_positions("denoising")], "segment", range(model.n_layers))
    theirs = tlp.get_act_patch_attn_head_out_all_pos(model.bridge, pair.corrupted, clean.cache,
                                                     lambda logits: metric(logits)[0])
    torch.testing.assert_close(ours.raw, theirs.float(), atol=1e-5, rtol=1e-5)


def test_attribution_equals_transformer_lens_node_scores(model, metric):
    pair = text_pair(model.tokenizer, CLEAN, CORRUPTED)
    clean, corrupted = prepare_runs(model.bridge, pair, _names(model), metric)
    target, source = target_and_source(clean, corrupted, "denoising")
    layers = range(model.n_layers)
    names = [hook_name(c, layer) for c in ("mlp_out", "z") for layer in layers]
    grads = gradients(model.bridge, target, names, metric)
    cells = pair.alignment.cells("denoising", "token")
    mlp = attribution_scores(target.cache, source.cache, grads, "mlp_out", cells, layers)
    theirs = attribution_patch(model.bridge, pair.clean, pair.corrupted, lambda logits: metric(logits)[0])
    for node, score in theirs.node_scores.items():
        if node.kind == "mlp_out":
            assert float(mlp[node.layer, node.position, 0]) == pytest.approx(score, abs=1e-6)
        elif node.kind == "attn_head_out":
            one = [c for c in cells if c.target == (node.position,)]
            head = attribution_scores(target.cache, source.cache, grads, "z", one, [node.layer])
            assert float(head[0, node.head, 0]) == pytest.approx(score, abs=1e-6)


def test_attribution_with_frozen_parameters_equals_trainable(metric):
    # A large model is frozen so a backward allocates no parameter gradients; the activations' gradients must not
    # change, and no parameter may end up with a .grad.
    model = tiny_model("llama", seed=0)
    pair = text_pair(model.tokenizer, CLEAN, CORRUPTED)
    names = [hook_name(c, layer) for c in ("resid_pre", "mlp_out") for layer in range(model.n_layers)]
    clean, corrupted = prepare_runs(model.bridge, pair, names, metric)
    trainable = gradients(model.bridge, corrupted, names, metric)
    model.bridge.requires_grad_(False)
    frozen = gradients(model.bridge, corrupted, names, metric)
    for name in names:
        torch.testing.assert_close(frozen[name], trainable[name], rtol=0, atol=0)
    assert all(p.grad is None for p in model.bridge.parameters())
    assert any(float(g.abs().max()) > 0 for g in frozen.values())


# ---------------------------------------------------------------- against raw PyTorch hooks on the HF model

def _hf_module(hf, component, layer):
    block = hf.model.layers[layer]
    modules = {"resid_pre": block, "attn_out": block.self_attn, "mlp_out": block.mlp, "z": block.self_attn.o_proj}
    return modules[component]


def _hf_activation(hf, component, layer, ids):
    """The component's activation on ``ids`` read with a plain forward hook ([batch, pos, ...]; z per head)."""
    got = {}
    module = _hf_module(hf, component, layer)

    def pre(mod, args, kwargs):
        got["x"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    def post(mod, args, output):
        got["x"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

    handle = (module.register_forward_pre_hook(pre, with_kwargs=True) if component in ("resid_pre", "z")
              else module.register_forward_hook(post))
    with torch.no_grad():
        hf(ids)
    handle.remove()
    x = got["x"]
    return x.view(*x.shape[:2], hf.config.num_attention_heads, -1) if component == "z" else x


def _hf_patched_metric(hf, tokens, component, layer, target, source_act, source_pos, head, verdict):
    module = _hf_module(hf, component, layer)

    def swap(x):
        x = x.clone()
        if component == "z":
            shaped = x.view(*x.shape[:2], hf.config.num_attention_heads, -1)
            shaped[:, list(target), head] = source_act[:, list(source_pos), head]
        else:
            x[:, list(target)] = source_act[:, list(source_pos)]
        return x

    if component in ("resid_pre", "z"):
        def pre(mod, args, kwargs):
            if args:
                return (swap(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": swap(kwargs["hidden_states"])}
        handle = module.register_forward_pre_hook(pre, with_kwargs=True)
    else:
        def post(mod, args, output):
            return (swap(output[0]), *output[1:]) if isinstance(output, tuple) else swap(output)
        handle = module.register_forward_hook(post)
    with torch.no_grad():
        logits = hf(tokens).logits
    handle.remove()
    return float(verdict_log_odds(logits[:, -1], verdict)[0])


@pytest.mark.parametrize("corrupted_text", [CORRUPTED, LONGER], ids=["token-aligned", "segment-aligned"])
@pytest.mark.parametrize("direction", ["denoising", "noising"])
def test_per_segment_grid_equals_raw_pytorch_hooks(model, metric, corrupted_text, direction):
    hf = tiny_hf_model("llama", seed=0)  # same weights as the bridged model, never touched by TransformerLens
    pair = text_pair(model.tokenizer, CLEAN, corrupted_text)
    clean, corrupted = prepare_runs(model.bridge, pair, _names(model), metric)
    cells = pair.alignment.cells(direction, "segment")
    target_ids, source_ids = ((pair.corrupted, pair.clean) if direction == "denoising"
                              else (pair.clean, pair.corrupted))
    for component in COMPONENTS:
        grid_cells = [pair.alignment.all_positions(direction)] if component == "z" else cells
        ours = patch_grid(model.bridge, clean, corrupted, metric, component, direction, grid_cells, "segment",
                          range(model.n_layers))
        for layer in range(model.n_layers):
            source_act = _hf_activation(hf, component, layer, source_ids)
            for col in range(ours.raw.shape[1]):
                cell, head = (grid_cells[0], col) if component == "z" else (grid_cells[col], None)
                ref = _hf_patched_metric(hf, target_ids, component, layer, cell.target, source_act, cell.source,
                                         head, metric.tokens)
                assert float(ours.raw[layer, col]) == pytest.approx(ref, abs=2e-4), (component, layer, col)


# ---------------------------------------------------------------- exact identities and noise

def test_patching_the_whole_input_at_layer_0_restores_exactly(model, metric):
    pair = symmetric_replace(model.tokenizer, CLEAN, [("list", "weigh")])
    assert pair.alignment.mode == "tokens"
    clean, corrupted = prepare_runs(model.bridge, pair, _names(model), metric)
    for direction, expected in (("denoising", 1.0), ("noising", 0.0)):
        grid = patch_grid(model.bridge, clean, corrupted, metric, "resid_pre", direction,
                          [pair.alignment.all_positions(direction)], "segment", [0])
        assert float(grid.values[0, 0]) == pytest.approx(expected, abs=1e-4)
        assert float(grid.effect[0, 0]) == pytest.approx(1.0, abs=1e-4)  # recovery / damage is complete


def test_gaussian_noise_gives_intervals_and_exact_restoration(model, metric):
    pair = noise_pair(model.tokenizer, CLEAN, ["Step 1"], scale=5.0, samples=6, seed=1)
    clean, corrupted = prepare_runs(model.bridge, pair, _names(model), metric)
    assert corrupted.metric.shape == (6,) and corrupted.metric.std() > 0  # six different draws
    cells = pair.alignment.cells("denoising", "segment")
    grid = patch_grid(model.bridge, clean, corrupted, metric, "resid_pre", "denoising", cells, "segment",
                      range(model.n_layers))
    assert grid.ci_low is not None and grid.ci_high is not None
    assert bool((grid.ci_low <= grid.values + 1e-6).all() and (grid.values <= grid.ci_high + 1e-6).all())
    step1 = [c.label for c in cells].index("Step 1")
    assert float(grid.values[0, step1]) == pytest.approx(1.0, abs=1e-4)  # un-noising the noised tokens
    others = [i for i in range(len(cells)) if i != step1]
    assert float(grid.values[0, others].abs().max()) < 1e-4  # layer 0 elsewhere: nothing differs yet
    # Noising direction: each clean run is patched from its own noise draw, same identity reversed.
    grid = patch_grid(model.bridge, clean, corrupted, metric, "resid_pre", "noising",
                      pair.alignment.cells("noising", "segment"), "segment", [0])
    assert float(grid.values[0, step1]) == pytest.approx(0.0, abs=1e-4)


# ---------------------------------------------------------------- planted effects

def _planted_model(seed: int = 0):
    """Tiny llama where layer 0's MLP turns token A/B (+e/-e) into +w/-w at its position, and head 1 of layer 1
    (uniform attention) carries w to the last position and writes the verdict direction. Everything else is the
    random init (std 0.02), so these two components decide the metric."""
    tok = tiny_tokenizer()
    hf = tiny_hf_model("llama", seed=seed)
    a_id, b_id = tok.convert_tokens_to_ids("Ġlist"), tok.convert_tokens_to_ids("Ġweigh")
    against, proceed = tok.convert_tokens_to_ids("Ġdo"), tok.convert_tokens_to_ids("Ġnot")
    d = hf.config.hidden_size
    gen = torch.Generator().manual_seed(123)
    basis, _ = torch.linalg.qr(torch.randn(d, 3, generator=gen))
    e, f, w = basis.T
    u = hf.lm_head.weight[against] - hf.lm_head.weight[proceed]
    u = u / u.norm()
    with torch.no_grad():
        emb = hf.model.embed_tokens.weight
        emb -= torch.outer(emb @ w, w)  # only the MLP writes w, so the head reads the planted signal alone
        emb[a_id], emb[b_id] = 0.5 * (e + f), 0.5 * (-e + f)
        mlp = hf.model.layers[0].mlp
        mlp.gate_proj.weight[0], mlp.up_proj.weight[0] = f, e  # output = silu(f.x) (e.x) w: odd in e
        mlp.down_proj.weight[:, 0] = 0.05 * w
        attn = hf.model.layers[1].self_attn
        hd = attn.head_dim
        attn.q_proj.weight[hd:2 * hd] = 0.0  # head 1: uniform attention
        attn.v_proj.weight[0] = w  # kv head 0 (read by query heads 0 and 1), dim 0 reads w
        attn.o_proj.weight[:, 0] = 0.0  # head 0 does not pass it on
        attn.o_proj.weight[:, hd] = 2.0 * u  # head 1 writes the verdict direction
    return bridge_hf_model(hf, tok, name="planted"), VerdictMetric(resolve_verdict_tokens(tok, [" do"], [" not"]))


def test_planted_head_and_mlp_come_out_on_top_in_exact_and_attribution():
    model, metric = _planted_model()
    pair = text_pair(model.tokenizer, CLEAN, CORRUPTED)
    (pos,) = pair.alignment.differing_positions
    clean, corrupted = prepare_runs(model.bridge, pair, _names(model), metric)
    assert float(clean.metric[0] - corrupted.metric[0]) > 0.5  # the planted circuit decides the verdict
    layers = range(model.n_layers)
    heads = [pair.alignment.all_positions("denoising")]
    tokens = pair.alignment.cells("denoising", "token")
    for grid_fn in (patch_grid, attribution_grid):
        z = grid_fn(model.bridge, clean, corrupted, metric, "z", "denoising", heads, "segment", layers)
        top = z.top(1)[0]
        assert (top["layer"], top["column"]) == (1, "H1"), (grid_fn.__name__, z.top(3))
        mlp = grid_fn(model.bridge, clean, corrupted, metric, "mlp_out", "denoising", tokens, "token", layers)
        top = mlp.top(1)[0]
        assert (top["layer"], top["column"]) == (0, str(pos)), (grid_fn.__name__, mlp.top(3))
    exact = patch_grid(model.bridge, clean, corrupted, metric, "z", "denoising", heads, "segment", layers)
    assert float(exact.values[1, 1]) > 0.8  # the planted head alone restores most of the clean verdict
    agreement = compare(exact, attribution_grid(model.bridge, clean, corrupted, metric, "z", "denoising", heads,
                                                "segment", layers), k=1)
    assert agreement.top_k_overlap == 1.0


# ---------------------------------------------------------------- bad input

def test_bad_input_is_one_clear_error(model):
    with pytest.raises(ConfigError, match=r"layer\(s\) \[7\] out of range: this model has layers 0..2"):
        check_layers_heads(model.bridge, [0, 7])
    with pytest.raises(ConfigError, match=r"head\(s\) \[4\] out of range"):
        check_layers_heads(model.bridge, None, [4])
    with pytest.raises(ConfigError, match="is not a single token in this tokenizer: it splits into"):
        resolve_verdict_tokens(model.tokenizer, [" Rejectable"], [" not"])
    with pytest.raises(ConfigError, match="must keep the token count"):
        symmetric_replace(model.tokenizer, CLEAN, [("list", "extraction quota")])
    with pytest.raises(ConfigError, match="does not occur"):
        symmetric_replace(model.tokenizer, CLEAN, [("zebra", "horse")])
    with pytest.raises(ConfigError, match="not in the text; its segments are"):
        noise_pair(model.tokenizer, CLEAN, ["Step 9"])
    with pytest.raises(ConfigError, match="unknown component"):
        hook_name("resid_post_typo", 0)


def test_agreement_leaves_out_cells_zero_in_both():
    from interventions.patching import PatchGrid

    def grid(values, method):
        v = torch.tensor(values)
        return PatchGrid("resid_pre", "denoising", method, [0, 1], ["a", "b", "c"], "segment", v, v, 1.0, 0.0, 1)

    exact = grid([[0.0, 0.0, 0.9], [0.0, 0.5, 0.1]], "exact")
    approx = grid([[0.0, 0.0, 0.2], [0.0, 0.6, 0.3]], "attribution")
    agreement = compare(exact, approx, k=1)
    assert (agreement.n_cells, agreement.n_trivial) == (3, 3)
    assert agreement.spearman == pytest.approx(-0.5)  # ranks (3, 2, 1) vs (1, 3, 2): the zeros would have hidden it
    assert agreement.top_k_overlap == 0.0
    assert agreement.disagreements[0] == {"layer": 0, "column": "c", "exact": pytest.approx(0.9),
                                          "attribution": pytest.approx(0.2)}
