"""Interventions on a model's computation and comparisons between models.

Sits above :mod:`activations`, :mod:`behaviour` and :mod:`probes` (it may use saved directions, hooks, generation
and the judge) and below the jobs in :mod:`experiments`.

- :mod:`interventions.verdict`     the verdict metric: log-odds of "against" over "proceed" continuations;
- :mod:`interventions.model_diff`  two checkpoints compared: direction cosine, probe transfer, cross-model
  patching, per-token KL divergence.
"""

__all__ = ["model_diff", "verdict"]
