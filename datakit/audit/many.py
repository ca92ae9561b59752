"""Audit several runs, reusing an audit.json made with the same settings (``datakit audit``,
the study executor and the report all call this)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from datakit._core.progress import log
from datakit.audit.config import AuditConfig
from datakit.audit.run import audit_run
from datakit.audit.schema import Audit, AuditSchemaError, read_audit
from datakit.errors import RunDirError


def _same_settings(recorded: dict[str, Any] | None, config: Any) -> bool:
    """Whether an audit.json's recorded settings are those of ``config`` (None: defaults)."""
    wanted = json.loads(json.dumps((config or AuditConfig()).to_dict(), default=str))
    return recorded == wanted


def audit_runs(run_dirs: Sequence[str | os.PathLike], config: Any = None,
               reuse: bool = False) -> list[Audit]:
    """Audit every run (``datakit.audit.audit_run``); returns the audits, read, in order.

    With ``reuse``, keep an existing ``audit/audit.json`` that is newer than the run's
    ``generated.npz`` and was made with the same settings, instead of recomputing it.
    """
    if not run_dirs:
        raise RunDirError("No run directory given. Pass one or more folders written by `datakit train`.")
    audits = []
    for d in run_dirs:
        d = Path(d)
        if not d.is_dir():
            raise RunDirError(f"Run directory {d} does not exist. Pass a folder written by "
                              "`datakit train`.")
        existing = d / "audit" / "audit.json"
        generated = d / "generated.npz"
        if reuse and existing.exists() and generated.exists() \
                and existing.stat().st_mtime >= generated.stat().st_mtime:
            try:
                previous: Audit | None = read_audit(existing)
            except AuditSchemaError:  # an older schema: audit again
                previous = None
            if previous is not None and _same_settings(previous.config, config):
                log(f"Reusing {existing}")
                audits.append(previous)
                continue
        log(f"Auditing {d} ...")
        audits.append(Audit.from_dict(audit_run(d, config), str(d / "audit" / "audit.json")))
    return audits
