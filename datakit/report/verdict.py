"""The verdict at the top of the report: the audits' own findings, and a comparison of runs.

Each run's findings are read from its audit.json as written (already sorted fail > warn >
info); the report adds no sentence of its own about a single run, so the verdict cannot
disagree with the tables. With several runs, one comparison finding comes first: runs are
ranked by Fréchet distance only when they share the judge *and* the reference real images
(and so the same floor); otherwise the finding says they are not on one scale.
"""
from __future__ import annotations

from datakit.audit.schema import SEVERITIES, Finding
from datakit.report.numbers import fmt
from datakit.report.run_data import RunData

#: Runs are said to differ by Fréchet distance when the worst is this many times the best.
FD_RATIO = 1.3


def comparable_key(run: RunData) -> tuple[str, str, int | None]:
    """Runs with equal keys were measured with one ruler: same judge, same reference, same n."""
    a = run.audit
    fd = a.summary.get("fd")
    return a.judge["manifest_checksum"], a.reference.checksum, fd.sample_size if fd else None


def _groups(runs: list[RunData], label) -> str:
    """"n = 2,500 ... (balanced_acgan, skewed_acgan); n = 500 ... (balanced_dcgan)": runs
    grouped by ``label(run)``, each group named by its arms (a study's) or its runs' labels."""
    groups: dict[str, list[str]] = {}
    for r in runs:
        name = r.arm if r.arm is not None else r.label
        names = groups.setdefault(label(r), [])
        if name not in names:
            names.append(name)
    return "; ".join(f"{k} for {', '.join(v)}" for k, v in groups.items())


def _size(run: RunData) -> str:
    """A run's sample size n and the generated images it audited (audit.json's ``run``)."""
    n, generated = comparable_key(run)[2], run.audit.run.get("generated_count")
    return f"n = {fmt(n)}" + (f" of {fmt(generated)} generated images" if generated else "")


def comparison_note(runs: list[RunData]) -> str | None:
    """Why the runs' Fréchet distances are not on one scale, in words true of these runs: which
    of judge, reference and sample size differ (None when none does). The sample size is as
    many generated images as each run audited, the number the page's introduction quotes."""
    if len({comparable_key(r) for r in runs}) <= 1:
        return None
    same_judge = len({r.audit.judge["manifest_checksum"] for r in runs}) == 1
    same_ref = len({r.audit.reference.checksum for r in runs}) == 1
    if same_judge and same_ref:
        head = "These runs were measured with one judge and one reference set of real images"
    elif same_judge:
        head = "These runs were measured with one judge but against different reference sets"
    elif same_ref:
        head = "These runs were measured against one reference set but with different judges"
    else:
        head = "These runs were measured with different judges and reference sets"
    sizes = {comparable_key(r)[2] for r in runs}
    if len(sizes) > 1:
        head += (", at different sample sizes n (the generated and held-out images each metric "
                 "is computed on): " + _groups(runs, _size))
    return head + ". Their Fréchet distances are therefore not on one scale and are not ranked."


def distance_comparison(runs: list[RunData]) -> list[Finding]:
    """With several runs: rank them by FD when comparable, else say why they cannot be ranked."""
    rows = [(r.audit.summary["fd"], r) for r in runs if "fd" in r.audit.summary]
    if len(rows) < 2:
        return []
    note = comparison_note([r for _, r in rows])
    if note is not None:
        parts = ", ".join(f"{r.label} {m.value:.2f} (floor {m.floor:.2f}, n = {m.sample_size})"
                          for m, r in rows)
        return [Finding("comparison", "info", [], f"{note} Each against its own floor: {parts}.",
                        {"runs": [r.label for _, r in rows]})]
    ranked = sorted(rows, key=lambda t: t[0].value)
    (best, rb), (worst, rw) = ranked[0], ranked[-1]
    ev = {"best": rb.label, "worst": rw.label, "best_value": best.value, "worst_value": worst.value,
          "floor": best.floor, "sample_size": best.sample_size}
    unit = (f"Fréchet distance {worst.value:.2f} vs {best.value:.2f}, floor {best.floor:.2f}, "
            f"n = {best.sample_size}, one judge and one reference")
    if best.value <= 0 or worst.value / best.value < FD_RATIO:
        return [Finding("comparison", "info", [], f"All runs are about equally far from the reference "
                        f"real images ({unit}).", ev)]
    overlap = worst.ci_low is not None and best.ci_high is not None and worst.ci_low <= best.ci_high
    return [Finding("comparison", "info" if overlap else "warn", [],
                    f"Run {rw.label} is {worst.value / best.value:.1f}× further from the reference "
                    f"real images than run {rb.label} ({unit}"
                    f"{'; their 95% intervals overlap' if overlap else ''}).", ev)]


def findings(runs: list[RunData]) -> list[Finding]:
    """The comparison of runs first (several runs), then every run's findings, fail > warn > info."""
    several = len(runs) > 1
    out = []
    for run in runs:
        for f in run.audit.findings:
            text = f"Run {run.label}: {f.sentence}" if several else f.sentence
            out.append(Finding(f.check, f.severity, f.classes, text, f.evidence))
    out.sort(key=lambda f: SEVERITIES.index(f.severity))
    return distance_comparison(runs) + out
