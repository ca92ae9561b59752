"""Classification accuracy score (CAS): a classifier trained on generated samples, tested on
held-out real images; its floor is the judge's accuracy (the same network trained on real)."""
from __future__ import annotations

from datakit.audit.declare import MetricSpec
from datakit.audit.registry import CheckResult
from datakit.audit.stats.cas import classification_accuracy_score
from datakit.judge.network import JudgeConfig

NAME = "cas"
METRICS = (
    MetricSpec("cas_accuracy", "CAS", "CAS", "accuracy on real images of a classifier trained on samples",
               better="higher", position=120),
)


def check(f, cfg) -> CheckResult:
    if not cfg.cas:
        return CheckResult(NAME, None, None, "CAS accuracy", [], sections={"cas": None})
    cas_cfg = JudgeConfig(**{**f.judge.config.__dict__, "epochs": cfg.cas_epochs})
    cas = classification_accuracy_score(
        f.generated_images, f.assigned, f.reference_manifest.images(f.held_store_rows), f.held_labels,
        f.classes,
        config=cas_cfg, label_source="conditioning labels" if f.conditional else "judge predictions")
    cas["floor"] = f.results["judge"].score if "judge" in f.results else None
    table = [{"class_name": c, "cas_accuracy": cas["per_class"].get(c)} for c in f.classes]
    return CheckResult(NAME, table, cas["accuracy"], "CAS accuracy", [], sections={"cas": cas})
