"""Partial collapse: a class's generated samples reach only some of its real modes.

Modes come from the class's real (reference) features (:mod:`datakit.audit.modes`: k-means,
k by silhouette; a class without clear modes, silhouette < 0.25, is cut into 5 k-means
regions instead). Generated and held-out samples of the class are counted per mode (or
region) at the same n; the floor is the held-out count. A class is collapsed when the
bootstrap interval of the difference lies wholly at or below -1 (clearly at least one
mode fewer; :func:`datakit.audit.floors.is_worse`): "covers 2 of 5 real modes", or "of
5 regions of its real images" when the class has no clear modes.
"""
from __future__ import annotations

from datakit.audit import floors
from datakit.audit.checks import CheckResult
from datakit.audit.modes import MIN_SILHOUETTE, assign_modes, fit_modes, modes_covered
from datakit.audit.schema import Finding

NAME = "modes"


def check(f, cfg) -> CheckResult:
    table, findings, reps = [], [], {}
    for lab, name in enumerate(f.classes):
        model = fit_modes(f.reference.features[f.reference_labels == lab], seed=cfg.seed)
        row = {"class_name": name, "modes_real": model.k if model else None, "modes_covered": None,
               "modes_covered_floor": None, "vs_floor": {}}
        table.append(row)
        if model is None:
            continue
        g = assign_modes(model, f.generated.features[f.assigned == lab])
        h = assign_modes(model, f.held.features[f.held_labels == lab])
        test, r = floors.floor_test(lambda i: modes_covered(model, g[i]), lambda i: modes_covered(model, h[i]),
                                    len(g), len(h), better="higher", min_effect=floors.MIN_MODES,
                                    replicates=cfg.bootstrap, seed=cfg.seed + lab, min_class_n=cfg.min_class_n, min_n=1)
        if test is None:
            continue
        row.update(modes_covered=int(test.value), modes_covered_floor=int(test.floor))
        reps[name] = r
        if model.k < 2:
            continue  # one mode: nothing to collapse partially (total collapse is `collapse`)
        row["vs_floor"][NAME] = test
        if test.worse:
            sil = f"{model.silhouette:.2f}" if model.silhouette is not None else "–"
            what = "real modes" if model.kind == "modes" else \
                "k-means regions of its real images (no clear modes: silhouette below 0.25)"
            evidence = (f"covers {int(test.value)} of {model.k} {what} (held-out real images "
                        f"cover {int(test.floor)}, both at n = {test.sample_size})")
            row["_modes_evidence"] = f"class {name}: {evidence}."
            findings.append(Finding(NAME, "fail", [name], f"Class {name} collapsed partially: {evidence}; "
                                    f"95% CI of the difference {test.ci_low:+.0f} to {test.ci_high:+.0f} "
                                    f"{'modes' if model.kind == 'modes' else 'regions'}.",
                                    {"value": test.value, "floor": test.floor, "modes_real": model.k,
                                     "silhouette": model.silhouette, "min_silhouette": MIN_SILHOUETTE,
                                     "ci_low": test.ci_low, "ci_high": test.ci_high,
                                     "sample_size": test.sample_size, "kind": model.kind,
                                     "k_chosen_by": "silhouette, k = 2..8" if model.kind == "modes"
                                     else "no k with silhouette >= 0.25: 5 k-means regions",
                                     "silhouette_text": sil}))
    n = sum(1 for r in table if r.get("_modes_evidence"))
    return CheckResult(NAME, table, float(n), "classes partially collapsed", findings, replicates={NAME: reps})
