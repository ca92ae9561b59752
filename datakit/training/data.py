"""The training set: rows of a manifest chosen for training, checked against what the trainer supports."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datakit.errors import TrainingError
from datakit.manifest.model import Manifest
from datakit.training.config import CHANNELS, IMAGE_SIZES, TrainConfig


@dataclass
class TrainingSet:
    """Pixels and labels of the training rows, in memory.

    Attributes:
        pixels: N×H×W×C uint8. labels: N int64 (indices into ``class_names``).
        class_names: the manifest's full vocabulary in label order.
        rows: which rows were used, in words (e.g. "split == 'train'").
    """

    pixels: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    rows: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        """Training images per class, in label order (zeros for absent classes)."""
        return np.bincount(self.labels, minlength=self.num_classes)


def load_training_set(manifest: Manifest) -> TrainingSet:
    """Read the training rows' pixels once: split ``train`` if present, else everything but ``test``."""
    table = manifest.table
    splits = set(table["split"].astype(str))
    if "train" in splits:
        chosen, rows = table[table["split"] == "train"], "split == 'train'"
    elif "test" in splits and len(splits) > 1:
        chosen, rows = table[table["split"] != "test"], "split != 'test'"
    else:
        chosen, rows = table, "all rows"
    pixels = manifest.images(chosen["row"].to_numpy())
    return TrainingSet(pixels, chosen["label"].to_numpy(dtype=np.int64),
                       list(manifest.vocabulary), rows)


def check_trainable(config: TrainConfig, manifest: Manifest, data: TrainingSet) -> None:
    """Raise :class:`TrainingError` when the manifest cannot train the configured model."""
    g = manifest.geometry
    name = manifest.path.name
    if g.height != g.width or g.height not in IMAGE_SIZES:
        raise TrainingError(
            f"Manifest {name} stores {g.height}x{g.width} images; the trainer supports square "
            f"images of {', '.join(map(str, IMAGE_SIZES))} pixels. Re-ingest or compose it at "
            "one of those sizes (e.g. --size 32).")
    if g.channels not in CHANNELS:
        raise TrainingError(f"Manifest {name} has {g.channels} channels; the trainer supports "
                            "1 (grey) or 3 (RGB).")
    if len(data.labels) == 0:
        raise TrainingError(f"Manifest {name} has no training rows ({data.rows}).")
    if config.conditional and data.num_classes < 2:
        raise TrainingError(
            f"Model {config.model} is conditional but manifest {name} has only "
            f"{data.num_classes} class; use --model dcgan or a manifest with at least two classes.")
    if data.labels.min() < 0 or data.labels.max() >= data.num_classes:
        raise TrainingError(f"Manifest {name} has labels outside its vocabulary of "
                            f"{data.num_classes} classes; re-create it with `datakit compose`.")
