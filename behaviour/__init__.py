"""Behavioural side of the Veth experiment: the scenario, trials, scoring (judges), human review and tables.

Imports only :mod:`common`; never :mod:`activations` or :mod:`probes` (its siblings). Generating with a loaded model
joins the two sides, so the local-model backend lives a layer up (:mod:`experiments.jobs.backends`).

- :mod:`behaviour.scenario`   the published scenario texts (``configs/scenario/veth.yaml``) and their conditions;
- :mod:`behaviour.backends`   the ``Backend`` protocol trials generate through, and the OpenAI-compatible HTTP backend;
- :mod:`behaviour.trials`     the trials runner (resumable trial store, stable trial ids and seeds);
- :mod:`behaviour.judge`      the label set, final-verdict extraction, the offline rule judge, ``score_rows``;
- :mod:`behaviour.llm_judge`  a model-graded judge with a strict answer format;
- :mod:`behaviour.review`     export for manual review, import of reviewed labels, judge/human agreement;
- :mod:`behaviour.table`      the seed-format convergence table (Wilson intervals, Fisher tests) and its bar chart.

The package exports its modules (``__all__``); import names from them, e.g. ``from behaviour.scenario import
load_scenario``.
"""

__all__ = ["backends", "judge", "llm_judge", "review", "scenario", "table", "trials"]
