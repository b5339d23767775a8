"""Multi-step jobs that join the packages below (activations, behaviour, probes, interventions) into experiments.

Each job takes typed settings and writes its artefacts to a :class:`common.rundir.RunDir`; the modules in
:mod:`experiments` above only parse arguments and call one job (this package never imports them).

- :mod:`experiments.jobs.probe_config`  the probe job's settings (``ProbeConfig``) and their cheap validation;
- :mod:`experiments.jobs.probe`         concept data -> activations -> sweeps with controls -> directions -> report;
- :mod:`experiments.jobs.projection`    scenario prompts and trial answers projected on the selected directions;
- :mod:`experiments.jobs.evaluate`      saved directions and the bag-of-words baseline on an outside labelled file;
- :mod:`experiments.jobs.from_run`      a saved probe run's directions scored on an outside file, no retraining;
- :mod:`experiments.jobs.probe_report`  the probe job's ``report.md``;
- :mod:`experiments.jobs.backends`      the local-model backend (``LocalBackend``) and judges run on a local model;
- :mod:`experiments.jobs.choice_judge`  the constrained LLM judge's model side: answer tokens, one forward pass each;
- :mod:`experiments.jobs.trials`        the trials job: backend, judge, resumable run, table, review file, report;
- :mod:`experiments.jobs.score`         resumable scoring of a JSONL file, reviews, table and report;
- :mod:`experiments.jobs.smoke`         one greedy reply of a model to one scenario condition;
- :mod:`experiments.jobs.study`         the study: a hub over the jobs above, trials to mechanism, resumable, with
  its config (``study_config``), pair rule (``study_pairs``), plan (``study_plan``), verdict rules
  (``study_verdicts``) and report (``study_report``).
"""

__all__ = ["backends", "choice_judge", "evaluate", "from_run", "probe", "probe_config", "probe_report", "projection",
           "score", "smoke", "study", "trials"]
