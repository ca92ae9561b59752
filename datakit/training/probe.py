"""The in-training probe: a cheap quality reading every ``probe_every`` steps, and the plateau
stop it drives (``plateau_patience``).

Every probe draws ``probe_samples`` images from the generator (fixed noise, so successive
probes differ only by the weights) and reads them with a small judge trained once on the
run's manifest (:func:`datakit.judge.network.judge_for_manifest`, cached like the audit's):

* ``probe_label_fidelity`` (conditional models): the share of samples the judge reads as the
  class they were asked for — the probe's criterion when present;
* ``probe_fd``: the Fréchet distance between the samples' and as many training images'
  judge features — the criterion of unconditional models.

A run has plateaued when ``plateau_patience`` probes in a row have not improved on the best
one so far by more than ``plateau_tolerance`` (relative: 0.01 = 1% of the best value).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from datakit.judge import metrics
from datakit.judge.network import JudgeConfig, judge_for_manifest
from datakit.training.sampling import generate_images

#: The probe's judge: small and quick to train (a few epochs on at most 5,000 images).
PROBE_JUDGE = JudgeConfig(epochs=3, max_train_images=5000)


@dataclass
class PlateauState:
    """The best probe value so far and how many probes since it (saved in checkpoints)."""

    best: float | None = None
    since_best: int = 0
    history: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"best": self.best, "since_best": self.since_best, "history": list(self.history)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "PlateauState":
        d = d or {}
        return cls(d.get("best"), int(d.get("since_best", 0)), list(d.get("history", [])))


def update_plateau(state: PlateauState, value: float, *, higher_is_better: bool,
                   tolerance: float) -> PlateauState:
    """Record one probe; an improvement must beat the best by more than ``tolerance × |best|``."""
    state.history.append(float(value))
    if state.best is None:
        state.best, state.since_best = float(value), 0
        return state
    gain = (value - state.best) if higher_is_better else (state.best - value)
    if gain > tolerance * max(abs(state.best), 1e-12):
        state.best, state.since_best = float(value), 0
    else:
        state.since_best += 1
    return state


class Probe:
    """Reads a generator's quality cheaply during training (see the module docstring)."""

    def __init__(self, manifest, train_pixels: np.ndarray, class_probs: torch.Tensor, *,
                 conditional: bool, n_samples: int, z_dim: int, seed: int,
                 device: torch.device):
        self.manifest, self.conditional, self.z_dim = manifest, conditional, z_dim
        self.n_samples, self.seed, self.device = n_samples, seed, device
        self.class_probs = class_probs.cpu()
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(train_pixels), min(n_samples, len(train_pixels)), replace=False)
        self._real_pixels = train_pixels[np.sort(pick)]
        self.judge = None
        self._real_features = None

    @property
    def criterion(self) -> str:
        """The metrics.csv column the plateau stop watches."""
        return "probe_label_fidelity" if self.conditional else "probe_fd"

    @property
    def higher_is_better(self) -> bool:
        return self.conditional

    def fit(self) -> "Probe":
        """Train (or load from the cache) the probe's judge and embed the real images once."""
        cfg = JudgeConfig(**{**PROBE_JUDGE.__dict__, "device": str(self.device.type)})
        self.judge = judge_for_manifest(self.manifest, cfg)
        self._real_features = self.judge.embed(self._real_pixels).features
        return self

    @torch.no_grad()
    def read(self, g_net, autocast=None) -> dict[str, float]:
        """{probe_fd, probe_label_fidelity (conditional)} of ``n_samples`` fresh samples."""
        if self.judge is None:
            self.fit()
        if self.conditional:
            g = torch.Generator().manual_seed(self.seed + 4242)
            labels = torch.multinomial(self.class_probs, self.n_samples, replacement=True,
                                       generator=g)
        else:
            labels = torch.full((self.n_samples,), -1, dtype=torch.int64)
        images = generate_images(g_net, labels, self.z_dim, self.device, seed=self.seed + 4243,
                                 autocast=autocast)
        emb = self.judge.embed(images)
        out = {"probe_fd": float(metrics.fd(self._real_features, emb.features))}
        if self.conditional:
            columns = [list(self.judge.classes).index(c) for c in self.manifest.vocabulary]
            predicted = emb.class_logits[:, columns].argmax(1)
            out["probe_label_fidelity"] = float((predicted == labels.numpy()).mean())
        return out
