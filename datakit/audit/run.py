"""``audit_run``: read a run directory and its manifest, compute every audit number, write audit.json.

The returned dictionary is ``run_dir/audit/audit.json``; its shape is defined once, in
:mod:`datakit.audit.schema`.
"""
from __future__ import annotations

import os
import time

from datakit._core.progress import log
from datakit.audit.compute import build_audit
from datakit.audit.config import AuditConfig
from datakit.audit.inputs import load_run
from datakit.audit.schema import write_audit


def audit_run(run_dir: str | os.PathLike, config: AuditConfig | None = None) -> dict:
    """Audit one run directory; write ``run_dir/audit/audit.json`` atomically and return its dict.

    Args:
        run_dir: a run directory (config.json + generated.npz, see DESIGN.md).
        config: audit settings (defaults: :class:`AuditConfig`).
    """
    config = config or AuditConfig()
    t0 = time.perf_counter()
    run = load_run(run_dir)
    audit = build_audit(run, config)
    audit["timing"]["total_s"] = time.perf_counter() - t0
    audit = write_audit(run.run_dir / "audit" / "audit.json", audit)
    log(f"Audit written to {run.run_dir / 'audit' / 'audit.json'}")
    return audit
