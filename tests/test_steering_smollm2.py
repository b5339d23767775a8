"""Steering on the real embedded SmolLM2 (slow): the default experiment config fits its tokenizer, and steered
generation with the KV cache equals full recomputation on a real scenario prompt."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from activations.models import load_model

    return load_model("smollm2-135m-instruct")


def test_default_config_fits_smollm2(smollm2):
    from experiments.jobs.steer import SteerConfig, check_against_model

    tokens, layers = check_against_model(smollm2, SteerConfig.from_yaml(None))
    assert len(tokens.against) == len(tokens.proceed) == 1
    assert layers and max(layers) < 24  # the last 20% of 30 layers are skipped


def test_steered_generation_equals_recompute_on_smollm2(smollm2):
    from interventions.steering import Steer, generate_steered, plan_for, steering_hooks

    prompts = ["The board asked whether to use the Veth as unpaid labour. Final verdict:", "Step 1:"]
    g = torch.Generator().manual_seed(0)
    v = torch.randn(smollm2.d_model, generator=g)
    plan = plan_for(smollm2, [[Steer(v, 8.0, (10,), positions="generated", absolute=True)], []])
    got = generate_steered(smollm2, prompts, plan, max_new_tokens=4, stop_at_eos=False, batch_size=2,
                           attention="sdpa")
    rows = [smollm2.encode(p) for p in prompts]
    width = max(map(len, rows))
    pad = smollm2.tokenizer.pad_token_id or 0
    seqs = [[pad] * (width - len(r)) + r for r in rows]
    masks = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    for _ in range(4):
        with torch.no_grad(), steering_hooks(smollm2, plan, [len(r) for r in rows], width=width):
            logits = smollm2.bridge(torch.tensor(seqs), attention_mask=torch.tensor(masks))
        for s, m, t in zip(seqs, masks, logits[:, -1].argmax(-1).tolist()):
            s.append(t)
            m.append(1)
    assert [x.token_ids for x in got] == [s[width:] for s in seqs]
