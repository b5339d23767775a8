"""Steering and ablation hooks on tiny random-weight models, checked against independent implementations.

- a raw PyTorch forward (pre-)hook on the plain Hugging Face decoder layer (a separate, un-bridged copy of the model);
- greedy decoding that recomputes the full sequence at every step (no KV cache) against the bridge's cached loop;
- each row run alone against the same row in a mixed batch;
- Hugging Face's own hidden states for the residual norms.
"""

from __future__ import annotations

import math

import pytest
import torch

from activations.generation import generate_detailed
from activations.selection import hook_point_name
from activations.tiny import tiny_hf_model, tiny_model
from common.errors import ConfigError
from interventions.steering import (
    Ablate, ResidualNorms, Steer, generate_steered, last_logits, measure_residual_norms, plan_for,
    steered_forward, steering_hooks,
)

PROMPTS = ["Step 1: list the facts.", "The Veth show distress when separated, so staying together matters.",
           "Final verdict:"]


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", seed=0)


@pytest.fixture(scope="module")
def hf():
    return tiny_hf_model("llama", seed=0)


def _dirs(d: int, k: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=g)


def _pad(model, prompts):
    rows = [model.encode(p) for p in prompts]
    width = max(map(len, rows))
    tokens = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return rows, tokens, mask


def _hf_logits(hf, tokens, mask, layer, hook, vectors, pos_masks):
    """Reference: add vectors[i] at pos_masks[i] to the input (resid_pre) or output (resid_post) of HF layer."""
    module = hf.model.layers[layer]
    delta = vectors[:, None, :] * pos_masks[..., None].float()

    def pre(mod, args, kwargs):
        if args:
            return (args[0] + delta, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + delta}

    def post(mod, args, output):
        if isinstance(output, tuple):
            return (output[0] + delta, *output[1:])
        return output + delta

    handle = (module.register_forward_pre_hook(pre, with_kwargs=True) if hook == "resid_pre"
              else module.register_forward_hook(post))
    try:
        with torch.no_grad():
            return hf(input_ids=tokens, attention_mask=mask).logits
    finally:
        handle.remove()


@pytest.mark.parametrize("hook", ["resid_pre", "resid_post"])
@pytest.mark.parametrize("rule", ["all", "prompt", "generated"])
def test_steer_adds_alpha_v_like_a_raw_hf_hook(model, hf, hook, rule):
    layer = 1
    rows, tokens, mask = _pad(model, PROMPTS)
    dirs = _dirs(model.d_model, 3)
    alphas = [2.0, -3.0, 0.0]
    plan = plan_for(model, [[Steer(dirs[i], alphas[i], (layer,), hook=hook, positions=rule, absolute=True)]
                            for i in range(3)])
    out = steered_forward(model, rows, plan, lambda lg, m, idx: list(lg.float()), batch_size=3)
    ours = torch.stack(out)
    width = tokens.shape[1]
    pos = torch.arange(width)[None, :].expand_as(mask)
    real = mask.bool()
    where = {"all": real, "prompt": real, "generated": real & (pos >= width - 1)}[rule]
    vectors = torch.stack([alphas[i] * dirs[i] for i in range(3)])
    ref = _hf_logits(hf, tokens, mask, layer, hook, vectors, where)
    plain = _hf_logits(hf, tokens, mask, layer, hook, torch.zeros_like(vectors), where)
    assert not torch.allclose(ref[0][real[0]], plain[0][real[0]], atol=1e-3)  # the steer does something
    for i in range(3):
        assert torch.allclose(ours[i][real[i]], ref[i][real[i]], atol=1e-4), f"row {i}"


@pytest.mark.parametrize("arch", ["qwen3", "gemma3"])
def test_steer_matches_raw_hf_hook_on_other_architectures(arch):
    model, hf = tiny_model(arch, seed=0), tiny_hf_model(arch, seed=0)
    rows, tokens, mask = _pad(model, PROMPTS)
    dirs = _dirs(model.d_model, 3)
    plan = plan_for(model, [[Steer(dirs[i], 3.0, (1,), hook="resid_pre", absolute=True)] for i in range(3)])
    ours = torch.stack(steered_forward(model, rows, plan, lambda lg, m, idx: list(lg.float()), batch_size=3))
    ref = _hf_logits(hf, tokens, mask, 1, "resid_pre", 3.0 * dirs, mask.bool())
    for i in range(3):
        real = mask[i].bool()
        assert torch.allclose(ours[i][real], ref[i][real], atol=1e-4), f"row {i}"


def test_padding_is_never_steered(model):
    rows, tokens, mask = _pad(model, PROMPTS)
    v = _dirs(model.d_model, 1)[0]
    plan = plan_for(model, [[Steer(v, 5.0, (0,), hook="resid_pre", positions="all", absolute=True)]] * 3)
    seen = {}

    def grab(x, hook):
        seen["x"] = x.detach().clone()
        return x

    with torch.no_grad():
        with model.bridge.hooks(fwd_hooks=[(hook_point_name("resid_pre", 0), grab)]):
            model.bridge(tokens, attention_mask=mask)
        clean = seen["x"]
        with steering_hooks(model, plan, [len(r) for r in rows]):
            with model.bridge.hooks(fwd_hooks=[(hook_point_name("resid_pre", 0), grab)]):
                model.bridge(tokens, attention_mask=mask)
    diff = seen["x"] - clean
    pad = ~mask.bool()
    assert pad.any()
    assert torch.equal(diff[pad], torch.zeros_like(diff[pad]))
    assert torch.allclose(diff[mask.bool()], (5.0 * v).expand_as(diff[mask.bool()]), atol=1e-5)


def _recompute_greedy(model, prompts, plan, n_new):
    """Independent decoding: the full sequence through a plain forward at every step, no KV cache."""
    rows = [model.encode(p) for p in prompts]
    width = max(map(len, rows))
    seqs = [[0] * (width - len(r)) + r for r in rows]
    masks = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    for _ in range(n_new):
        tokens, mask = torch.tensor(seqs), torch.tensor(masks)
        with torch.no_grad(), steering_hooks(model, plan, [len(r) for r in rows], width=width):
            logits = model.bridge(tokens, attention_mask=mask)
        nxt = logits[:, -1, :].argmax(-1).tolist()
        for s, m, t in zip(seqs, masks, nxt):
            s.append(t)
            m.append(1)
    return [s[width:] for s in seqs]


@pytest.mark.parametrize("attention", ["bridge", "sdpa"])
@pytest.mark.parametrize("rule", ["all", "prompt", "generated"])
def test_cached_steered_generation_equals_full_recompute(model, rule, attention):
    dirs = _dirs(model.d_model, 3, seed=7)
    plan = plan_for(model, [[Steer(dirs[i], 4.0, (0, 2), positions=rule, absolute=True)] for i in range(3)])
    n_new = 6
    got = generate_steered(model, PROMPTS, plan, max_new_tokens=n_new, stop_at_eos=False, batch_size=3,
                           attention=attention)
    ref = _recompute_greedy(model, PROMPTS, plan, n_new)
    assert [g.token_ids for g in got] == ref
    plain = generate_detailed(model, PROMPTS, max_new_tokens=n_new, stop_at_eos=False)
    assert [g.token_ids for g in plain] != ref  # steering changed the text, so the comparison has teeth


def test_generated_rule_steers_the_first_new_token(model):
    v = _dirs(model.d_model, 1, seed=3)[0]
    plan = plan_for(model, [[Steer(v, 50.0, (2,), positions="generated", absolute=True)]])
    steered = generate_steered(model, PROMPTS[:1], plan, max_new_tokens=1, stop_at_eos=False)
    plain = generate_detailed(model, PROMPTS[:1], max_new_tokens=1, stop_at_eos=False)
    assert steered[0].token_ids != plain[0].token_ids


def test_per_row_batch_equals_each_row_alone(model):
    dirs = _dirs(model.d_model, 3, seed=11)
    rows = [
        [Steer(dirs[0], 3.0, (1,), positions="all", absolute=True)],
        [],
        [Steer(dirs[1], -2.0, (0, 2), hook="resid_pre", positions="generated", absolute=True),
         Ablate(dirs[2], positions="prompt")],
    ]
    plan = plan_for(model, rows)
    batched = generate_steered(model, PROMPTS, plan, max_new_tokens=5, stop_at_eos=False, batch_size=3)
    tokens = [model.encode(p) for p in PROMPTS]
    batched_logits = steered_forward(model, tokens, plan, last_logits, batch_size=3)
    for i in range(3):
        alone = plan_for(model, [rows[i]])
        single = generate_steered(model, [PROMPTS[i]], alone, max_new_tokens=5, stop_at_eos=False)
        assert single[0].token_ids == batched[i].token_ids
        single_logits = steered_forward(model, [tokens[i]], alone, last_logits)[0]
        assert torch.allclose(single_logits, batched_logits[i], atol=1e-4)
    # the last position's logits alone (logits_to_keep=1) equal the last column of the full logits, padding included
    last_only = steered_forward(model, tokens, plan, last_logits, batch_size=3, last_only=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(last_only, batched_logits))
    assert not torch.allclose(last_only[0], last_only[1], atol=1e-3)  # rows differ: the comparison is not vacuous


def test_alpha_zero_leaves_generation_unchanged(model):
    v = _dirs(model.d_model, 1)[0]
    norms = ResidualNorms("resid_post", tuple([1.0] * model.n_layers), 1, 1)
    plan = plan_for(model, [[Steer(v, 0.0, (0, 1, 2))]] * 3, norms)
    for kwargs in ({}, {"temperature": 1.0, "seed": 5}):
        steered = generate_steered(model, PROMPTS, plan, max_new_tokens=6, stop_at_eos=False, **kwargs)
        plain = generate_detailed(model, PROMPTS, max_new_tokens=6, stop_at_eos=False, **kwargs)
        assert [g.token_ids for g in steered] == [g.token_ids for g in plain]


def test_ablation_leaves_no_component_along_v(model):
    v = _dirs(model.d_model, 1, seed=5)[0]
    u = v / v.norm()
    rows, tokens, mask = _pad(model, PROMPTS)
    last = hook_point_name("resid_post", model.n_layers - 1)
    seen = {}

    def grab(name):
        def hook(x, hook):
            seen[name] = x.detach().clone()
            return x
        return hook

    plan = plan_for(model, [[Ablate(v)], [], [Ablate(v)]])
    with torch.no_grad(), steering_hooks(model, plan, [len(r) for r in rows]):
        names = (last, hook_point_name("resid_pre", 1))
        with model.bridge.hooks(fwd_hooks=[(n, grab(n)) for n in names]):
            model.bridge(tokens, attention_mask=mask)
    real = mask.bool()
    for name in (last, hook_point_name("resid_pre", 1)):
        comp = seen[name] @ u
        assert comp[0][real[0]].abs().max() < 1e-4
        assert comp[2][real[2]].abs().max() < 1e-4
        assert comp[1][real[1]].abs().max() > 1e-2  # the unablated row keeps its component


def test_relative_alpha_uses_the_layer_norm(model):
    v = _dirs(model.d_model, 1)[0]
    norms = ResidualNorms("resid_post", tuple(float(i + 1) for i in range(model.n_layers)), 10, 1)
    plan = plan_for(model, [[Steer(v, 0.5, (2,))]], norms)
    added = plan.hooks[hook_point_name("resid_post", 2)].add["all"][0]
    assert math.isclose(float(added.norm()), 0.5 * 3.0, rel_tol=1e-5)
    assert torch.allclose(added / added.norm(), v / v.norm(), atol=1e-6)


def test_residual_norms_match_hf_hidden_states(model, hf):
    texts = PROMPTS[:2]
    norms = measure_residual_norms(model, texts, hook="resid_post")
    total = torch.zeros(model.n_layers)
    count = 0
    for t in texts:
        ids = torch.tensor([model.encode(t)])
        with torch.no_grad():
            hs = hf(input_ids=ids, output_hidden_states=True).hidden_states
        for layer in range(model.n_layers):
            total[layer] += hs[layer + 1][0, 1:].norm(dim=-1).sum()
        count += ids.shape[1] - 1
    # HF's last hidden state is after the final norm, so compare the layers before it.
    expected = total / count
    assert norms.n_tokens == count
    for layer in range(model.n_layers - 1):
        assert math.isclose(norms.norms[layer], float(expected[layer]), rel_tol=1e-4)
    assert ResidualNorms.from_dict(norms.to_dict()) == norms


@pytest.mark.parametrize("rows,needle", [
    ([[Steer(torch.ones(7), 1.0, (0,), absolute=True)]], "width 7"),
    ([[Steer(torch.ones(64), 1.0, (3,), absolute=True)]], "out of range"),
    ([[Steer(torch.ones(64), float("nan"), (0,), absolute=True)]], "finite"),
    ([[Steer(torch.ones(64), float("inf"), (0,), absolute=True)]], "finite"),
    ([[Steer(torch.ones(64), "1", (0,), absolute=True)]], "finite"),
    ([[Steer(torch.ones(64), 1.0, (0,), positions="middle", absolute=True)]], "unknown position rule"),
    ([[Ablate(torch.ones(64), positions="last")]], "unknown position rule"),
    ([[Steer(torch.ones(64), 1.0, (0,), hook="attn_out", absolute=True)]], "unknown hook"),
    ([[Steer(torch.ones(64), 1.0, (0,))]], "relative"),
    ([[Ablate(torch.ones(64), layers=(-1,))]], "out of range"),
    ([[Steer(torch.zeros(64), 1.0, (0,), absolute=True)]], "zero vector"),
    ([["steer"]], "expected Steer or Ablate"),
])
def test_bad_input_is_a_clear_error_before_model_work(model, rows, needle):
    with pytest.raises(ConfigError, match=needle):
        plan_for(model, rows)
