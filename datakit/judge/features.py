"""Judge inputs and judge outputs: pixels in, features / class logits / domain logits out.

Every image the audit looks at (training, held-out, generated) goes through the same two
steps: :func:`to_judge_input` (uint8 N×H×W×C at any store size -> float N×C×32×32 in
[-1, 1]) and :func:`embed` (batched forward pass through the judge network, on its device).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from datakit._core.progress import progress

JUDGE_SIZE = 32  # every image is resized to 32×32 inside the judge


@dataclass
class Embedding:
    """What the judge says about a set of images (numpy arrays, one row per image).

    Attributes:
        features: penultimate-layer activations (N×D float64), the audit's feature space.
        class_logits: N×K class scores.
        domain_logits: N×M domain scores, or None when the judge has no domain head.
    """

    features: np.ndarray
    class_logits: np.ndarray
    domain_logits: np.ndarray | None

    @property
    def predicted_class(self) -> np.ndarray:
        return self.class_logits.argmax(1).astype(np.int64)

    @property
    def predicted_domain(self) -> np.ndarray | None:
        return None if self.domain_logits is None else self.domain_logits.argmax(1).astype(np.int64)

    def take(self, index: np.ndarray) -> "Embedding":
        """The rows ``index`` of this embedding."""
        return Embedding(self.features[index], self.class_logits[index],
                         None if self.domain_logits is None else self.domain_logits[index])

    def __len__(self) -> int:
        return len(self.features)


def to_judge_input(images: np.ndarray | torch.Tensor, channels: int,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Convert uint8 N×H×W×C images to the judge's float N×channels×32×32 input in [-1, 1].

    Grey images are repeated to 3 channels and colour images averaged to 1 when the
    judge expects the other; any size is resized (area-averaged down, bilinear up).
    """
    # torch.tensor copies: pixel stores are read-only memory maps, which torch will not wrap.
    x = torch.tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.ndim == 3:  # N×H×W: one grey channel
        x = x[..., None]
    x = x.to(device=device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    c = x.shape[1]
    if c != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1) if c == 1 \
            else x[:, :channels]
    h, w = x.shape[2:]
    if (h, w) != (JUDGE_SIZE, JUDGE_SIZE):
        if h >= JUDGE_SIZE and w >= JUDGE_SIZE:
            x = F.interpolate(x, size=(JUDGE_SIZE, JUDGE_SIZE), mode="area")
        else:
            x = F.interpolate(x, size=(JUDGE_SIZE, JUDGE_SIZE), mode="bilinear", align_corners=False)
    return x.contiguous()


@torch.no_grad()
def embed(net: torch.nn.Module, images: np.ndarray, *, channels: int,
          device: torch.device | str = "cpu", batch_size: int = 1024) -> Embedding:
    """Run ``net`` (a :class:`datakit.judge.network.JudgeNet`) over ``images`` in batches.

    Pixels travel to the device one batch at a time, so memory stays bounded however
    many images there are (``images`` may be a memory-mapped pixel store).
    """
    net.eval()
    feats, logits, dlogits = [], [], []
    bar = progress(total=len(images), desc="judge embedding", unit="img")
    for i in range(0, len(images), batch_size):
        x = to_judge_input(np.asarray(images[i:i + batch_size]), channels, device)
        f, cl, dl = net(x)
        bar.update(len(x))
        feats.append(f.double().cpu().numpy())
        logits.append(cl.double().cpu().numpy())
        if dl is not None:
            dlogits.append(dl.double().cpu().numpy())
    bar.close()
    d = feats[0].shape[1] if feats else net.feature_dim
    k = logits[0].shape[1] if logits else net.num_classes
    return Embedding(np.concatenate(feats) if feats else np.zeros((0, d)),
                     np.concatenate(logits) if logits else np.zeros((0, k)),
                     (np.concatenate(dlogits) if dlogits else None) if net.num_domains > 1 else None)
