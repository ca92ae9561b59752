"""The audit: a judge network trained on the manifest, then sample quality, per-class mode
collapse, bias amplification, memorisation, CAS and composition links for a run directory.

Entry point: :func:`audit_run` (writes ``run_dir/audit/audit.json``).
"""
from datakit.audit.config import AuditConfig
from datakit.audit.inputs import load_run
from datakit.audit.run import audit_run
from datakit.judge.network import Judge, JudgeConfig, judge_for_manifest

__all__ = ["AuditConfig", "Judge", "JudgeConfig", "audit_run", "judge_for_manifest", "load_run"]
