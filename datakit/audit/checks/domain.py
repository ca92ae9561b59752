"""Domain drift: in a manifest that mixes domains (wild / synthetic / handwritten), does the
model drift towards one? The judge's domain head reads each generated sample; generated
domain shares are compared with training shares by relative change (as class shares are),
and the whole-set metrics are computed against each part (subset, domain) of the reference.
"""
from __future__ import annotations

import numpy as np

from datakit.audit.registry import CheckResult, pct
from datakit.audit.schema import Finding
from datakit.audit.stats import amplification, floors, links
from datakit.judge.network import split_real

NAME = "domain"
#: A domain drifts when its generated share is this many times its training share (or 1/this).
DRIFT_FACTOR = 1.25


def check(f, cfg) -> CheckResult:
    domain_names = f.judge.domains
    table = f.run.manifest.table
    run_domains = set(table["domain"].astype(str))
    section: dict | None = None
    findings = []
    if len(domain_names) > 1 and f.generated.domain_logits is not None and run_domains <= set(domain_names):
        split = split_real(f.run.manifest, cfg.judge.held_out_share, cfg.judge.seed)
        codes = np.searchsorted(domain_names, table["domain"].astype(str).to_numpy())
        section = amplification.share_table(domain_names, codes[split.train_rows],
                                            f.generated.predicted_domain, "judge predictions")
        for r in section["rows"]:
            t, g = r["train_share"], r["generated_share"]
            if t <= 0:
                continue
            test, _ = floors.share_test(f.generated.predicted_domain, r["code"], t,
                                        replicates=cfg.bootstrap, seed=cfg.seed)
            r["ci_low"], r["ci_high"] = 1 + test.ci_low, 1 + test.ci_high
            drift = (test.ci_low > 0 and test.value >= DRIFT_FACTOR) or \
                (test.ci_high < 0 and test.value <= 1 / DRIFT_FACTOR)
            if drift and g > t:
                findings.append(Finding(NAME, "warn", [],
                                        f"Generated images drift towards the {r['name']} domain: {pct(t)} "
                                        f"of training images, {pct(g)} of generated ones (×{test.value:.2f}, "
                                        f"95% CI ×{r['ci_low']:.2f} to ×{r['ci_high']:.2f}).",
                                        {"value": g, "floor": t, "ratio": test.value,
                                         "ci_low": r["ci_low"], "ci_high": r["ci_high"]}))
    parts = []
    t = f.run.manifest.table
    # parts of the run's own training sample (the train embedding), by row id
    for column in ("subset", "domain"):
        part_of = dict(zip(t["id"].astype(str), t[column].astype(str)))
        p = np.array([part_of[i] for i in f.train_ids])
        if len(set(p)) > 1:
            gen_share = {r["name"]: r["generated_share"] for r in section["rows"]} \
                if section and column == "domain" else None
            parts += links.metrics_per_part(p, f.train.features, f.generated.features, column=column,
                                            k=cfg.k, device=f.device, generated_share=gen_share)
    out = {**section, "parts": parts} if section else ({"parts": parts} if parts else None)
    score = section["divergence"]["tv"] if section else None
    return CheckResult(NAME, None, score, "total variation, generated vs training domain shares",
                       findings, sections={"domains": out})
