"""Behavioural side of the Veth experiment: the scenario, scoring (judges), human review, statistics and tables.

Modules, one concern each:

- :mod:`behaviour.scenario`  the published scenario texts (``configs/scenario/veth.yaml``) and their conditions;
- :mod:`behaviour.labels`    the label set and definitions, ``Judgement``, the ``Judge`` protocol, abstention reasons;
- :mod:`behaviour.verdict_text` finding the verdict text every judge reads;
- :mod:`behaviour.text`, :mod:`behaviour.rule_direction`, :mod:`behaviour.rule_grounds` the rule judge's text helpers and cues;
- :mod:`behaviour.rule_judge` the offline rule judge; :mod:`behaviour.judges` the factory (``--judge`` spec);
- :mod:`behaviour.scoring`   judging trial rows; :mod:`behaviour.judge` gathers the public judging names;
- :mod:`behaviour.llm_judge` a model-graded judge (local model or OpenAI-compatible endpoint) with a strict format;
- :mod:`behaviour.embedding` the MiniLM sentence encoder (from its wheel, sha256-verified, mean pooling);
- :mod:`behaviour.embedding_judge` the learned judge (calibrated logistic regression on verdict embeddings);
- :mod:`behaviour.ensemble`  judges that must agree (disagreement or abstention -> review);
- :mod:`behaviour.judge_eval` measuring judges against the hand-labelled set (kappa, confusion, abstention);
- :mod:`behaviour.review`    export for manual review, import of reviewed labels, judge/human agreement;
- :mod:`common.stats`     Wilson intervals, Fisher exact tests, detectable differences, Cohen's kappa;
- :mod:`behaviour.table`     the seed-format convergence table and its bar chart;
- :mod:`common.jsonl`     JSONL reading (every bad line reported) and durable appending;
- :mod:`behaviour.backends`  where responses come from (a local model, or an OpenAI-compatible server);
- :mod:`behaviour.trials`    the trials runner (resumable trial store).
"""
