"""GAN training: ``train(TrainConfig)`` writes a run directory; ``sample(run_dir, n)`` draws more.

See DESIGN.md for the run-directory contract the audit reads. ``train`` and ``sample`` are
imported on first use, so reading :class:`TrainConfig` (as the CLI does) does not load torch.
"""
from datakit.training.config import TrainConfig

__all__ = ["TrainConfig", "train", "sample"]


def __getattr__(name: str):
    if name == "train":
        from datakit.training.loop import train
        return train
    if name == "sample":
        from datakit.training.sampling import sample
        return sample
    raise AttributeError(f"module 'datakit.training' has no attribute {name!r}")
