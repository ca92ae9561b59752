"""study.json, read: one typed record the report renders (the study layer writes the object,
:func:`datakit.study.results.write_study_outputs`; this module reads it back, with no other
spelling)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from datakit._core.typecheck import key_mismatch
from datakit.audit.schema import Finding
from datakit.errors import StudyError


@dataclass(frozen=True)
class StudyResults:
    """A study's results, as study.json holds them: one field per top-level key.

    ``findings`` are typed (:class:`datakit.audit.schema.Finding`); contrasts, arms, the
    curve, the budget, the reference and the runs are the objects study.json holds (their
    keys are documented in docs/studies.md). ``jobs`` and ``threads_per_run`` are None for a
    study run in this process without an executor plan; ``class_groups`` is None for a study
    without ``[compare] class_groups`` (and in study.json files written before it).
    """

    study: str
    title: str | None
    file: str | None
    executor: str
    jobs: int | None
    threads_per_run: int | None
    seeds: list[int]
    budget: dict[str, Any]
    reference: dict[str, Any]
    verdict: list[str]
    findings: list[Finding]
    contrasts: list[dict[str, Any]]
    arms: list[dict[str, Any]]
    curve: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    class_groups: dict[str, list[str]] | None = None  # [compare] class_groups (older files: none)

    @classmethod
    def from_dict(cls, data: Any, where: str = "study.json") -> "StudyResults":
        """study.json's object, checked for exactly these keys and typed."""
        if not isinstance(data, dict):
            raise StudyError(f"{where} should hold an object, got {type(data).__name__}.")
        names = [f.name for f in fields(cls)]
        optional = {"jobs", "threads_per_run", "class_groups"}
        mismatch = key_mismatch(data, [k for k in names if k not in optional], names)
        if mismatch:
            raise StudyError(f"{where} does not have the shape of a study's results{mismatch}; "
                             "re-run `datakit study` to rewrite it.")
        return cls(**{**{k: None for k in optional}, **data,
                      "findings": [Finding(**f) for f in data["findings"]]})
