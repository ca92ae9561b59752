"""Audit studies: declarative TOML files of arms × seeds, trained, audited and compared.

``spec`` parses a study file, ``arms`` prepares one run (manifest, settings, reference),
``executors`` runs runs (here, in processes, on Ray), ``runner`` drives a whole study,
``contrasts`` and ``sweep`` compare arms, ``results`` writes study.json and the report.
"""
from datakit.study.runner import StudyResult, run_study
from datakit.study.spec import Study, load_study, parse_study

__all__ = ["Study", "StudyResult", "load_study", "parse_study", "run_study"]
