"""Behavioural side of the Veth experiment: the scenario, trials, scoring (judges), human review and tables.

Imports only :mod:`common`; never :mod:`activations` or :mod:`probes` (its siblings). Generating with a loaded model
joins the two sides, so the local-model backend lives a layer up (:mod:`experiments.jobs.backends`).

- :mod:`behaviour.scenario`   the published scenario texts (``configs/scenario/veth.yaml``) and their conditions;
- :mod:`behaviour.backends`   the ``Backend`` protocol trials generate through, and the OpenAI-compatible HTTP backend;
- :mod:`behaviour.trials`     the trials runner (resumable trial store, stable trial ids and seeds);
- :mod:`behaviour.judges.labels`     the label set and definitions, ``Judgement``, the ``Judge`` protocol, abstention reasons;
- :mod:`behaviour.judges.verdict_text` finding the verdict text every judge reads;
- :mod:`behaviour.judges.text`, :mod:`behaviour.judges.rule_direction`, :mod:`behaviour.judges.rule_grounds` the rule judge's text
  helpers and cues (direction of the recommendation; its grounds);
- :mod:`behaviour.judges.rule_judge` the offline rule judge; :mod:`behaviour.judges.factory` the factory (``--judge`` spec);
- :mod:`behaviour.judges.scoring`    judging trial rows (truncation abstains); :mod:`behaviour.judge` gathers the public
  judging names;
- :mod:`behaviour.judges.llm_judge`  a model-graded judge with a strict answer format;
- :mod:`behaviour.judges.embedding`  the sentence encoders, mpnet and MiniLM (from their wheels, sha256-verified, mean pooling);
- :mod:`behaviour.judges.embedding_judge` the learned judge (calibrated logistic regression on verdict embeddings);
- :mod:`behaviour.judges.ensemble`   judges that must agree (disagreement or abstention -> review);
- :mod:`behaviour.judges.judge_eval` measuring judges against the hand-labelled set (kappa, confusion, abstention);
- :mod:`behaviour.review`     export for manual review (abstentions first), import of reviewed labels, agreement;
- :mod:`behaviour.review_sample` the blind random review sample (draw, record, checked reading of a filled one);
- :mod:`behaviour.rates`      judge-only, reviewed-only and prediction-powered rates of convergence (``judged_rates``);
- :mod:`behaviour.table`      the seed-format convergence table (Wilson intervals, Fisher tests, abstentions) and its
  bar chart;
- :mod:`behaviour.inspect_task` the scenario as an Inspect task scored by our judge, and Inspect logs read back as trial
  rows (needs the ``inspect`` extra, so it is imported only where used and is not in ``__all__``).

The package exports its modules (``__all__``); import names from them, e.g. ``from behaviour.scenario import
load_scenario``.
"""

__all__ = ["backends", "embedding", "embedding_judge", "ensemble", "judge", "judge_eval", "judges", "labels",
           "llm_judge", "rates", "review", "review_sample", "rule_direction", "rule_grounds", "rule_judge", "scenario",
           "scoring", "table", "text", "trials", "verdict_text"]
