"""Interventions on a model's computation: steering, directional ablation and activation patching.

Sits above :mod:`activations`, :mod:`behaviour` and :mod:`probes` (it may use saved directions, hooks, generation
and the judge) and below the jobs in :mod:`experiments`.

- :mod:`interventions.verdict`: the verdict log-odds metric and its single-token checks.
- :mod:`interventions.segments`: prompt segments (turns, sections, reasoning steps) and clean/corrupted alignment.
- :mod:`interventions.pairs`: patching pairs from texts, trials, symmetric token replacement or Gaussian noise.
- :mod:`interventions.patching`: exact activation patching on the bridge (TransformerLens's patching engine).
- :mod:`interventions.attribution`: attribution patching and its agreement with exact patching.
"""
