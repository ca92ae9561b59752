"""The per-class verdict: two questions, answered apart.

1. **How far is the run from real data?** Every per-class floor test (label fidelity,
   coverage, FD, modes covered, recall, near-duplicate pairs) says whether a class is clearly worse than held-out
   real images of it. On a trained generator that is often true of every class; it is a fact
   about the run, reported as one run-level finding per metric ("8 of 10 classes are below
   real data on recall, 55–85% against 95–97%"), while each class's numbers stay in its row.
2. **Which classes stand out?** A class whose gap to its own floor is clearly larger than its
   siblings' gaps (:mod:`datakit.audit.stats.standout`) is named, with both numbers.

The words of a class row follow from those:

- ``collapsed``: total collapse (the ``collapse`` check: diversity near zero, near-duplicate
  samples, or at most one sample), or a partial collapse that stands out (recall or modes
  covered clearly lower than the run's other classes reach, or near-duplicate pairs clearly
  more common: one style drawn over and over). Never merely "below real data" when every
  class is.
- ``failed``: the class fails outright — its share is suppressed or amplified by a factor of 2
  (already a comparison with what the class should get), or fewer than
  :data:`OUTRIGHT_LABEL_FIDELITY` of its samples are read as the class — or it is worse than
  its floor *and* stands out on that metric. ``failure_reasons`` lists which.
- ``untested``: a class with fewer than ``min_class_n`` held-out or generated images has no
  floor test that can fail; its row says so ("untested (n = 21 held-out; 30 needed)").

The verdict's first line (:func:`summary_sentence`) says both in one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datakit.audit.schema import Finding, FloorTest, Metric
from datakit.audit.stats.floors import MIN_FD_RELATIVE
from datakit.audit.stats.standout import Standout, standouts

NAME = "verdict"  # the check name of its run-level findings
#: Below this share of its samples read as the class, a class fails outright on label fidelity.
OUTRIGHT_LABEL_FIDELITY = 0.5
#: Floor tests a class can stand out on, and what standing out on them means.
STANDOUT_TESTS = ("label_fidelity", "coverage", "fd", "modes", "recall", "close_pairs")
PARTIAL_COLLAPSE_TESTS = ("modes", "recall", "close_pairs")
#: Lower-is-better floor tests: their ratio to the floor prints as a multiple ("4.2×").
MULTIPLE_TESTS = ("fd", "close_pairs")
#: Floor tests that fail a class by themselves (a share already compares the class with its due).
OUTRIGHT_TESTS = ("share",)
LABELS = {"label_fidelity": "label fidelity", "coverage": "coverage", "fd": "per-class FD",
          "modes": "modes covered", "recall": "recall", "share": "share",
          "close_pairs": "near-duplicate pairs"}


@dataclass
class ClassVerdict:
    """What the verdict decides for one class."""

    collapsed: bool
    collapse_evidence: str
    failed: bool
    failure_reasons: list[str]
    untested: str
    standout: dict[str, dict[str, Any]] = field(default_factory=dict)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _num(test: str, x: float) -> str:
    if test == "close_pairs":
        return f"{100 * x:.1f}%"
    return f"{x:.3g}" if test == "fd" else (f"{x:.0f}" if test == "modes" else _pct(x))


def _range(xs: list[float], test: str) -> str:
    lo, hi = min(xs), max(xs)
    return _num(test, lo) if _num(test, lo) == _num(test, hi) else f"{_num(test, lo)}–{_num(test, hi)}"


def untested_reason(held: int, generated: int, min_n: int) -> str:
    """"untested (n = 21 held-out; 30 needed)", or "" when both sides have ``min_n`` images."""
    short = [f"{n} {side}" for side, n in (("held-out", held), ("generated", generated)) if n < min_n]
    return f"untested (n = {'; '.join(short)}; {min_n} needed)" if short else ""


def decide(classes: list[str], tests: dict[str, dict[str, FloorTest]],
           replicates: dict[str, dict[str, np.ndarray]], total: dict[str, tuple[bool, str]],
           counts: dict[str, tuple[int, int]], min_n: int, modes_kinds: dict[str, str] | None = None
           ) -> tuple[dict[str, ClassVerdict], dict[str, dict[str, Standout]]]:
    """Each class's verdict.

    Args:
        classes: the run's classes.
        tests: class -> floor test name -> :class:`FloorTest` (audit.json's ``vs_floor``).
        replicates: floor test name -> class -> bootstrap replicates of value - floor.
        total: class -> (totally collapsed, the collapse check's evidence sentence).
        counts: class -> (held-out images, generated images).
        min_n: ``AuditConfig.min_class_n``.
        modes_kinds: class -> "modes" or "regions" (what the modes test counted; default modes).
    Returns:
        class -> :class:`ClassVerdict`, and floor test name -> class -> :class:`Standout`.
    """
    out_of: dict[str, dict[str, Standout]] = {}
    for name in STANDOUT_TESTS:
        per = {c: (t[name].value, t[name].floor, t[name].worse, replicates.get(name, {}).get(c, np.zeros(0)))
               for c, t in tests.items() if name in t}
        better = next((t[name].better for t in tests.values() if name in t), None)
        if better in ("higher", "lower"):
            out_of[name] = standouts(per, better)
    verdicts = {}
    for c in classes:
        t = tests.get(c, {})
        stands = [n for n in STANDOUT_TESTS if n in out_of and c in out_of[n] and out_of[n][c].stands_out]
        outright = [n for n in OUTRIGHT_TESTS if n in t and t[n].worse]
        lf = t.get("label_fidelity")
        if lf is not None and lf.worse and lf.value is not None and lf.value < OUTRIGHT_LABEL_FIDELITY:
            outright.append("label_fidelity")
        reasons = [n for n in (*STANDOUT_TESTS, *OUTRIGHT_TESTS) if n in stands or n in outright]
        is_total, evidence = total.get(c, (False, ""))
        partial = [n for n in PARTIAL_COLLAPSE_TESTS if n in stands]
        if partial:
            kind = (modes_kinds or {}).get(c, "modes")
            why = "; ".join(standout_sentence(c, n, t[n], out_of[n][c], kind) for n in partial)
            # the total-collapse rule's evidence reads "-> not collapsed" unless it fired: keep it
            # only then, so the evidence never contradicts the row's word
            evidence = (evidence + " " if is_total and evidence else "") + f"Class {c} stands out: {why}."
        held, generated = counts.get(c, (0, 0))
        verdicts[c] = ClassVerdict(
            collapsed=bool(is_total or partial), collapse_evidence=evidence, failed=bool(reasons),
            failure_reasons=reasons, untested=untested_reason(held, generated, min_n),
            standout={n: out_of[n][c].to_dict() for n in STANDOUT_TESTS if n in out_of and c in out_of[n]})
    return verdicts, out_of


def standout_texts(test: str, s: Standout | dict[str, Any]) -> dict[str, str]:
    """The numbers of a stand-out as the verdict and the report's table both print them: the
    class's ratio to its floor, the other classes' range, and the class over their median with
    its interval."""
    d = s.to_dict() if isinstance(s, Standout) else s
    if test in MULTIPLE_TESTS:
        ratio = (lambda x: f"{x:.1f}×")
    else:
        ratio = _pct
    low, high = ratio(d["others_low"]), ratio(d["others_high"])
    return {"ratio": ratio(d["ratio"]), "others": low if low == high else f"{low}–{high}",
            "standout": f"{d['standout']:.2g}×", "interval": f"{d['ci_low']:.2g}–{d['ci_high']:.2g}"}


def standout_sentence(c: str, test: str, t: FloorTest, s: Standout, modes_kind: str = "modes") -> str:
    """How class ``c`` stands out on ``test``, with both numbers (``modes_kind``: "regions"
    when the modes test counted k-means regions of a class without clear modes)."""
    x = standout_texts(test, s)
    if test == "fd":
        return (f"per-class FD {t.value:.3g} is {x['ratio']} its floor ({t.floor:.3g}) while the run's "
                f"other classes sit at {x['others']} theirs ({x['standout']} their median, "
                f"95% CI {x['interval']})")
    if test == "close_pairs":
        return (f"{_num(test, t.value)} of its sample pairs are near-duplicates, {x['ratio']} the share among "
                f"held-out real images ({_num(test, t.floor)}), while the run's other classes sit at "
                f"{x['others']} theirs ({x['standout']} their median, 95% CI {x['interval']})")
    what = {"recall": "its samples reach {v} of its real images",
            "coverage": "its samples cover {v} of its real images",
            "label_fidelity": "{v} of its samples are read as the class",
            "modes": "its samples cover {v} of its real modes" if modes_kind == "modes"
            else "its samples cover {v} k-means regions of its real images"}[test]
    v = f"{t.value:.0f} of {t.floor:.0f}" if test == "modes" else _pct(t.value)
    return (what.format(v=v) + f" ({x['ratio']} of what held-out real images reach) while the run's "
            f"other classes reach {x['others']} of theirs ({x['standout']} their median, "
            f"95% CI {x['interval']})")


def _missed_clause(evidence: dict[str, Any]) -> str:
    """For a ``modes`` finding: which mode (or k-means region) the samples miss, in numbers."""
    missed = evidence.get("missed") or []
    if evidence.get("test") != "modes" or not missed:
        return ""
    m = missed[0]
    what = "mode" if evidence.get("kind") == "modes" else "region (the class has no clear modes)"
    return (f"; the largest {what} they miss holds {_pct(m['real_share'])} of its real images, and "
            f"{m['got']} of its samples land there where real images would put {m['expected']:.0f}")


def findings(classes: list[str], tests: dict[str, dict[str, FloorTest]], verdicts: dict[str, ClassVerdict],
             out_of: dict[str, dict[str, Standout]], check_findings: list[Finding]) -> list[Finding]:
    """The verdict's findings from the checks' own. A check's per-class floor-test failure stays
    a ``fail`` only for a class it fails: one that stands out (its sentence then names both
    numbers, the class's and its siblings') or fails outright (the check's sentence). The
    others, below real data like their siblings, are gathered into one run-level ``warn`` per
    metric (:func:`gap_findings`)."""
    out = []
    for f in check_findings:
        test = f.evidence.get("test") if isinstance(f.evidence, dict) else None
        if not (f.severity == "fail" and test in STANDOUT_TESTS and f.classes):
            out.append(f)
            continue
        c = f.classes[0]
        s = out_of.get(test, {}).get(c)
        if s is not None and s.stands_out:
            word = "collapsed" if test in PARTIAL_COLLAPSE_TESTS else "stands out"
            sentence = f"Class {c} {word}: " + standout_sentence(
                c, test, tests[c][test], s, f.evidence.get("kind", "modes")) + \
                _missed_clause(f.evidence) + "."
            if c in verdicts and test == "label_fidelity" and tests[c][test].value < OUTRIGHT_LABEL_FIDELITY:
                sentence += " " + f.sentence
            out.append(Finding(f.check, "fail", f.classes, sentence, {**f.evidence, "standout": s.to_dict()}))
        elif c in verdicts and test in verdicts[c].failure_reasons:
            out.append(f)  # fails outright (label fidelity under half): the check's own sentence
    return out + gap_findings(classes, tests, out_of)


def gap_findings(classes: list[str], tests: dict[str, dict[str, FloorTest]],
                 out_of: dict[str, dict[str, Standout]]) -> list[Finding]:
    """One run-level ``warn`` per metric on which classes are below real data without standing
    out: how many, and the range of their values against the range of their floors."""
    out = []
    for test in STANDOUT_TESTS:
        below = [c for c in classes if test in tests.get(c, {}) and tests[c][test].worse
                 and not (c in out_of.get(test, {}) and out_of[test][c].stands_out)]
        if not below:
            continue
        tested = sum(1 for c in classes if test in tests.get(c, {}))
        values = [tests[c][test].value for c in below]
        floors_ = [tests[c][test].floor for c in below]
        if test == "fd":
            ratios = [v / fl for v, fl in zip(values, floors_) if fl]
            how = f"per-class FD {min(ratios):.1f}–{max(ratios):.1f}× the held-out floor" if ratios else "per-class FD"
        else:
            how = f"{LABELS[test]} {_range(values, test)} against {_range(floors_, test)} for held-out real images"
        every = "every class" if len(below) == tested else f"{len(below)} of {tested} classes"
        names = "" if len(below) == tested else f" ({', '.join(below[:12])}{' …' if len(below) > 12 else ''})"
        out.append(Finding(NAME, "warn", [], f"The run is below real data on {LABELS[test]} in {every}"
                           f"{names}: {how}. No class among them "
                           "stands out from the others: this is the whole generator's gap, not a class's.",
                           {"test": test, "classes": below, "tested": tested,
                            "values": values, "floors": floors_}))
    return out


def summary_sentence(summary: dict[str, Metric], verdicts: dict[str, ClassVerdict]) -> str:
    """One sentence a user can quote: how far from real data, which classes stand out, and
    which are untested."""
    parts = []
    fd = summary.get("fd")
    if fd is not None and fd.value is not None and fd.floor:
        far = fd.value > (1 + MIN_FD_RELATIVE) * fd.floor
        parts.append(f"{'Far from' if far else 'Close to'} real data (FD {fd.value:.3g} against "
                     f"{fd.floor:.3g} for held-out real images)")
    else:
        parts.append("Distance to real data not measured")
    named = [(c, v) for c, v in verdicts.items() if v.failed or v.collapsed]
    if named:
        bits = []
        for c, v in named[:8]:
            what = ("collapsed" if v.collapsed else "failed") + (
                f" ({', '.join(LABELS[r] for r in v.failure_reasons)})" if v.failure_reasons else "")
            bits.append(f"{c} {what}")
        more = f" and {len(named) - 8} more" if len(named) > 8 else ""
        parts.append(f"{len(named)} class{'es' if len(named) != 1 else ''} stand{'s' if len(named) == 1 else ''} "
                     f"out: {', '.join(bits)}{more}")
    else:
        parts.append("no class stands out")
    untested = [c for c, v in verdicts.items() if v.untested]
    if untested:
        parts.append(f"{len(untested)} class{'es' if len(untested) != 1 else ''} untested "
                     f"({', '.join(untested[:8])}{' …' if len(untested) > 8 else ''}: "
                     f"{untested_advice([verdicts[c].untested for c in untested])})")
    return "; ".join(parts) + "."


#: What gives a short side more images, named by the side :func:`untested_reason` reports.
MORE_IMAGES = {"held-out": "hold out more real images with datakit compose --holdout",
               "generated": "generate more samples with datakit train --resume --n-generate"}


def untested_advice(reasons: list[str]) -> str:
    """"too few held-out images; hold out more real images with datakit compose --holdout" for
    the untested classes' reasons (:func:`untested_reason`): which side is short, and what
    gives it more."""
    short = [side for side in MORE_IMAGES if any(f" {side}" in r for r in reasons)]
    if not short:
        return "too few images"
    return (f"too few {' and '.join(short)} images; "
            + " and ".join(MORE_IMAGES[side] for side in short))
