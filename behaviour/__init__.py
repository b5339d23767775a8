"""Behavioural side of the Veth experiment: the scenario, scoring (judges), human review, statistics and tables.

Modules, one concern each:

- :mod:`behaviour.scenario`  the published scenario texts (``configs/scenario/veth.yaml``) and their conditions;
- :mod:`behaviour.judge`     the label set, final-verdict extraction, the offline rule judge, ``score_rows``;
- :mod:`behaviour.llm_judge` a model-graded judge (local model or OpenAI-compatible endpoint) with a strict format;
- :mod:`behaviour.review`    export for manual review, import of reviewed labels, judge/human agreement;
- :mod:`common.stats`     Wilson intervals, Fisher exact tests, detectable differences, Cohen's kappa;
- :mod:`behaviour.table`     the seed-format convergence table and its bar chart;
- :mod:`common.jsonl`     JSONL reading (every bad line reported) and durable appending;
- :mod:`behaviour.backends`  where responses come from (a local model, or an OpenAI-compatible server);
- :mod:`behaviour.trials`    the trials runner (resumable trial store).
"""
