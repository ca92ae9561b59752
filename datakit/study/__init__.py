"""Audit studies: declarative TOML files of arms × seeds, trained, audited and compared.

``spec`` parses a study file, ``arms`` prepares one run (manifest, settings, reference),
``executors`` runs runs (here, in processes, on Ray), ``runner`` drives a whole study
(:func:`datakit.run_study`), ``contrasts`` and ``sweep`` compare arms, ``results`` writes
study.json and the report, ``schema`` reads study.json back, typed.

The package imports none of them, so that a module may import one (the report imports
``contrasts`` and ``schema``) without loading the runner; the public names are
:func:`datakit.run_study` and :func:`datakit.load_study`.
"""
