"""Linear probes on activation matrices: concept data, estimators, controls, metrics, layer sweeps, directions.

Imports only :mod:`common`; never :mod:`activations` or :mod:`behaviour` (its siblings): it works on arrays, and the
job that feeds it activations is :mod:`experiments.jobs.probe`.

- :mod:`probes.concepts`       the concept datasets (``configs/concepts/*.jsonl``), outside evaluation files;
- :mod:`probes.solver`         the batched row-space L2 logistic solver and the shared linear predict methods;
- :mod:`probes.estimators`     scikit-learn probes: ``LogisticProbe``, ``MeanDiffProbe``;
- :mod:`probes.controls`       the control task (random labels, selectivity) and the bag-of-words baseline;
- :mod:`probes.metrics`        accuracy (Wilson) and AUROC (DeLong) with intervals, paired comparisons;
- :mod:`probes.sweep`          the grouped-CV layer sweep with controls, and the layer-selection rule;
- :mod:`probes.concept_probe`  one concept's result (``ConceptResult``), fitting a unit direction, estimators by name;
- :mod:`probes.directions`     saved directions (safetensors + JSON), refused for other weights;
- :mod:`probes.figures`        AUROC/accuracy-by-layer figures of a sweep.

The package exports its modules (``__all__``); import names from them, e.g. ``from probes.directions import
load_directions``.
"""

__all__ = ["concept_probe", "concepts", "controls", "directions", "estimators", "figures", "metrics", "solver",
           "sweep"]
