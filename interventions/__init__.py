"""Interventions on a model's computation and comparisons between models.

Sits above :mod:`activations`, :mod:`behaviour` and :mod:`probes` (it may use saved directions, hooks, generation
and the judge) and below the jobs in :mod:`experiments`.

- :mod:`interventions.verdict`     the verdict metric: log-odds of "against" over "proceed" continuations;
- :mod:`interventions.steering`    adding ``alpha * v`` to the residual stream (per row, per position rule) and
  directional ablation, in forward passes and generation;
- :mod:`interventions.directions_source`  steering directions from a probe run or a difference of means;
- :mod:`interventions.steering_analysis`  effects against random directions, the layer-choice rule;
- :mod:`interventions.steered_trials`     steered behavioural trials (the steering is part of each trial's identity);
- :mod:`interventions.gguf_export` a direction as a llama.cpp control vector;
- :mod:`interventions.model_diff`  two checkpoints compared: direction cosine, probe transfer, cross-model
  patching, per-token KL divergence;
- :mod:`interventions.segments`    prompt segments (turns, sections, reasoning steps) and clean/corrupted alignment;
- :mod:`interventions.pairs`       patching pairs from texts, trials, symmetric token replacement or Gaussian noise;
- :mod:`interventions.patching`    exact activation patching on the bridge (TransformerLens's patching engine);
- :mod:`interventions.attribution` attribution patching and its agreement with exact patching.
"""

__all__ = ["attribution", "directions_source", "gguf_export", "model_diff", "pairs", "patching", "segments",
           "steered_trials", "steering", "steering_analysis", "verdict"]
