"""Classification accuracy score (CAS, Ravuri & Vinyals 2019).

A fresh classifier with the judge's architecture is trained on generated samples only
(with their conditioning labels, or the judge's reading for unconditional runs) and
tested on real held-out images. If the generator captured each class, CAS approaches the
accuracy of the same classifier trained on real images (the judge's held-out accuracy).
"""
from __future__ import annotations

import time

import numpy as np

from datakit.judge.network import Judge, JudgeConfig


def classification_accuracy_score(generated: np.ndarray, generated_labels: np.ndarray,
                                  held: np.ndarray, held_labels: np.ndarray, classes: list[str], *,
                                  config: JudgeConfig, label_source: str) -> dict:
    """Train on (``generated``, ``generated_labels``), test on (``held``, ``held_labels``).

    Returns overall and per-class accuracy, the training time and the label source.
    """
    keep = (generated_labels >= 0) & (generated_labels < len(classes))
    start = time.perf_counter()
    if keep.sum() < 2:
        return {"accuracy": None, "per_class": {}, "train_seconds": 0.0, "label_source": label_source,
                "note": "fewer than 2 labelled generated samples: no classifier could be trained"}
    clf = Judge(config).fit(generated[keep], generated_labels[keep], classes,
                            held_images=held, held_labels=held_labels)
    return {"accuracy": clf.info.get("held_out_accuracy"),
            "per_class": clf.info.get("held_out_accuracy_per_class", {}),
            "train_seconds": time.perf_counter() - start, "train_images": int(keep.sum()),
            "label_source": label_source}
