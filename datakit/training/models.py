"""The three GAN families, in one file: DCGAN, ACGAN and the projection cGAN.

All share one generator shape and one discriminator shape, so that comparisons between
them measure the conditioning and the loss, not the network size:

* ``dcgan``     unconditional; non-saturating BCE loss (Radford et al. 2016).
* ``acgan``     the noise is multiplied by a learned label embedding; the discriminator has a
                second head that classifies the class (logits + cross-entropy on real *and*
                fake, Odena et al. 2017). Multiplying rather than concatenating matters: with
                the embedding concatenated to z, the class loss drove our ACGAN to one image
                per class on MNIST (within-class pixel std 0.02 against 0.16 for real digits
                after 700 steps); multiplied, the noise cannot be ignored (0.155).
* ``cgan-proj`` class-conditional batch norm in the generator; the discriminator adds the
                inner product of a class embedding with its features ("projection",
                Miyato & Koyama 2018); spectral norm on every discriminator layer; hinge loss.

Image sizes 28 and 32 use two up/down-sampling stages (7×7 / 8×8 base), 64 uses three.
The discriminator has no batch norm: real and fake go through it as one concatenated
batch (one forward per step, which is also what DDP wants), and batch statistics shared
between real and fake would leak which is which.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

#: Up-sampling stages per supported image size.
STAGES = {28: 2, 32: 2, 64: 3}


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are looked up per class (cgan-proj's generator)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.zeros_(self.gain.weight)  # starts as plain batch norm: gain 1 + 0, bias 0
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return h * (1 + self.gain(y))[:, :, None, None] + self.bias(y)[:, :, None, None]


class Generator(nn.Module):
    """z (and a label) -> image in [-1, 1], N×C×H×W.

    Args:
        z_dim: noise length. channels: 1 or 3. image_size: 28, 32 or 64.
        width: channels of the last hidden layer (earlier layers double per stage).
        num_classes: 0 for an unconditional generator.
        conditioning: ``none``, ``embed`` (z times a label embedding: acgan) or
            ``cbn`` (class-conditional batch norm: cgan-proj).
    """

    def __init__(self, z_dim: int, channels: int, image_size: int, width: int,
                 num_classes: int = 0, conditioning: str = "none"):
        super().__init__()
        stages = STAGES[image_size]
        self.base = image_size // 2 ** stages
        self.c0 = width * 2 ** stages
        self.conditioning = conditioning
        if conditioning == "embed":
            self.embed = nn.Embedding(num_classes, z_dim)
        self.stem = nn.Linear(z_dim, self.c0 * self.base ** 2, bias=False)
        chans = [self.c0 // 2 ** i for i in range(stages + 1)]
        self.norms = nn.ModuleList([self._norm(c, num_classes) for c in chans])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False)
                                  for a, b in zip(chans[:-1], chans[1:])])
        self.to_image = nn.Conv2d(chans[-1], channels, 3, 1, 1)

    def _norm(self, c: int, num_classes: int) -> nn.Module:
        if self.conditioning == "cbn":
            return ConditionalBatchNorm2d(c, num_classes)
        return nn.BatchNorm2d(c)

    def _apply_norm(self, i: int, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.conditioning == "cbn":
            return F.relu(self.norms[i](h, y))
        return F.relu(self.norms[i](h))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditioning == "embed":
            z = z * self.embed(y)
        h = self.stem(z).view(-1, self.c0, self.base, self.base)
        h = self._apply_norm(0, h, y)
        for i, up in enumerate(self.ups, start=1):
            h = self._apply_norm(i, up(h), y)
        return torch.tanh(self.to_image(h))


class Discriminator(nn.Module):
    """Image (and label) -> (real/fake logit [N], class logits [N, K] or None).

    Args:
        head: ``plain`` (dcgan), ``aux`` (acgan: adds a class-logit head) or
            ``projection`` (cgan-proj: adds <embed(y), features>).
        spectral: wrap every layer in spectral norm (cgan-proj).
    """

    def __init__(self, channels: int, image_size: int, width: int, num_classes: int = 0,
                 head: str = "plain", spectral: bool = False):
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        stages = STAGES[image_size]
        layers = [sn(nn.Conv2d(channels, width, 3, 1, 1)), nn.LeakyReLU(0.2)]
        for i in range(stages):
            layers += [sn(nn.Conv2d(width * 2 ** i, width * 2 ** (i + 1), 4, 2, 1)),
                       nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        feat_dim = width * 2 ** stages * (image_size // 2 ** stages) ** 2
        self.head = head
        self.real_fake = sn(nn.Linear(feat_dim, 1))
        if head == "aux":
            self.classifier = nn.Linear(feat_dim, num_classes)
        elif head == "projection":
            self.embed = sn(nn.Embedding(num_classes, feat_dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(x).flatten(1)
        logit = self.real_fake(h).squeeze(1)
        if self.head == "aux":
            return logit, self.classifier(h)
        if self.head == "projection":
            return logit + (self.embed(y) * h).sum(dim=1), None
        return logit, None


def build_models(model: str, *, z_dim: int, channels: int, image_size: int, width: int,
                 num_classes: int) -> tuple[Generator, Discriminator]:
    """The generator and discriminator of a model family, freshly initialised."""
    if model == "dcgan":
        g = Generator(z_dim, channels, image_size, width)
        d = Discriminator(channels, image_size, width)
    elif model == "acgan":
        g = Generator(z_dim, channels, image_size, width, num_classes, "embed")
        d = Discriminator(channels, image_size, width, num_classes, head="aux")
    elif model == "cgan-proj":
        g = Generator(z_dim, channels, image_size, width, num_classes, "cbn")
        d = Discriminator(channels, image_size, width, num_classes, head="projection",
                          spectral=True)
    else:  # TrainConfig.validate names the valid ones first
        raise ValueError(model)
    g.apply(_dcgan_init)
    if model != "cgan-proj":  # spectral-norm layers keep PyTorch's default init
        d.apply(_dcgan_init)
    return g, d


def _dcgan_init(m: nn.Module) -> None:
    # DCGAN's N(0, 0.02) init keeps early D outputs near 0.5 and G outputs away from saturation.
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d) and m.affine:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def discriminator_loss(model: str, real_logit: torch.Tensor, fake_logit: torch.Tensor,
                       real_aux: torch.Tensor | None, fake_aux: torch.Tensor | None,
                       y_real: torch.Tensor, y_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss for one batch (float32 whatever the autocast dtype)."""
    real_logit, fake_logit = real_logit.float(), fake_logit.float()
    if model == "cgan-proj":  # hinge loss
        return F.relu(1 - real_logit).mean() + F.relu(1 + fake_logit).mean()
    loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
    if model == "acgan":  # the auxiliary classifier learns from real and fake (Odena et al.)
        loss = loss + F.cross_entropy(real_aux.float(), y_real) \
            + F.cross_entropy(fake_aux.float(), y_fake)
    return loss


def generator_loss(model: str, fake_logit: torch.Tensor, fake_aux: torch.Tensor | None,
                   y_fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss: non-saturating BCE (+ class CE for acgan) or hinge's -D(G(z))."""
    fake_logit = fake_logit.float()
    if model == "cgan-proj":
        return -fake_logit.mean()
    loss = F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
    if model == "acgan":
        loss = loss + F.cross_entropy(fake_aux.float(), y_fake)
    return loss
