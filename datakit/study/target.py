"""The target domain of a study: what realism is measured against.

A study's question is often about one domain: "does adding font renderings help a GAN
draw *natural-scene* digits?" Measured against a mostly-font reference, every arm's score
says how font-like its samples are, not how natural-scene-like. ``[compare] target`` names
the domain the question is about::

    [compare]
    reference = "goodimg_fnt"   # the judge: trained on both domains (it has a domain head)
    target = "wild"             # realism is measured against the reference's wild images

With ``target = "wild"`` every run is audited against the reference's natural-scene images
only (the *primary* view, the one contrasts use), and once more against each other domain
of the reference (``synthetic``: the other-domain view, reported beside it); the judge stays
the one trained on the whole reference, so both views share one feature space. Each run
also gets its *generated target share*: the share of its samples the judge's domain head
reads as the target domain (from the audit's ``domains`` section), a metric of its own
(``generated_wild_share``), contrasted like the others.

``target`` may also be a mix (``target = { wild = 0.5, synthetic = 0.5 }``): the reference is
then used whole. Either way, when the domain mix of the real images every run is measured
against differs from the target by more than :data:`TOLERANCE` in some domain, the study
gets a ``warn`` finding that says so; a study whose arms span several domains and that names
no target gets one too, since its reference's mix silently decides what "realistic" means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from datakit._core.progress import log
from datakit.audit.schema import Audit
from datakit.errors import StudyError
from datakit.manifest.model import DOMAINS

#: Largest difference between the reference's domain share and the target's (a share).
TOLERANCE = 0.05


def parse_target(value: Any, where: str) -> dict[str, float] | None:
    """``[compare] target``: a domain name, or a table of domain shares summing to 1, as
    {domain: share}; None when absent."""
    if value is None:
        return None
    example = ('target = "wild" (a domain: ' + ", ".join(DOMAINS)
               + ') or target = { wild = 0.5, synthetic = 0.5 } (shares summing to 1)')
    if isinstance(value, str):
        value = {value: 1.0}
    if not isinstance(value, dict) or not value:
        raise StudyError(f"{where} [compare]: target must be {example}; got {value!r}.")
    bad = [str(k) for k in value if k not in DOMAINS]
    if bad:
        raise StudyError(f"{where} [compare]: target names unknown domain(s) {', '.join(bad)}; "
                         f"use {', '.join(DOMAINS)}.")
    shares = value.values()
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
               for v in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
        raise StudyError(f"{where} [compare]: target shares must lie in 0..1 and sum to 1, e.g. "
                         f"{example}; got {value!r}.")
    return {str(k): float(v) for k, v in value.items() if v > 0}


def single_domain(target: dict[str, float] | None) -> str | None:
    """The target's one domain (``target = "wild"``), or None for a mix or no target."""
    if target and len(target) == 1:
        return next(iter(target))
    return None


def share_key(domain: str) -> str:
    """The summary key of a run's generated share of ``domain``: ``generated_wild_share``."""
    return f"generated_{domain}_share"


@dataclass
class View:
    """Real images a run is measured against: the reference's images of one domain."""

    name: str          # the domain
    path: Path         # its manifest (.parquet)
    checksum: str
    primary: bool      # the target's view (contrasts use it); else an other-domain view


def domain_mix(manifest) -> dict[str, float]:
    """Domain shares of a manifest's held-out ("test") images, else of all its images."""
    t = manifest.table
    held = t[t["split"] == "test"]
    rows = held if len(held) else t
    counts = rows["domain"].astype(str).value_counts()
    return {str(d): float(n / counts.sum()) for d, n in counts.items()}


def domain_views(reference_manifest, target: dict[str, float] | None, make) -> list[View]:
    """The views of a study with ``target = "DOMAIN"``: that domain's images of the reference
    (primary), then each other domain's. ``make(domain)`` returns the reference's manifest of
    one domain (composed once, reused). Empty for a mix or no target."""
    domain = single_domain(target)
    if domain is None:
        return []
    present = sorted(set(reference_manifest.table["domain"].astype(str)))
    if domain not in present:
        raise StudyError(f"[compare] target = {domain!r}, but the reference "
                         f"{Path(reference_manifest.path).name} has no {domain} images (its "
                         f"domains: {', '.join(present)}); choose a reference with {domain} "
                         "images (e.g. reference = \"union\") or another target.")
    views = []
    for d in [domain] + [x for x in present if x != domain]:
        m = make(d)
        views.append(View(d, Path(m.path), m.checksum, d == domain))
    return views


def mix_findings(target: dict[str, float] | None, measured: dict[str, float],
                 arm_domains: Sequence[str]) -> list[dict[str, Any]]:
    """A ``warn`` when the real images every run is measured against (``measured``: their
    domain shares) differ from the target by more than :data:`TOLERANCE` in some domain; or,
    without a target, when the arms span several domains."""
    mix = ", ".join(f"{pct(s)} {d}" for d, s in sorted(measured.items(), key=lambda t: -t[1]))
    if target is None:
        if len(set(arm_domains)) < 2:
            return []
        return [{"check": "target", "severity": "warn", "classes": [],
                 "sentence": f"The arms train on several domains ({', '.join(sorted(set(arm_domains)))}) "
                             f"but the study names no target domain, so realism is measured "
                             f"against the reference's held-out mix ({mix}) and a contrast partly says "
                             "which arm draws more like that mix. Name the domain the question "
                             "is about in [compare] target (e.g. target = \"wild\").",
                 "evidence": {"target": None, "measured": measured}}]
    domains = list(target) + sorted(d for d in measured if d not in target)  # the target's first
    gaps = {d: measured.get(d, 0.0) - target.get(d, 0.0) for d in domains}
    worst = max(domains, key=lambda d: abs(gaps[d]))  # ties: the target's own domain
    if abs(gaps[worst]) <= TOLERANCE:
        return []
    want = ", ".join(f"{pct(s)} {d}" for d, s in sorted(target.items(), key=lambda t: -t[1]))
    return [{"check": "target", "severity": "warn", "classes": [],
             "sentence": f"The reference's held-out real images are {mix}, but the study's "
                         f"target is {want}: their {worst} share is "
                         f"{pct(measured.get(worst, 0.0))} against the target's "
                         f"{pct(target.get(worst, 0.0))} ({abs(gaps[worst]) * 100:.1f} points "
                         f"apart, more than {TOLERANCE * 100:.0f}), so every distance partly "
                         "measures the reference's mix rather than the target.",
             "evidence": {"target": target, "measured": measured, "largest_gap": gaps[worst],
                          "domain": worst}}]


def pct(share: float) -> str:
    """A share as the page prints it (one decimal)."""
    return f"{100 * share:.1f}%"


def generated_share(audit: Audit, domain: str) -> dict[str, Any] | None:
    """A run's generated share of ``domain`` as the judge's domain head reads it, in the
    shape of a summary metric (value, floor = the run's training share, a Wilson 95% interval
    over its generated samples); None when the audit has no domain reading."""
    section = audit.domains or {}
    row = next((r for r in section.get("rows") or [] if r.get("name") == domain), None)
    n = section.get("generated_count")
    if row is None or not n:
        return None
    p = float(row["generated_share"])
    lo, hi = wilson(p, int(n))
    return {"value": p, "floor": row.get("train_share"), "ci_low": lo, "ci_high": hi,
            "better": "higher", "ideal": 1.0, "sample_size": int(n), "fd_infinity": None}


def wilson(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a share ``p`` of ``n`` draws (always inside [0, 1])."""
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def view_folder(run_dir: Path, view: str) -> Path:
    """Where a run's audit against one other-domain view is written."""
    return Path(run_dir) / "audit" / "views" / view


def audit_view(run_dir: Path, view: str, config) -> Audit:
    """Audit ``run_dir`` against one view's real images (``config.reference_manifest``),
    into ``RUN/audit/views/VIEW/audit.json``; an audit there made with the same settings and
    newer than the run's samples is reused."""
    from datakit.audit.compute import build_audit
    from datakit.audit.inputs import load_run
    from datakit.audit.many import _same_settings
    from datakit.audit.schema import AuditSchemaError, read_audit, write_audit
    path = view_folder(run_dir, view) / "audit.json"
    generated = Path(run_dir) / "generated.npz"
    if path.exists() and generated.exists() and path.stat().st_mtime >= generated.stat().st_mtime:
        try:
            previous = read_audit(path)
        except AuditSchemaError:
            previous = None
        if previous is not None and _same_settings(previous.config, config):
            log(f"Reusing {path}")
            return previous
    log(f"Auditing {run_dir} against the {view} view ...")
    return Audit.from_dict(write_audit(path, build_audit(load_run(run_dir), config)), str(path))
