"""Multi-step jobs that join the packages below (activations, behaviour, probes, interventions) into experiments.

Each job takes a typed config and a :class:`common.rundir.RunDir` and writes its artefacts there; the modules in
:mod:`experiments` above only parse arguments and call one job.
"""
