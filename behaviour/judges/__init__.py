"""The judges: everything that turns a response into a convergence label, and measures how well it does.

Map (each module one concern; :mod:`behaviour.judge` gathers the public names):

- :mod:`~behaviour.judges.labels`         the label set and definitions, :class:`Judgement`, the ``Judge`` protocol;
- :mod:`~behaviour.judges.verdict_text`   finding the verdict text every judge reads (deliberation dropped);
- :mod:`~behaviour.judges.text`           sentence, paragraph, clause and negation helpers the rule cues share;
- :mod:`~behaviour.judges.decision_region` where a response states its decision by structure (decision keys in JSON,
  YAML, TOML, XML, tables and logs; ticked boxes), read by the verdict finder and embedded by the learned judge;
- :mod:`~behaviour.judges.rule_direction` rule cues for a verdict's direction (refusal, against, proceed, hedge);
- :mod:`~behaviour.judges.rule_grounds`   rule cues for its grounds (interests vs operations) and the framing shift;
- :mod:`~behaviour.judges.rule_judge`     the offline rule judge;
- :mod:`~behaviour.judges.embedding`      the offline sentence encoders (mpnet, MiniLM: PyPI wheels);
- :mod:`~behaviour.judges.embedding_judge` the learned judge (encoder features + a classifier on the labelled set,
  calibrated on authors it never saw);
- :mod:`~behaviour.judges.llm_judge`      a model-graded judge behind any completion backend;
- :mod:`~behaviour.judges.ensemble`       ensembles (all agree) and cascades (first label decides);
- :mod:`~behaviour.judges.factory`        ``--judge`` spec strings to judges;
- :mod:`~behaviour.judges.labelled_set`   the hand-labelled set: loading, checking, splits, hashes;
- :mod:`~behaviour.judges.judge_eval`     measuring a judge against the labelled set (agreement, cross-validation).
- :mod:`~behaviour.judges.scoring`      scoring a trial row: the one path every judged row in the toolkit goes through;
"""
