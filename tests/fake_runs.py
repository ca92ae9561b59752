"""Fake run directories and audit dictionaries for the report tests.

They follow the run-directory contract of DESIGN.md (config.json, metrics.csv, samples/,
training.gif, generated.npz) without training anything, so the report can be tested on
its own. ``fake_audit`` returns a dictionary with the keys the audit contract names.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def make_run(run_dir: Path, manifest, *, conditional: bool = True, steps: int = 40,
             per_class: int = 6, seed: int = 0) -> Path:
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
    for s in logged:
        grid = rng.integers(0, 256, (g.height * 2, g.width * 4), dtype=np.uint8)
        im = Image.fromarray(grid)
        im.save(run_dir / "samples" / f"step_{s:06d}.png")
        frames.append(im)
    frames[0].save(run_dir / "training.gif", save_all=True, append_images=frames[1:], duration=200)
    n = per_class * len(names)
    images = rng.integers(0, 256, (n, *g.shape), dtype=np.uint8)
    labels = np.repeat(np.arange(len(names)), per_class) if conditional else np.full(n, -1)
    np.savez(run_dir / "generated.npz", images=images, labels=labels.astype(np.int64))
    return run_dir


def fake_audit(manifest, *, collapsed: tuple[str, ...] = (), fd: float = 20.0,
               generated_shares: dict[str, float] | None = None) -> dict:
    """An audit dictionary in the contract's shape with chosen findings."""
    t = manifest.table
    names = list(manifest.vocabulary)
    counts = {c: int((t["class_name"] == c).sum()) for c in names}
    total = sum(counts.values())
    train_share = {c: v / total for c, v in counts.items()}
    gen_share = generated_shares or {c: 1 / len(names) for c in names}
    per_class = [{"class_name": c, "label": i, "train_count": counts[c],
                  "intra_fd": 10.0 + 100.0 / (1 + counts[c]), "diversity": 0.1 if c in collapsed else 0.9,
                  "label_fidelity": 0.8, "coverage": 0.5,
                  "collapsed": c in collapsed,
                  "collapse_evidence": f"class {c}: diversity 0.10 of real" if c in collapsed else ""}
                 for i, c in enumerate(names)]
    return {
        "summary": {"fd": {"value": fd, "floor": 2.0, "ci": [fd * 0.9, fd * 1.1]},
                    "kid": {"value": 0.02, "floor": 0.001, "ci": [0.015, 0.025]},
                    "precision": {"value": 0.6, "floor": 0.8, "ci": [0.55, 0.65]},
                    "recall": {"value": 0.4, "floor": 0.8, "ci": [0.35, 0.45]}},
        "per_class": per_class,
        "amplification": {"class": {"train": train_share, "generated": gen_share, "divergence": 0.1}},
        "memorisation": {"count": 1, "share": 0.02,
                         "examples": [{"generated_index": 0, "train_row": int(t["row"].iloc[0]),
                                       "distance": 0.5}]},
        "warnings": ["Judge accuracy 0.71 is low: treat class-level numbers with care."],
        "judge": {"heldout_accuracy": 0.93},
    }
