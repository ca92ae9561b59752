"""Quality against real images: whole-set metrics and per-class FD and coverage vs their floors.

Whole set: FD, KID, precision, recall, density, coverage (and label fidelity for
conditional runs) of the generated samples against the reference, each beside the same
metric of held-out real images. Every size-dependent metric is computed on the same
number n of generated and held-out images (n = the smaller set), so value and floor, and
runs audited against the same reference, compare like with like.

Per class: the class's FD and coverage against its training images, generated vs
held-out real images of the class at the same n, decided by an interval
(:mod:`datakit.audit.stats.floors`: bootstrap for FD; for coverage, the hull of the bootstrap
and Newcombe's interval). A class with fewer than ``floors.MIN_CLASS_N`` generated or
held-out images is not tested against its floors; an ``info`` finding says so.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from datakit.audit import reuse
from datakit.audit.declare import MetricSpec
from datakit.audit.registry import CheckResult, pct
from datakit.audit.schema import Finding, Metric
from datakit.audit.stats import calibration, floors
from datakit.judge import metrics

NAME = "quality"
METRICS = (
    MetricSpec("fd", "FD", "FD", "per-class Fréchet distance in judge features (lower is better)",
               better="lower", failure_reason="fd", floor_key="fd_floor", heatmap="over_floor",
               position=40, reason_position=30),
    MetricSpec("coverage", "coverage", "cov", "coverage: share of real images with a generated sample nearby",
               better="higher", failure_reason="coverage", floor_key="coverage_floor", heatmap="value",
               position=50, reason_position=20),
)


def _summary(f, cfg, rng) -> dict[str, Metric]:
    ref, k, dev, ce = f.reference.features, cfg.k, f.device, cfg.chunk_elems
    g_idx, h_idx = floors.matched_indices(len(f.generated), len(f.held), rng)
    gen, held = f.generated.features[g_idx], f.held.features[h_idx]
    n = len(g_idx)
    out: dict[str, Metric] = {}
    if n >= 2:
        # ci_low/ci_high: FD's spread at this n; fd_infinity: the bias-corrected estimate
        # (20 bootstrap replicates at most: each refits 8 subset FDs)
        out["fd"] = Metric(metrics.fd(ref, gen), metrics.fd(ref, held),
                           *calibration.fd_interval(ref, gen, cfg.bootstrap, cfg.seed), "lower", 0.0, n,
                           calibration.fd_infinity(ref, f.generated.features, min(cfg.bootstrap, 20), cfg.seed))
        kid_args = dict(subset_size=cfg.kid_subset_size, subsets=cfg.kid_subsets, seed=cfg.seed, device=dev)
        kid, kid_floor = metrics.kid(ref, gen, **kid_args), f.reuse(metrics.kid, ref, held, kind=dict, **kid_args)
        if kid["subset_shrunk"]:
            f.warnings.append(f"KID used subsets of {kid['subset_size']} images, fewer than the "
                              f"{kid['requested_subset_size']} asked for (a set is that small); its "
                              "interval is wider and not comparable with KID at the full subset size.")
        out["kid"] = Metric(kid["value"], kid_floor["value"], kid["p025"], kid["p975"], "lower", 0.0, n)
    if n > k:
        radii = f.reference_radii
        rel = metrics.neighbour_relations(ref, gen, k=k, real_radii=radii, device=dev, chunk_elems=ce)
        f.generated_relations = (g_idx, rel)   # memorisation reads the nearest reference images
        rel_h = f.reuse(metrics.neighbour_relations, ref, held, k=k, real_radii=radii, device=dev, chunk_elems=ce,
                         kind=metrics.NeighbourRelations)
        q, q_h = metrics.prdc_from_relations(rel), metrics.prdc_from_relations(rel_h)
        cis = {"precision": calibration.mean_interval(rel.fake_in_real_balls > 0, seed=cfg.seed),
               "recall": calibration.mean_interval(rel.real_in_fake_ball, seed=cfg.seed),
               "density": calibration.mean_interval(rel.fake_in_real_balls, seed=cfg.seed, scale=k),
               "coverage": calibration.mean_interval(rel.real_nn_fake_distance <= rel.real_radii,
                                                     seed=cfg.seed)}
        for name, ci in cis.items():
            out[name] = Metric(q[name], q_h[name], *ci, "higher", 1.0, n)
    if f.conditional:
        ok = (f.generated_pred == f.generated_labels).astype(float)
        held_ok = (f.held_pred == f.held_labels).astype(float)
        out["label_fidelity"] = Metric(float(ok.mean()), float(held_ok.mean()) if len(held_ok) else None,
                                       *calibration.mean_interval(ok, seed=cfg.seed), "higher", 1.0, len(ok))
    return out


def _class_tests(f, cfg, lab: int):
    ref = f.reference.features[f.reference_labels == lab]
    gen = f.generated.features[f.assigned == lab]
    held = f.held.features[f.held_labels == lab]
    common = dict(replicates=cfg.bootstrap, seed=cfg.seed + lab, min_class_n=cfg.min_class_n)
    ref_stats = metrics.gaussian_stats(ref) if len(ref) >= 2 else None   # once, not per replicate
    fd_test, fd_reps = floors.floor_test(
        lambda i: metrics.frechet_distance(*ref_stats, *metrics.gaussian_stats(gen[i])),
        lambda i: metrics.frechet_distance(*ref_stats, *metrics.gaussian_stats(held[i])), len(gen), len(held),
        better="lower", min_effect=lambda floor: floors.MIN_FD_RELATIVE * floor, min_n=5,
        held_memo=f.reuse.held("fd", reuse.sources(_class_tests, metrics.frechet_distance, metrics.gaussian_stats),
                              ref, held), **common) \
        if len(ref) >= 2 else (None, np.zeros(0))
    cov_test, cov_reps = None, np.zeros(0)
    kk = min(cfg.k, len(ref) - 1)
    if kk >= 1 and len(gen) and len(held):
        radii = f.reuse(metrics.neighbour_distances, ref, kk)[:, kk - 1]
        # one class: small sets, so the full real × sample distance matrices are cheap
        d_gen, d_held = cdist(ref, gen), cdist(ref, held)
        cov_test, cov_reps = floors.floor_test(
            lambda i: float((d_gen[:, i].min(1) <= radii).mean()),
            lambda i: float((d_held[:, i].min(1) <= radii).mean()), len(gen), len(held),
            better="higher", min_effect=floors.MIN_POINTS, min_n=1, proportion_of=(len(ref), len(ref)),
            hull=True, held_memo=f.reuse.held("coverage", reuse.sources(_class_tests), ref, held, kk), **common)
    return fd_test, fd_reps, cov_test, cov_reps


def check(f, cfg) -> CheckResult:
    rng = np.random.default_rng(cfg.seed)
    summary = _summary(f, cfg, rng)
    table, findings, reps = [], [], {"fd": {}, "coverage": {}}
    too_few: dict[str, dict[str, int]] = {"held-out": {}, "generated": {}}
    for lab, name in enumerate(f.classes):
        fd_test, fd_reps, cov_test, cov_reps = _class_tests(f, cfg, lab)
        row = {"class_name": name, "fd": None, "fd_floor": None, "coverage": None,
               "coverage_floor": None, "vs_floor": {}}
        for key, test, r in (("fd", fd_test, fd_reps), ("coverage", cov_test, cov_reps)):
            if test is None:
                continue
            row[key], row[f"{key}_floor"] = test.value, test.floor
            row["vs_floor"][key] = test
            reps[key][name] = r
            if test.worse:
                findings.append(_finding(key, name, test))
        table.append(row)
        for side, n in (("held-out", int((f.held_labels == lab).sum())),
                        ("generated", int((f.assigned == lab).sum()))):
            if 0 < n < cfg.min_class_n:
                too_few[side][name] = n
    findings += [_too_few(side, counts, cfg.min_class_n) for side, counts in too_few.items() if counts]
    fd = summary.get("fd")
    if fd is not None:
        inf = fd.fd_infinity or {}
        at_inf = (f"; FD∞ (bias-corrected, every sample) {inf['value']:.2f}, 95% CI "
                  f"{inf['ci_low']:.2f}–{inf['ci_high']:.2f}") if inf.get("value") is not None \
            and inf.get("ci_low") is not None else ""
        findings.append(Finding(NAME, "info", [],
                                f"Fréchet distance {fd.value:.2f} (its spread at this n: {fd.ci_low:.2f}–"
                                f"{fd.ci_high:.2f}) against {fd.floor:.2f} for held-out real images, both at "
                                f"n = {fd.sample_size} against the same reference{at_inf}.",
                                {"value": fd.value, "floor": fd.floor, "ci_low": fd.ci_low,
                                 "ci_high": fd.ci_high, "sample_size": fd.sample_size,
                                 "interval": "spread at this n", "fd_infinity": inf.get("value"),
                                 "fd_infinity_ci_low": inf.get("ci_low"),
                                 "fd_infinity_ci_high": inf.get("ci_high")}))
    return CheckResult(NAME, table, fd.value if fd else None, "Fréchet distance at n = floor size",
                       findings, sections={"summary": summary}, replicates=reps)


def _too_few(side: str, counts: dict[str, int], min_n: int) -> Finding:
    """One ``info`` finding for the classes with too few ``side`` images to be failed against
    their floors (``counts``: class -> images)."""
    if len(counts) == 1:
        (name, n), = counts.items()
        sentence = (f"Too few {side} images of class {name} (n = {n}) to test it against its "
                    f"floor (at least {min_n} are needed); it is not failed on label fidelity, "
                    "coverage, FD or modes.")
    else:
        listed = ", ".join(f"{name} (n = {n})" for name, n in counts.items())
        sentence = (f"Too few {side} images of {len(counts)} classes, {listed}, to test them against "
                    f"their floors (at least {min_n} each are needed); they are not failed on label "
                    "fidelity, coverage, FD or modes.")
    return Finding(NAME, "info", list(counts), sentence,
                   {"per_class": dict(counts), "floor": min_n, "side": side})


def _finding(key: str, name: str, test) -> Finding:
    ev = {"test": key, "value": test.value, "floor": test.floor, "difference": test.difference, "ci_low": test.ci_low,
          "ci_high": test.ci_high, "sample_size": test.sample_size, "min_effect": test.min_effect}
    if key == "fd":
        return Finding(NAME, "fail", [name],
                       f"Class {name} is far from its real images: per-class Fréchet distance "
                       f"{test.value:.1f} against {test.floor:.1f} for held-out real images "
                       f"({test.value / test.floor:.1f}×; difference 95% CI {test.ci_low:+.1f} to "
                       f"{test.ci_high:+.1f}, n = {test.sample_size} each).", ev) \
            if test.floor else Finding(NAME, "fail", [name], f"Class {name}: per-class Fréchet "
                                       f"distance {test.value:.1f} against a floor of 0.", ev)
    return Finding(NAME, "fail", [name],
                   f"Class {name} covers too little of its real images: coverage {pct(test.value)} "
                   f"against {pct(test.floor)} for held-out real images (difference "
                   f"{100 * test.difference:+.0f} points, 95% CI {100 * test.ci_low:+.0f} to "
                   f"{100 * test.ci_high:+.0f}, n = {test.sample_size} each).", ev)
