"""Command-line entry points (``python -m experiments.<name>``): argument parsing and one call into a job.

The top layer: it may import everything below; nothing imports it. The work itself is in :mod:`experiments.jobs`
(which never imports these modules).

- :mod:`experiments.cli`     shared pieces: model arguments, loading from them, errors as one clear line;
- :mod:`experiments.probe`   the probe job (:mod:`experiments.jobs.probe`);
- :mod:`experiments.trials`  behavioural trials (:mod:`experiments.jobs.trials`);
- :mod:`experiments.score`   scoring responses with a judge (:mod:`experiments.jobs.score`);
- :mod:`experiments.review`  export for manual review, import and agreement;
- :mod:`experiments.smoke`   a first end-to-end check of a model (:mod:`experiments.jobs.smoke`);
- :mod:`experiments.models`  the model registry as a table;
- :mod:`experiments.study`   the whole study in one command (:mod:`experiments.jobs.study`).
"""

__all__ = ["cli", "jobs", "models", "probe", "review", "score", "smoke", "study", "trials"]
