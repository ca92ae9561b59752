"""Fake run directories and audit dictionaries for the report tests.

They follow the run-directory contract of DESIGN.md (config.json, metrics.csv, samples/,
training.gif, generated.npz) without training anything, so the report can be tested on
its own. ``fake_audit`` returns an audit (:class:`datakit.audit.schema.Audit`) of the one
shape the audit writes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from datakit.report.inline import image_grid


def make_run(run_dir: Path, manifest, *, conditional: bool = True, steps: int = 40,
             per_class: int = 6, seed: int = 0, strokes_like: bool = False) -> Path:
    """Write a run directory that looks like the trainer's output for ``manifest``."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = list(manifest.vocabulary)
    g = manifest.geometry
    config = {"manifest": str(Path(manifest.path).resolve()), "manifest_checksum": manifest.checksum,
              "model": "acgan" if conditional else "dcgan", "conditional": conditional,
              "label_dist": "uniform", "num_classes": len(names), "class_names": names,
              "image_size": g.height, "channels": g.channels, "seed": seed, "steps": steps,
              "batch_size": 8, "device": "cpu", "augment": None, "ema": False,
              "versions": {"datakit": "test"}}
    (run_dir / "config.json").write_text(json.dumps(config))
    logged = np.arange(0, steps + 1, 10)
    pd.DataFrame({"step": logged, "epoch": logged // 20, "loss_d": 1.4 - logged / 100,
                  "loss_g": 0.7 + logged / 100, "d_real": 0.6, "d_fake": 0.4,
                  "acc_real": np.linspace(0.9, 0.6, len(logged)),
                  "acc_fake": np.linspace(0.95, 0.55, len(logged)),
                  "acc_aux": np.linspace(0.1, 0.8, len(logged)) if conditional else np.nan,
                  "images_per_s": 500.0}).to_csv(run_dir / "metrics.csv", index=False)
    (run_dir / "samples").mkdir(exist_ok=True)
    frames = []
    for s in logged:  # as the trainer writes them: one row of 8 samples per class, 1 px apart
        cells = rng.integers(0, 256, (8 * len(names), *g.shape), dtype=np.uint8)
        im = Image.fromarray(image_grid(cells, 8).squeeze(-1) if g.channels == 1 else image_grid(cells, 8))
        im.save(run_dir / "samples" / f"step_{s:06d}.png")
        frames.append(im)
    frames[0].save(run_dir / "training.gif", save_all=True, append_images=frames[1:], duration=200)
    n = per_class * len(names)
    images = strokes(rng, n, g.shape) if strokes_like else rng.integers(0, 256, (n, *g.shape),
                                                                        dtype=np.uint8)
    labels = np.repeat(np.arange(len(names)), per_class) if conditional else np.full(n, -1)
    np.savez(run_dir / "generated.npz", images=images, labels=labels.astype(np.int64))
    return run_dir


def strokes(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """``n`` images of a few bright strokes on black: as compressible as handwritten digits."""
    from PIL import ImageDraw
    h, w = shape[0], shape[1]
    out = np.zeros((n, *shape), dtype=np.uint8)
    for i in range(n):
        im = Image.new("L", (w, h))
        draw = ImageDraw.Draw(im)
        pts = [tuple(int(v) for v in rng.integers(3, min(h, w) - 3, 2)) for _ in range(4)]
        draw.line(pts, fill=255, width=2)
        out[i] = np.asarray(im).reshape(shape)
    return out


def stroke_manifest(path: Path, counts: dict[str, int], size: int, seed: int):
    """A manifest of stroke images (see :func:`strokes`), 20% of each class held out as "test"."""
    from datakit.manifest.write import write_manifest
    from datakit.sources.common import build_table
    rng = np.random.default_rng(seed)
    records, images = [], []
    for label, cls in enumerate(counts):
        for i in range(counts[cls]):
            records.append({"id": f"{path.stem}/{cls}/{i}", "dataset": "toy", "subset": "toy",
                            "split": "test" if i % 5 == 0 else "train", "domain": "handwritten",
                            "label": label, "class_name": cls, "source": f"generated:{cls}:{i}",
                            "orig_width": size, "orig_height": size, "orig_mode": "L"})
        images.append(strokes(rng, counts[cls], (size, size, 1)))
    pixels = np.concatenate(images)
    return write_manifest(path, build_table(records, pixels), pixels, {"command": "test fixture"},
                          classes=list(counts))


def fake_audit(manifest, *, collapsed: tuple[str, ...] = (), fd: float = 20.0, fd_floor: float = 2.0,
               generated_shares: dict[str, float] | None = None, findings: list | None = None,
               judge_checksum: str | None = None, reference_checksum: str | None = None,
               values: dict[str, float] | None = None, domains: dict | None = None):
    """An audit built with the audit's own schema (dataclasses + validation), read as the
    report reads it, so that the report is only ever tested on the shape ``datakit audit``
    writes (``.to_dict()`` gives audit.json's object). ``values``: whole-set metrics to set
    (precision, recall, coverage, label_fidelity...); ``domains``: audit.json's domains section."""
    from datakit.audit.declare import row_keys
    from datakit.audit.schema import (
        SCHEMA_VERSION,
        Audit,
        ClassRow,
        Confusion,
        Finding,
        FloorTest,
        Metric,
        Reference,
        Verdict,
        prepare_audit,
        sort_findings,
    )
    from datakit.audit.verdict import untested_reason
    t = manifest.table
    names = list(manifest.vocabulary)
    counts = {c: int((t["class_name"] == c).sum()) for c in names}
    total = sum(counts.values())
    train_share = {c: v / total for c, v in counts.items()}
    gen_share = generated_shares or {c: 1 / len(names) for c in names}
    rows, found = [], list(findings or [])
    for i, c in enumerate(names):
        ratio = gen_share[c] / train_share[c]
        share = FloorTest(ratio, 1.0, ratio - 1, ratio - 1.2, ratio - 0.8, 100, 2.0, "equal", False)
        evidence = f"class {c}: diversity {0.1 if c in collapsed else 0.9:.2f} of real"
        rows.append(ClassRow(
            class_name=c, label=i, train_count=counts[c], train_share=train_share[c], reference_count=counts[c],
            held_out_count=3, generated_count=6,
            metrics={**{k: None for k in row_keys()},  # every declared metric; these set:
                     **dict(generated_share=gen_share[c], generated_share_ratio=ratio,
                            label_fidelity=0.8, label_fidelity_floor=0.95,
                            fd=10.0 + 100.0 / (1 + counts[c]), fd_floor=8.0, coverage=0.5,
                            coverage_floor=0.6, diversity_ratio=0.1 if c in collapsed else 0.9,
                            diversity_floor=1.0, close_pair_share=0.0, close_pair_share_floor=0.0,
                            modes_real=2, modes_covered=2, modes_covered_floor=2, memorised_share=0.0)},
            collapsed=c in collapsed, collapse_evidence=evidence, failed=False, failure_reasons=[],
            vs_floor={"share": share}, untested=untested_reason(3, 6, 30)))
        if c in collapsed:
            found.append(Finding("collapse", "fail", [c], f"Class {c} collapsed: diversity 0.10 of real.",
                                 {"diversity_ratio": 0.1}))
    metric = (lambda v, floor, better, ideal: Metric(v, floor, v * 0.9, v * 1.1, better, ideal, 100))
    amp_rows = [{"name": c, "code": i, "train_share": train_share[c], "generated_share": gen_share[c],
                 "ratio": gen_share[c] / train_share[c]} for i, c in enumerate(names)]
    audit = {
        "schema_version": SCHEMA_VERSION,
        "run": {"run_dir": "fake", "model": "acgan", "conditional": True, "manifest": str(manifest.path),
                "manifest_checksum": manifest.checksum, "generated_count": 6 * len(names)},
        "reference": Reference(str(manifest.path), reference_checksum or manifest.checksum, True, total, 3 * len(names),
                               'the manifest\'s "test" split'),
        "judge": {"held_out_accuracy": 0.93, "held_out_accuracy_per_class": {c: 0.93 for c in names},
                  "trusted": True, "min_accuracy": 0.9, "classes": names, "domains": [], "feature_dim": 64,
                  "manifest": str(manifest.path), "manifest_checksum": judge_checksum or manifest.checksum,
                  "shared": False,
                  "confusion": Confusion(names, np.eye(len(names), dtype=int).tolist(),
                                         (2 * np.eye(len(names), dtype=int)).tolist())},
        "summary": {"fd": metric(fd, fd_floor, "lower", 0.0), "kid": metric(0.02, 0.001, "lower", 0.0),
                    "precision": metric(0.6, 0.8, "higher", 1.0), "recall": metric(0.4, 0.8, "higher", 1.0),
                    **{k: metric(v, 0.8, "higher", 1.0) for k, v in (values or {}).items()}},
        "per_class": rows,
        "verdict": Verdict(f"Far from real data (FD {fd:.3g} against {fd_floor:.3g} for held-out real images); "
                           + (f"{len(collapsed)} classes stand out" if collapsed else "no class stands out")
                           + f"; {len(names)} classes untested.", sorted(collapsed), sorted(names)),
        "findings": sort_findings(found),
        "checks": {"collapse": {"score": float(len(collapsed)), "score_name": "classes totally collapsed",
                                "findings": len(collapsed)}},
        "amplification": {"classes": {"basis": "conditioning labels", "rows": amp_rows,
                                      "divergence": {"kl": 0.1, "js": 0.05, "tv": 0.1},
                                      "generated_count": 6 * len(names), "expected_basis": "conditioning labels"}},
        "domains": domains,
        "composition": {"skew_ratio": 1.0, "minority": [], "majority": [], "comparisons": {},
                        "correlations": None, "note": "class counts vary by 1.00×"},
        "memorisation": {"threshold": 0.1, "quantile": 0.01, "flagged_count": 1, "flagged_share": 0.02,
                         "flagged_share_ci": [0.0, 0.05], "flagged_share_floor": 0.0, "exact_copies": 0,
                         "exact_copy_share": 0.0,
                         "worst": [{"generated_index": 0, "nearest_train_id": str(t["id"].iloc[0]),
                                    "distance": 0.5}],
                         "ct": {"value": None, "cells": 1, "cells_used": 0, "z": []}, "per_class": []},
        "cas": None,
        "warnings": ["Only 18 generated samples: density, coverage and KID are noisy below about 1000; "
                     "generate more for firmer numbers."],
        "samples": {"reference": total, "held_out": 3 * len(names), "generated": 6 * len(names), "train": total,
                    "held_out_source": "test"},
        "config": {},
        "timing": {},
    }
    return Audit.from_dict(prepare_audit(audit, "fake audit"), "fake audit")


#: Arm names as long as those of the committed studies (chars74k_composition, class_skew):
#: a study page's tables must fit at 1280 px with them.
LONG_ARM_NAMES = ("balanced_acgan", "skewed_acgan", "goodimg_diffaugment", "goodimg_fnt")


def fake_study(root: Path, *, arms: int = 4, seeds: int = 3, classes: int = 10,
               size: int = 28, per_class: int = 32, arm_names: Sequence[str] | None = None,
               ) -> tuple[list[Path], list, "StudyResults"]:
    """An arms × seeds study (run folders, audits, study.json's object typed) built with the study
    layer's own contrast and arm-summary functions; the last arm collapses class "1" and its
    FD is 20 higher (a conclusive, worse contrast). ``arm_names``: the arms' names (default
    arm0, arm1, ...; :data:`LONG_ARM_NAMES` are as long as the committed studies' ones)."""
    arm = list(arm_names) if arm_names else [f"arm{a}" for a in range(arms)]
    assert len(arm) == arms, f"{len(arm)} arm names for {arms} arms"
    from datakit.study import contrasts as cs
    from datakit.study.results import run_record
    names = {str(c): 40 + 10 * c for c in range(classes)}
    dirs, audits, records, arm_rows = [], [], [], []
    for a in range(arms):
        m = stroke_manifest(root / "manifests" / f"{arm[a]}.parquet", names, size, seed=a)
        for s in range(seeds):
            run = make_run(root / "runs" / arm[a] / f"seed{s}", m, per_class=per_class, seed=s,
                           strokes_like=True)
            last = a == arms - 1  # collapses class "1" and is conclusively further from the reference
            audit = fake_audit(m, collapsed=("1",) if last else (), fd=20.0 + 3 * a + s + 20 * last)
            dirs.append(run)
            audits.append(audit)
            records.append(run_record(arm[a], s, run, audit, root))
    for a in range(arms):
        metrics = {k: cs.arm_summary([cs.measurement(r["seed"], r["summary"][k]) for r in records
                                      if r["arm"] == arm[a]]) for k in records[0]["summary"]}
        arm_rows.append({"arm": arm[a], "manifest": None, "levels": {}, "sweep": None,
                         "n_seeds": seeds, "metrics": metrics})
    contrasts = []
    for a in range(1, arms):
        for k in ("fd", "precision"):
            ra = [cs.measurement(r["seed"], r["summary"][k]) for r in records if r["arm"] == arm[0]]
            rb = [cs.measurement(r["seed"], r["summary"][k]) for r in records if r["arm"] == arm[a]]
            contrasts.append(cs.contrast("arm", arm[0], arm[a], k, ra, rb, seed=a))
    cs.add_q_values(contrasts)
    study = {"study": "fake", "title": "Fake study", "file": None, "executor": "local",
             "seeds": list(range(seeds)),
             "budget": {"description": "40 steps of 8 images per arm and seed."},
             "reference": {"description": "each arm's own held-out images", "manifest": "m"},
             "verdict": cs.study_verdict(contrasts), "findings": cs.study_findings(contrasts),
             "contrasts": contrasts, "arms": arm_rows,
             "curve": [], "runs": records}
    from datakit.study.schema import StudyResults
    return dirs, audits, StudyResults.from_dict(study)


def written_study(root: Path, study, manifests: dict, reference, audit_for, *, seeds: Sequence[int] = (0, 1, 2),
                  views_for=None, per_class: int = 6, edit_run=None):
    """Run folders for every (arm, seed) of a parsed ``study`` (no training) with the audits
    ``audit_for(arm, seed, manifest)`` returns, written by the study layer itself
    (:func:`datakit.study.results.write_study_outputs`): returns (report, study.json path).
    ``views_for(arm, seed, manifest)``: the run's other-domain audits ({view: Audit});
    ``edit_run(arm, seed, run_dir)``: changes a run folder before the study reads it (e.g.
    probe readings in its metrics.csv)."""
    from datakit.study.results import write_study_outputs
    runs, audits, views = {}, [], []
    for arm in study.arms:
        m = manifests[arm.name]
        for s in seeds:
            runs[(arm.name, s)] = make_run(root / "runs" / arm.name / f"seed{s}", m, seed=s,
                                           per_class=per_class, strokes_like=True)
            audits.append(audit_for(arm.name, s, m))
            views.append(views_for(arm.name, s, m) if views_for else {})
            if edit_run:
                edit_run(arm.name, s, runs[(arm.name, s)])
    return write_study_outputs(study, root, runs, audits, manifests, reference, budget=1.0,
                               overrides={}, views=views)
