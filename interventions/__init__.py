"""Interventions on a model's computation: steering, directional ablation and activation patching.

Sits above :mod:`activations`, :mod:`behaviour` and :mod:`probes` (it may use saved directions, hooks, generation
and the judge) and below the jobs in :mod:`experiments`.
"""
