"""GAN training: ``train(TrainConfig)`` writes a run directory; ``sample(run_dir, n)`` draws more.

See DESIGN.md for the run-directory contract the audit reads.
"""
from datakit.train.config import TrainConfig
from datakit.train.loop import train
from datakit.train.sampling import sample

__all__ = ["TrainConfig", "train", "sample"]
