"""The audit's shared stage: everything the checks read, computed once.

The judge, the real training / held-out split, the judge's embeddings of the reference
(training split of the reference manifest), the held-out real images (its held-out split),
the generated samples and the run's own training images (for memorisation and shares),
and the judge's readings of held-out and generated images in the run's class vocabulary.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datakit._core.device import resolve_device
from datakit.audit.reuse import Reuse, memo, sources
from datakit.audit.schema import Reference
from datakit.errors import DatakitError
from datakit.judge import metrics
from datakit.judge.features import Embedding, embed, to_judge_input
from datakit.judge.network import Judge, JudgeConfig, JudgeNet, judge_for_manifest, split_real
from datakit.manifest.model import Manifest
from datakit.manifest.read import read_manifest

if TYPE_CHECKING:
    from datakit.audit.config import AuditConfig
    from datakit.audit.inputs import RunInputs


def _sample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))


def read_in_run_vocabulary(class_logits: np.ndarray, judge_classes: list[str],
                           run_classes: list[str], judge_manifest: Manifest) -> np.ndarray:
    """The judge's reading of each sample as a label of the run's vocabulary.

    A judge trained on another manifest may know more classes, or order them differently:
    each sample is read as the most likely of the run's own classes, matched by name.
    """
    if list(judge_classes) == list(run_classes):
        return class_logits.argmax(1).astype(np.int64)
    missing = [c for c in run_classes if c not in judge_classes]
    if missing:
        raise DatakitError(
            f"The judge manifest {judge_manifest.path} has no class {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''} of the run's vocabulary; choose a judge "
            "manifest that holds every class of the runs it measures.")
    columns = [list(judge_classes).index(c) for c in run_classes]
    return class_logits[:, columns].argmax(1).astype(np.int64)


def _labels_in_run_vocabulary(m: Manifest, positions: np.ndarray, run_classes: list[str]) -> np.ndarray:
    """Labels of manifest rows at table ``positions`` as codes of the run's vocabulary (-1: unknown)."""
    names = m.table["class_name"].astype(str).to_numpy()[positions]
    code = {c: i for i, c in enumerate(run_classes)}
    return np.array([code.get(n, -1) for n in names], np.int64)


@dataclass
class AuditFeatures:
    """What every check reads (numpy arrays; labels are codes of the run's vocabulary)."""

    run: "RunInputs"
    classes: list[str]
    judge: Judge
    judge_manifest: Manifest
    reference_manifest: Manifest
    reference: Embedding              # reference manifest, training split (sampled)
    reference_labels: np.ndarray
    reference_ids: list[str]          # manifest ids of the reference images (reference manifest)
    held: Embedding                   # reference manifest, held-out split
    held_labels: np.ndarray
    held_pred: np.ndarray
    held_store_rows: np.ndarray       # pixel-store rows of the held-out images (reference manifest)
    generated: Embedding              # sampled generated images
    generated_images: np.ndarray
    generated_index: np.ndarray       # positions in generated.npz
    generated_labels: np.ndarray      # conditioning labels (-1: unconditional)
    generated_pred: np.ndarray
    train: Embedding                  # the run's own training images (sampled)
    train_labels: np.ndarray
    train_ids: list[str]
    train_sha: set[str]
    train_counts: np.ndarray          # the run's full training split, per class
    own_held: Embedding               # the run's own held-out images (C_T)
    reference_info: Reference
    device: Any
    warnings: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)   # CheckResults of earlier checks

    @property
    def conditional(self) -> bool:
        return bool(self.run.conditional)

    @property
    def assigned(self) -> np.ndarray:
        """The class each generated sample counts for: its conditioning label, else the judge's reading."""
        return self.generated_labels if self.conditional else self.generated_pred

    @cached_property
    def reference_radii(self) -> np.ndarray:
        """Each reference image's distance to its k-th nearest other reference image."""
        return self.reference_neighbours[:, self.k - 1]

    @property
    def reference_neighbours(self) -> np.ndarray:
        """The reference's distances to its 1st..k-th nearest other reference images: one
        pass (reused across audits) serves PRDC's radii and, when the reference is the
        run's training set, memorisation's 1-NN distances."""
        return self.reuse(metrics.neighbour_distances, self.reference.features, self.k, device=self.device,
                          chunk_elems=self.chunk_elems)

    def nearest_training(self) -> tuple[np.ndarray, np.ndarray]:
        """Each generated sample's nearest training image (distance, index into ``train``):
        from the quality check's pass over the reference when the reference is the training
        set and that pass saw every sample (the same distances), else a pass of its own."""
        if self.generated_relations is not None and self.train is self.reference:
            index, rel = self.generated_relations
            if len(index) == len(self.generated) and (np.asarray(index) == np.arange(len(index))).all():
                return rel.fake_nn_distance, rel.fake_nn_index
        return metrics.nearest_neighbours(self.train.features, self.generated.features, device=self.device,
                                          chunk_elems=self.chunk_elems)

    k: int = 5
    chunk_elems: int = metrics.DEFAULT_CHUNK_ELEMS
    #: real-image values reused across audits (:mod:`datakit.audit.reuse`)
    reuse: Reuse = field(default_factory=Reuse)
    #: (generated positions, their NeighbourRelations to the reference), set by the quality check
    generated_relations: Any = None


def _relative(path: Path, run_dir: Path) -> str:
    audit_dir = (run_dir / "audit").resolve()
    try:
        return os.path.relpath(path.resolve(), audit_dir)
    except ValueError:  # another drive
        return str(path.resolve())


def embed_real(judge: Judge, images: np.ndarray, *, disk: bool) -> Embedding:
    """The judge's embedding of real images, reused across audits (keyed by the judge's
    fingerprint and the pixels themselves, :mod:`datakit.audit.reuse`)."""
    images = np.asarray(images)
    code = sources(Judge.embed, embed, to_judge_input, JudgeNet.forward)
    return memo("judge embedding", (code, judge.fingerprint(), images), lambda: judge.embed(images),
                      Embedding, disk=disk)


def build_features(run: "RunInputs", cfg: "AuditConfig") -> AuditFeatures:
    """Train or load the judge, split and sample the real sets, embed everything once."""
    rng = np.random.default_rng(cfg.seed)
    m = run.manifest
    device = resolve_device(cfg.device)
    judge_cfg = JudgeConfig(**{**cfg.judge.__dict__, "device": str(device)})
    judge_m = read_manifest(cfg.judge_manifest) if cfg.judge_manifest else m
    judge = judge_for_manifest(judge_m, judge_cfg, use_cache=cfg.use_cache)
    ref_m = read_manifest(cfg.reference_manifest) if cfg.reference_manifest else m
    own = ref_m.checksum == m.checksum
    classes = list(m.vocabulary)
    missing = [c for c in classes if c not in set(ref_m.vocabulary)]
    if missing:
        raise DatakitError(f"The reference manifest {ref_m.path} has no class {', '.join(missing[:5])}"
                           f"{' ...' if len(missing) > 5 else ''} of the run's vocabulary; choose a "
                           "reference manifest that holds every class of the run.")

    def read(emb_logits):
        return read_in_run_vocabulary(emb_logits, judge.classes, classes, judge_m)

    def embed_rows(manifest: Manifest, store_rows: np.ndarray) -> Embedding:
        return embed_real(judge, manifest.images(store_rows), disk=cfg.use_cache)

    # 1) the run's own training set: memorisation and shares always compare with it
    own_split = split_real(m, judge_cfg.held_out_share, judge_cfg.seed)
    t = m.table
    rows = t["row"].to_numpy()
    train_pos = own_split.train_rows[_sample(len(own_split.train_rows), cfg.max_reference, rng)]
    train = embed_rows(m, rows[train_pos])
    train_counts = np.bincount(t["label"].to_numpy(np.int64)[own_split.train_rows], minlength=len(classes))
    # 2) the reference: the same images, or another manifest's splits
    if own:
        ref_split, reference, ref_pos = own_split, train, train_pos
        held_pos = own_split.held_rows
        held = embed_rows(m, rows[held_pos])
        own_held = held
    else:
        ref_split = split_real(ref_m, judge_cfg.held_out_share, judge_cfg.seed)
        keep = lambda pos: pos[_labels_in_run_vocabulary(ref_m, pos, classes) >= 0]  # noqa: E731
        r_rows = ref_m.table["row"].to_numpy()
        ref_pos = keep(ref_split.train_rows)
        ref_pos = ref_pos[_sample(len(ref_pos), cfg.max_reference, rng)]
        held_pos = keep(ref_split.held_rows)
        reference = embed_rows(ref_m, r_rows[ref_pos])
        held = embed_rows(ref_m, r_rows[held_pos])
        own_held = embed_rows(m, rows[own_split.held_rows])
    # 3) the generated samples
    gen_idx = _sample(len(run.images), cfg.max_generated, rng)
    gen_images = run.images[gen_idx]
    generated = judge.embed(gen_images)
    info = Reference(manifest=_relative(ref_m.path, run.run_dir), checksum=ref_m.checksum, own=own,
                     reference_count=int(len(reference)), held_out_count=int(len(held)),
                     held_out_source=ref_split.how)
    f = AuditFeatures(
        run=run, classes=classes, judge=judge, judge_manifest=judge_m, reference_manifest=ref_m,
        reference=reference, reference_labels=_labels_in_run_vocabulary(ref_m, ref_pos, classes),
        reference_ids=ref_m.table["id"].astype(str).to_numpy()[ref_pos].tolist(),
        held=held, held_labels=_labels_in_run_vocabulary(ref_m, held_pos, classes),
        held_pred=read(held.class_logits),
        held_store_rows=(rows if own else ref_m.table["row"].to_numpy())[held_pos], generated=generated, generated_images=gen_images,
        generated_index=gen_idx, generated_labels=run.labels[gen_idx],
        generated_pred=read(generated.class_logits), train=train,
        train_labels=t["label"].to_numpy(np.int64)[train_pos],
        train_ids=t["id"].astype(str).to_numpy()[train_pos].tolist(),
        train_sha=set(t["sha256"].to_numpy()[own_split.train_rows]), train_counts=train_counts,
        own_held=own_held, reference_info=info, device=device, k=cfg.k, chunk_elems=cfg.chunk_elems,
        reuse=Reuse(disk=cfg.use_cache))
    if "carve" in ref_split.how:
        f.warnings.append(f"{ref_m.path.name} has no \"test\" split; held-out real images are "
                          f"{ref_split.how}.")
    return f
