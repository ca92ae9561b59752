"""``TrainConfig``: every setting of a training run, typed, with its default in one place.

The CLI options of ``datakit train`` map one to one onto these fields; the resolved config is
saved as ``config.json`` in every run directory so that the audit knows how a run was made.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from datakit._core.typecheck import MAX_SEED
from datakit.errors import TrainingError

MODELS = ("dcgan", "acgan", "cgan-proj")
CONDITIONAL_MODELS = ("acgan", "cgan-proj")
AUGMENTS = ("none", "diffaugment")
LABEL_DISTS = ("uniform", "train")
DEVICES = ("auto", "cpu", "cuda")
#: ``auto``: bf16 autocast on CUDA, float32 on the CPU (see datakit.training.accel).
PRECISIONS = ("auto", "bf16", "fp32")
#: ``auto``: torch.compile's default mode on CUDA where it works, off on the CPU.
COMPILE_MODES = ("auto", "off", "default", "reduce-overhead")
IMAGE_SIZES = (28, 32, 64)
CHANNELS = (1, 3)
# The defaults (width 16, lr 1e-3) were chosen by bench/ttq: docs/training.md has the measurements.
#: Settings whose 0 means "auto": the device chooses the batch (64 on the CPU, 256 on CUDA), and
#: a learning rate left at 0 follows the batch (datakit.training.accel.resolve_batch).
AUTO_SETTINGS = ("batch_size", "lr_g", "lr_d")
#: Length of a run when neither ``steps`` nor ``epochs`` is given.
DEFAULT_STEPS = 2000


@dataclass
class TrainConfig:
    """Settings of one GAN training run (``datakit train``).

    Attributes:
        manifest: the training manifest (``.parquet``; its ``train`` split is used if present).
        out: the run directory to write.
        model: ``dcgan`` (unconditional), ``acgan`` (auxiliary classifier) or ``cgan-proj``
            (projection discriminator with spectral norm and hinge loss).
        steps: number of optimisation steps (exclusive with ``epochs``).
        epochs: passes over the training rows (``steps = ceil(epochs * rows / batch_size)``).
        batch_size: real images per step, summed over all processes under DDP. 0 (the
            default): auto, 256 on CUDA and 64 elsewhere.
        lr_g, lr_d: Adam learning rates of the generator and the discriminator. 0 (the
            default): auto, 1e-3 × √(batch_size / 64) and never under 1e-3, so 1e-3 at batch 64
            (and below) and 2e-3 at 256.
            config.json records the resolved batch and rates (a resumed run keeps them).
        beta1, beta2: Adam betas (shared).
        seed: seeds weights, batch sampling, noise, augmentation and the sample grids.
        z_dim: length of the noise vector.
        width: channel multiplier of both networks (the narrowest layer has ``width`` channels).
        augment: ``none`` or ``diffaugment`` (colour, translation, cutout on real and fake alike).
        ema: keep an exponential moving average of the generator and sample from it.
        ema_decay: the EMA's decay per step (ramped up as min(decay, (1 + step) / (10 + step))).
        label_dist: how a conditional generator's labels are drawn in training:
            ``uniform`` over classes, or ``train`` (the training set's class shares).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, float32 on the CPU), ``bf16`` (autocast
            to bfloat16 on whatever device: on the CPU this runs the very code of the CUDA
            path: autocast, fused Adam, the finite check every ``log_every`` steps) or
            ``fp32``. Losses are computed in float32 either way.
        compile: ``auto`` (torch.compile on CUDA where it works, off on the CPU), ``off``,
            ``default`` or ``reduce-overhead`` (torch.compile's modes; the latter adds CUDA
            graphs). Where torch.compile cannot run, the run logs why and trains eagerly.
        sync_batchnorm: under DDP, synchronise the generator's batch-norm statistics over
            all processes (a batch of 64 over 8 GPUs is otherwise 8 images per batch norm).
            CUDA only: PyTorch's SyncBatchNorm does not run on the CPU.
        sample_every: write a fixed-noise grid every this many steps (and at the end).
        log_every: append a metrics.csv row every this many steps (and at the end).
        n_generate: images in generated.npz (per class for conditional models; with
            label_dist "train" the n_generate × classes images follow the training shares).
        checkpoint_every: write checkpoints/last.pt every this many steps (and at the end).
        resume: continue the run in ``out`` from checkpoints/last.pt.
        probe_every: every this many steps, read ``probe_samples`` generated images with a
            small judge and log ``probe_label_fidelity`` / ``probe_fd`` (0: no probe).
        probe_samples: images per probe.
        plateau_patience: stop when this many probes in a row have not improved on the best
            (0: never stop early; needs ``probe_every``).
        plateau_tolerance: the relative improvement a probe must make to count (0.01 = 1%).
    """

    manifest: str
    out: str
    model: str = "acgan"
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 0
    lr_g: float = 0.0
    lr_d: float = 0.0
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    z_dim: int = 100
    width: int = 16
    augment: str = "none"
    ema: bool = False
    ema_decay: float = 0.999
    label_dist: str = "uniform"
    device: str = "auto"
    precision: str = "auto"
    compile: str = "auto"
    sync_batchnorm: bool = False
    sample_every: int = 500
    log_every: int = 50
    n_generate: int = 1000
    checkpoint_every: int = 500
    resume: bool = False
    probe_every: int = 0
    probe_samples: int = 300
    plateau_patience: int = 0
    plateau_tolerance: float = 0.01

    @property
    def conditional(self) -> bool:
        """True for models that take a class label."""
        return self.model in CONDITIONAL_MODELS

    def validate(self) -> None:
        """Raise :class:`TrainingError` with a sentence for the first bad setting."""
        _choice("--model", self.model, MODELS)
        _choice("--augment", self.augment, AUGMENTS)
        _choice("--label-dist", self.label_dist, LABEL_DISTS)
        _choice("--device", self.device, DEVICES)
        _choice("--precision", self.precision, PRECISIONS)
        _choice("--compile", self.compile, COMPILE_MODES)
        if self.steps is not None and self.epochs is not None:
            raise TrainingError("Give either --steps or --epochs, not both.")
        if self.steps is not None and self.steps < 1:
            raise TrainingError(f"--steps must be at least 1, got {self.steps}.")
        if self.epochs is not None and not self.epochs > 0:
            raise TrainingError(f"--epochs must be positive, got {self.epochs}.")
        if self.batch_size < 0:
            raise TrainingError(f"--batch-size must be 0 (auto) or more, got {self.batch_size}.")
        for name in ("z_dim", "width", "sample_every", "log_every", "n_generate",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, "
                                    f"got {getattr(self, name)}.")
        _check_probe(self)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) \
                or not 0 <= self.seed <= MAX_SEED:
            raise TrainingError(f"--seed must be a whole number from 0 to {MAX_SEED}, "
                                f"got {self.seed!r}.")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise TrainingError(f"--{name.replace('_', '-')} must be 0 (auto) or positive, "
                                    f"got {getattr(self, name)}.")
        for name in ("beta1", "beta2", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be in [0, 1), "
                                    f"got {getattr(self, name)}.")

    def total_steps(self, train_rows: int) -> int:
        """The run's length in steps, from ``steps`` or ``epochs`` (default :data:`DEFAULT_STEPS`).

        With ``epochs``, the batch must be resolved first (an auto batch has no size yet)."""
        if self.steps is not None:
            return int(self.steps)
        if self.epochs is not None:
            if self.batch_size < 1:
                raise ValueError("total_steps() with epochs needs a resolved batch_size, got "
                                 f"{self.batch_size}; see datakit.training.accel.resolve_batch.")
            return max(1, math.ceil(self.epochs * train_rows / self.batch_size))
        return DEFAULT_STEPS

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild a config from ``config.json`` (extra keys such as ``versions`` are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _check_probe(cfg: TrainConfig) -> None:
    for name in ("probe_every", "plateau_patience"):
        if getattr(cfg, name) < 0:
            raise TrainingError(f"--{name.replace('_', '-')} must be 0 (off) or more, "
                                f"got {getattr(cfg, name)}.")
    if cfg.probe_samples < 10:
        raise TrainingError(f"--probe-samples must be at least 10, got {cfg.probe_samples}.")
    if not cfg.plateau_tolerance >= 0:
        raise TrainingError(f"--plateau-tolerance must be 0 or more, got {cfg.plateau_tolerance}.")
    if cfg.plateau_patience and not cfg.probe_every:
        raise TrainingError("--plateau-patience needs --probe-every N: the plateau is read from "
                            "the probe.")


def _choice(option: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise TrainingError(f"Unknown {option} {value!r}; use one of {', '.join(valid)}.")
