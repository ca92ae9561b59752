"""The judge: a small CNN trained on a manifest's own real images.

It is the audit's measuring instrument: its penultimate layer is the feature space for
every distance-based metric, its class head reads generated glyphs, and its domain head
(present when the manifest mixes wild / synthetic / handwritten images) says which domain
a sample looks like. No downloaded weights: a judge trained on the glyph domain itself is
the right instrument here, and it is cheap (seconds on digits, under a minute on MNIST).

Judges are cached by the manifest's content key (checksum, table, sampled pixels) and the judge settings, so auditing ten runs
of one manifest trains the judge once.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from datakit._core.atomic import temp_path
from datakit._core.device import resolve_device
from datakit._core.optional import skip_broken_cupti_probe
from datakit._core.progress import log, progress
from datakit.errors import DatakitError, ManifestError
from datakit.judge.cache import cache_dir
from datakit.judge.features import Embedding, embed, to_judge_input
from datakit.manifest.model import Manifest

#: Bumped whenever the network or its training changes, so cached judges are retrained.
JUDGE_VERSION = 2


@dataclass
class JudgeConfig:
    """Settings of the judge network and its training, all part of the cache key (of the
    device, its type: a judge trained on a GPU runs other kernels and differs from the CPU's)."""

    feature_dim: int = 64          # width of the penultimate layer = the audit's feature space
    width: int = 16                # channels of the first conv layer (doubled twice)
    epochs: int = 0                # 0 = auto: enough epochs for ~80,000 image passes (2..15)
    batch_size: int = 128
    lr: float = 2e-3
    max_train_images: int = 30000  # a seeded sample caps judge training time on big manifests
    held_out_share: float = 0.15   # carved from the manifest when it has no "test" split
    min_accuracy: float = 0.9      # below this held-out accuracy the audit warns
    seed: int = 0
    device: str = "auto"

    def cache_key(self) -> str:
        d = {**asdict(self), "judge_version": JUDGE_VERSION}
        d["device"] = resolve_device(self.device).type  # cuda:0 and cuda:1 share judges
        d.pop("min_accuracy")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def auto_epochs(images: int) -> int:
    """The judge's epochs when none are set: about 80,000 image passes, 2 to 15 epochs."""
    return int(np.clip(np.ceil(80000 / max(1, images)), 2, 15))


class JudgeNet(nn.Module):
    """Three conv blocks (32 -> 16 -> 8 -> 4 pixels), a feature layer, a class and a domain head."""

    def __init__(self, channels: int, num_classes: int, num_domains: int = 1,
                 feature_dim: int = 64, width: int = 16):
        super().__init__()
        self.channels, self.num_classes, self.num_domains = channels, num_classes, num_domains
        self.feature_dim = feature_dim
        w = width
        blocks, c_in = [], channels
        for c_out in (w, 2 * w, 4 * w):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.body = nn.Sequential(*blocks, nn.Flatten())
        # The feature space is the penultimate layer *before* its ReLU: no dead (always-zero)
        # dimensions, so feature covariances stay full-rank for Fréchet distances.
        self.feature = nn.Linear(4 * w * 4 * 4, feature_dim)
        self.class_head = nn.Linear(feature_dim, num_classes)
        self.domain_head = nn.Linear(feature_dim, num_domains) if num_domains > 1 else None

    def forward(self, x: torch.Tensor):
        f = self.feature(self.body(x))
        h = F.relu(f)
        return f, self.class_head(h), (self.domain_head(h) if self.domain_head is not None else None)


@dataclass
class RealSplit:
    """Which manifest rows are training images and which are held-out real images."""

    train_rows: np.ndarray   # table positions (not pixel-store rows)
    held_rows: np.ndarray
    how: str                 # 'split column "test"' or 'carved ...' (recorded in audit.json)


def split_real(manifest: Manifest, held_out_share: float = 0.15, seed: int = 0) -> RealSplit:
    """The training rows (split != "test") and held-out rows ("test", else a seeded carve-out)."""
    split = manifest.table["split"].astype(str).to_numpy()
    test = np.flatnonzero(split == "test")
    if len(test) and len(test) < len(split):
        return RealSplit(np.flatnonzero(split != "test"), test, 'the manifest\'s "test" split')
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(split))
    n_held = max(1, int(round(held_out_share * len(split))))
    if len(split) - n_held < 2:
        raise ManifestError(f"Manifest {manifest.path.name} has only {len(split)} images; "
                            "the audit needs at least 3 to train a judge and hold some out.")
    return RealSplit(np.sort(order[n_held:]), np.sort(order[:n_held]),
                     f"a seeded {held_out_share:.0%} carve-out (seed {seed}); the manifest has no "
                     '"test" split, so these images may have been seen by the generator')


class Judge:
    """A trained judge: network + class/domain vocabularies + held-out accuracy.

    Create with a config, then :meth:`fit` (or :meth:`load`); :meth:`embed` images.
    """

    def __init__(self, config: JudgeConfig | None = None):
        self.config = config or JudgeConfig()
        self.net: JudgeNet | None = None
        self.classes: list[str] = []
        self.domains: list[str] = []
        self.channels = 1
        self.info: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    def fingerprint(self) -> str:
        """A digest of the trained network, its vocabularies and the device type it runs on:
        two judges with one fingerprint embed any image alike (a key for reused embeddings)."""
        if self.net is None:
            raise DatakitError("The judge has not been trained or loaded yet; call fit() or load().")
        h = hashlib.sha256(json.dumps([self.classes, self.domains, self.channels, self.device.type]).encode())
        for name, t in self.net.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def fit(self, images: np.ndarray, labels: np.ndarray, classes: list[str], *,
            domains: np.ndarray | None = None, domain_names: list[str] | None = None,
            held_images: np.ndarray | None = None, held_labels: np.ndarray | None = None,
            channels_last: bool = False) -> "Judge":
        """Train on uint8 N×H×W×C ``images`` with int ``labels`` (and domain indices when mixed).

        ``channels_last`` trains in the channels-last memory layout, faster on the CPU (oneDNN's
        convolutions): a training step at batch 128 on one thread took 38-42 against 64 ms, and
        the whole CAS classifier 22-24 against 28-31 CPU-s (5,000 samples, 15 epochs). Its
        floating-point sums run in another order, so the trained weights differ in their last
        digits; the audit's cached judge keeps the default layout (its features, and every
        number computed from them, stay as they were) and the classifiers trained afresh in
        every audit (CAS) use the faster one.
        """
        cfg, dev = self.config, self.device
        skip_broken_cupti_probe()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.classes, self.channels = list(classes), int(images.shape[-1])
        self.domains = list(domain_names or [])
        use_domains = domains is not None and len(self.domains) > 1
        if len(images) > cfg.max_train_images:
            keep = np.sort(rng.choice(len(images), cfg.max_train_images, replace=False))
            images, labels = images[keep], labels[keep]
            domains = domains[keep] if domains is not None else None
        self.net = JudgeNet(self.channels, len(self.classes), len(self.domains) if use_domains else 1,
                            cfg.feature_dim, cfg.width).to(dev)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # The whole (capped) training set is converted once, on the device: epochs then only index.
        x_all = torch.cat([to_judge_input(images[i:i + 4096], self.channels, dev)
                           for i in range(0, len(images), 4096)])
        y_all = torch.tensor(np.asarray(labels, dtype=np.int64), device=dev)
        d_all = torch.tensor(np.asarray(domains, dtype=np.int64), device=dev) if use_domains else None
        epochs = cfg.epochs or auto_epochs(len(x_all))
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        steps = epochs * max(1, -(-len(x_all) // cfg.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
        start = time.perf_counter()
        self.net.train()
        bar = progress(total=steps, desc="judge training", unit="step")
        for _ in range(epochs):
            perm = torch.randperm(len(x_all), device=dev)
            for i in range(0, len(perm), cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                bar.update(1)
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                x = x_all[idx]
                # 1) small random shifts: the judge must read glyphs that are not centred exactly
                shift = torch.randint(-2, 3, (2,)).tolist()
                x = torch.roll(x, shifts=shift, dims=(2, 3))
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                _, logits, dlogits = self.net(x)
                loss = F.cross_entropy(logits, y_all[idx])
                if d_all is not None:
                    loss = loss + F.cross_entropy(dlogits, d_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        bar.close()
        self.net.eval()
        self.info = {"train_images": int(len(x_all)), "train_seconds": time.perf_counter() - start,
                     "epochs": epochs, "device": str(dev)}
        if held_images is not None and held_labels is not None and len(held_images):
            pred = self.embed(held_images).predicted_class
            held_labels = np.asarray(held_labels)
            per_class = {}
            for lab, name in enumerate(self.classes):
                m = held_labels == lab
                per_class[name] = float((pred[m] == lab).mean()) if m.any() else None
            self.info.update(held_out_accuracy=float((pred == held_labels).mean()),
                             held_out_images=int(len(held_labels)),
                             held_out_accuracy_per_class=per_class)
            folded = np.array([c.lower() for c in self.classes])
            if len(set(folded)) < len(self.classes):
                # c/C, o/O, s/S... look alike in many fonts and scenes: say how much of the
                # error is only letter case.
                self.info["held_out_accuracy_ignoring_case"] = float(
                    (folded[pred] == folded[held_labels]).mean())
        return self

    def embed(self, images: np.ndarray, batch_size: int = 1024) -> Embedding:
        """Features, class logits and domain logits of uint8 N×H×W×C images."""
        if self.net is None:
            raise DatakitError("The judge has not been trained or loaded yet; call fit() or load().")
        return embed(self.net, images, channels=self.channels, device=self.device, batch_size=batch_size)

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the judge atomically (state dict + vocabularies + info)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {"state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()},
                "config": asdict(self.config), "classes": self.classes, "domains": self.domains,
                "channels": self.channels, "info": json.dumps(self.info)}
        with temp_path(path) as tmp:
            torch.save(blob, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> "Judge":
        """Read a judge written by :meth:`save`, onto ``device``."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a corrupt file
            raise DatakitError(f"Cached judge {path} cannot be read ({e}); delete it to retrain.") from e
        config = JudgeConfig(**{**blob["config"], "device": device})
        judge = cls(config)
        judge.classes, judge.domains = list(blob["classes"]), list(blob["domains"])
        judge.channels, judge.info = int(blob["channels"]), json.loads(blob["info"])
        judge.net = JudgeNet(judge.channels, len(judge.classes), max(1, len(judge.domains)),
                             config.feature_dim, config.width)
        judge.net.load_state_dict(blob["state_dict"])
        judge.net.to(judge.device).eval()
        return judge


def judge_for_manifest(manifest: Manifest, config: JudgeConfig | None = None, *,
                       use_cache: bool = True) -> Judge:
    """The judge of ``manifest``: loaded from the cache, or trained on its training rows and cached.

    The held-out rows (see :func:`split_real`) give the reported held-out accuracy.
    """
    config = config or JudgeConfig()
    path = cache_dir() / f"{manifest.content_key()[:20]}-{config.cache_key()}.pt"
    if use_cache and path.exists():
        judge = Judge.load(path, config.device)
        judge.config.min_accuracy = config.min_accuracy
        judge.info["cached"] = str(path)
        return judge
    split = split_real(manifest, config.held_out_share, config.seed)
    table = manifest.table
    rows = table["row"].to_numpy()
    labels = table["label"].to_numpy(dtype=np.int64)
    domain_names = sorted(set(table["domain"].astype(str)))
    domains = np.searchsorted(domain_names, table["domain"].astype(str).to_numpy())
    log(f"Training the judge on {len(split.train_rows)} images of {manifest.name} ...")
    judge = Judge(config).fit(
        manifest.images(rows[split.train_rows]), labels[split.train_rows], manifest.vocabulary,
        domains=domains[split.train_rows] if len(domain_names) > 1 else None,
        domain_names=domain_names if len(domain_names) > 1 else None,
        held_images=manifest.images(rows[split.held_rows]), held_labels=labels[split.held_rows])
    judge.info.update(manifest_checksum=manifest.checksum, held_out=split.how)
    if use_cache:
        judge.save(path)
        judge.info["cached"] = str(path)
    return judge
