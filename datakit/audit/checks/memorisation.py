"""Memorisation: generated samples that copy the run's own training images.

Always against the run's own training set (not a shared reference): exact pixel copies
(by hash), samples closer to a training image than training images sit to each other
(the ``memorisation_quantile`` of the training set's 1-NN distances; the floor is the same
share for held-out real images), and Meehan et al.'s data-copying test C_T (below -3:
copying), whole-set and per class.
"""
from __future__ import annotations

import numpy as np

from datakit.audit.declare import MetricSpec
from datakit.audit.registry import CheckResult, pct
from datakit.audit.schema import Finding
from datakit.audit.stats import calibration, memorisation
from datakit.judge import metrics
from datakit.judge.network import split_real
from datakit.manifest.model import pixel_sha256

NAME = "memorisation"
METRICS = (
    MetricSpec("memorised_share", "memorised share", "mem",
               "share of samples closer to a training image than real images are", better="lower",
               position=100),
    MetricSpec("ct", "C_T", "C_T", "data-copying statistic (< −3: copying, > 0: underfitting)",
               better="equal", position=110),
)
#: C_T below this: generated samples sit closer to training images than fresh real ones do.
CT_COPYING = -3.0
#: A flagged share this many points above the held-out floor (interval excluding 0) is copying.
MIN_FLAGGED_EXCESS = 0.05


def check(f, cfg) -> CheckResult:
    train, gen, dev, ce = f.train.features, f.generated.features, f.device, cfg.chunk_elems
    # real images only, reused across audits: the training set's 1-NN distances (column 0 of
    # the reference's k-NN pass when the reference is the training set) and the held-out
    # images' nearest training neighbours
    if f.train is f.reference and len(train) > f.k:
        train_nn = f.reference_neighbours[:, 0]
    else:
        train_nn = f.reuse(metrics.neighbour_distances, train, 1, device=dev, chunk_elems=ce)[:, 0]
    gen_d, gen_i = f.nearest_training()
    held = f.own_held.features
    held_d, _ = f.reuse(metrics.nearest_neighbours, train, held, device=dev, chunk_elems=ce, kind=tuple)
    flags, threshold = memorisation.flag_close_samples(gen_d, train_nn, cfg.memorisation_quantile)
    floor_flags, _ = memorisation.flag_close_samples(held_d, train_nn, cfg.memorisation_quantile)
    exact = np.array([h in f.train_sha for h in pixel_sha256(f.generated_images)])
    lo, hi = calibration.mean_interval(flags, seed=cfg.seed)
    worst = memorisation.worst_examples(gen_d, gen_i, f.train_ids, flags)
    for w in worst:
        w["generated_index"] = int(f.generated_index[w["generated_index"]])
    section = {"threshold": threshold, "quantile": cfg.memorisation_quantile,
               "flagged_count": int(flags.sum()), "flagged_share": float(flags.mean()),
               "flagged_share_ci": [lo, hi], "flagged_share_floor": float(floor_flags.mean()),
               "exact_copies": int(exact.sum()), "exact_copy_share": float(exact.mean()),
               "worst": worst,
               "ct": memorisation.data_copying_ct(train, held, gen, cells=cfg.ct_cells_whole, seed=cfg.seed),
               "per_class": []}
    table = []
    for lab, name in enumerate(f.classes):
        g = f.assigned == lab
        t, h = f.train_labels == lab, _own_held_labels(f) == lab
        ct = memorisation.data_copying_ct(train[t], held[h], gen[g], cells=cfg.ct_cells, seed=cfg.seed)
        share = float(flags[g].mean()) if g.any() else None
        table.append({"class_name": name, "memorised_share": share, "ct": ct["value"]})
        section["per_class"].append({"class_name": name, "label": lab, "ct": ct["value"],
                                     "ct_cells_used": ct["cells_used"], "flagged_count": int(flags[g].sum()),
                                     "flagged_share": share})
    return CheckResult(NAME, table, section["flagged_share"], "share of generated samples flagged as close",
                       _findings(section), sections={"memorisation": section})


def _own_held_labels(f) -> np.ndarray:
    if f.reference_info.own:
        return f.held_labels
    m = f.run.manifest
    split = split_real(m, f.judge.config.held_out_share, f.judge.config.seed)
    return m.table["label"].to_numpy(np.int64)[split.held_rows]


def _findings(s: dict) -> list[Finding]:
    out = []
    if s["exact_copies"]:
        out.append(Finding(NAME, "fail", [], f"{s['exact_copies']} generated samples "
                           f"({pct(s['exact_copy_share'])}) are exact pixel copies of training images.",
                           {"value": s["exact_copies"], "share": s["exact_copy_share"]}))
    lo, hi = s["flagged_share_ci"]
    excess = s["flagged_share"] - s["flagged_share_floor"]
    if lo is not None and lo > s["flagged_share_floor"] and excess >= MIN_FLAGGED_EXCESS:
        out.append(Finding(NAME, "fail", [], f"{pct(s['flagged_share'])} of generated samples sit closer to a "
                           "training image than training images sit to each other (held-out real images: "
                           f"{pct(s['flagged_share_floor'])}; 95% CI {pct(lo)}–{pct(hi)}): copying.",
                           {"value": s["flagged_share"], "floor": s["flagged_share_floor"],
                            "ci_low": lo, "ci_high": hi}))
    ct = s["ct"]["value"]
    if ct is not None and ct < CT_COPYING:
        out.append(Finding(NAME, "fail", [], f"Data-copying test C_T = {ct:.1f} (below {CT_COPYING:g}): "
                           "generated samples sit closer to training images than fresh real images do.",
                           {"value": ct, "floor": CT_COPYING, "cells_used": s["ct"]["cells_used"]}))
    return out
