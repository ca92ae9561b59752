"""The judge: a small CNN trained on a manifest's own real images, its feature space, and the
sample-quality metrics computed in it (``network``, ``features``, ``metrics``).

Shared by training's probe, the audit and label issues.
"""
