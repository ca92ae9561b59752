"""Classification accuracy score (CAS, Ravuri & Vinyals 2019).

A fresh classifier with the judge's architecture is trained on generated samples only
(with their conditioning labels, or the judge's reading for unconditional runs) and
tested on real held-out images. If the generator captured each class, CAS approaches the
accuracy of the same classifier trained on real images (the judge's held-out accuracy).

It is trained afresh in every audit, so it is the audit's largest cost on the CPU; two
choices keep it under a quarter of a 1,000-step training (``bench/audit --versus-training``):
the channels-last layout (see :meth:`Judge.fit`) and a budget of about 50,000 image passes
(:func:`cas_epochs`: 10 epochs of 5,000 samples, where the judge's rule gives 15). Measured
on one default 1,000-step MNIST ACGAN's 5,000 samples, three seeds each: CAS 0.8911 (0.884-
0.896) at 15 epochs, 0.8884 (0.882-0.893) at 10, 0.8849 at 8 and 0.8773 at 5. The cut costs
0.003, half the spread over seeds and of the 10,000 test images' own binomial 95% range
(about ±0.006).
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from datakit.judge.network import Judge, JudgeConfig

#: Image passes of the CAS classifier when no epochs are set (see the module's docstring).
CAS_IMAGE_PASSES = 50_000


def cas_epochs(images: int) -> int:
    """The CAS classifier's epochs when none are set: about 50,000 image passes, 2 to 10 epochs."""
    return int(np.clip(np.ceil(CAS_IMAGE_PASSES / max(1, images)), 2, 10))


def classification_accuracy_score(generated: np.ndarray, generated_labels: np.ndarray,
                                  held: np.ndarray, held_labels: np.ndarray, classes: list[str], *,
                                  config: JudgeConfig, label_source: str) -> dict:
    """Train on (``generated``, ``generated_labels``), test on (``held``, ``held_labels``).

    Returns overall and per-class accuracy, the training time and the label source.
    ``config.epochs = 0`` trains :func:`cas_epochs` epochs.
    """
    keep = (generated_labels >= 0) & (generated_labels < len(classes))
    start = time.perf_counter()
    if keep.sum() < 2:
        return {"accuracy": None, "per_class": {}, "train_seconds": 0.0, "label_source": label_source,
                "note": "fewer than 2 labelled generated samples: no classifier could be trained"}
    config = replace(config, epochs=config.epochs or cas_epochs(int(keep.sum())))
    clf = Judge(config).fit(generated[keep], generated_labels[keep], classes,
                            held_images=held, held_labels=held_labels, channels_last=True)
    return {"accuracy": clf.info.get("held_out_accuracy"),
            "per_class": clf.info.get("held_out_accuracy_per_class", {}),
            "train_seconds": time.perf_counter() - start, "train_images": int(keep.sum()),
            "epochs": config.epochs,
            "label_source": label_source}
