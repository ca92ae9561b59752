"""``AuditConfig``: every setting of an audit, typed, with its default in one place."""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from datakit._core.typecheck import MAX_SEED, check_types, dataclass_hints
from datakit.errors import DatakitError
from datakit.judge import metrics
from datakit.judge.network import JudgeConfig


@dataclass
class AuditConfig:
    """Settings of one audit; saved into audit.json."""

    k: int = 5                         # k of the k-NN balls (precision/recall/density/coverage)
    max_reference: int = 10000         # training images used as the reference (seeded sample)
    max_generated: int = 10000         # generated samples audited (seeded sample)
    kid_subset_size: int = 1000
    kid_subsets: int = 50
    bootstrap: int = 100               # bootstrap replicates (FD interval, per-class floor tests)
    min_class_n: int = 30              # per side: fewer images and a class is not failed against floors
    collapse_max_diversity_ratio: float = 0.5
    collapse_max_close_pair_share: float = 0.5
    memorisation_quantile: float = 0.01
    ct_cells: int = 5                  # k-means cells per class for C_T
    ct_cells_whole: int = 20           # cells for the whole-set C_T
    cas: bool = True                   # train the classification-accuracy-score classifier
    cas_epochs: int = 0                # 0 = auto (~50,000 image passes, 2-10 epochs: stats.cas)
    min_density_samples: int = 1000    # below this, per-class coverage gets a warning
    seed: int = 0
    device: str = "auto"
    threads: int = 0                   # torch CPU threads during the audit (0: torch's default);
                                       # 1 is much faster on a machine shared with other jobs
    use_cache: bool = True             # reuse a cached judge for the same manifest
    judge_manifest: str | None = None  # train the judge on this manifest instead of the run's
                                       # own, so several runs are measured with one ruler
    reference_manifest: str | None = None  # real images quality is measured against: its
                                       # training split (reference) and held-out split (floors);
                                       # None = the run's own manifest. Memorisation and shares
                                       # always use the run's own training set.
    chunk_elems: int = metrics.DEFAULT_CHUNK_ELEMS
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`DatakitError` with a sentence for the first bad setting (checked when
        the config is made, so a study refuses it before any ingest or training)."""
        _at_least(self, {"k": 1, "max_reference": 2, "max_generated": 2, "kid_subset_size": 1,
                         "kid_subsets": 1, "bootstrap": 1, "min_class_n": 1, "ct_cells": 1,
                         "ct_cells_whole": 1, "cas_epochs": 0, "min_density_samples": 0,
                         "threads": 0, "chunk_elems": 1, "seed": 0}, "audit")
        _share(self, ("collapse_max_diversity_ratio", "collapse_max_close_pair_share"), "audit",
               low_open=False)
        _share(self, ("memorisation_quantile",), "audit", low_open=True)
        _seed(self.seed, "audit")
        _device(self.device, "audit")
        if not isinstance(self.judge, JudgeConfig):
            raise DatakitError(f"The audit setting judge must be a table of judge settings, "
                               f"got {self.judge!r}.")
        j = self.judge
        _at_least(j, {"feature_dim": 1, "width": 1, "epochs": 0, "batch_size": 1,
                      "max_train_images": 2, "seed": 0}, "judge")
        _share(j, ("held_out_share",), "judge", low_open=True, high_open=True)
        _share(j, ("min_accuracy",), "judge", low_open=False)
        if not (isinstance(j.lr, numbers.Real) and math.isfinite(j.lr) and j.lr > 0):
            raise DatakitError(f"The judge setting lr must be a positive number, got {j.lr!r}.")
        _seed(j.seed, "judge")
        _device(j.device, "judge")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DatakitError(f"Unknown audit setting(s) {', '.join(unknown)}; "
                               f"valid settings: {', '.join(sorted(known))}.")
        d = dict(d)
        if isinstance(d.get("judge"), dict):
            d["judge"] = judge_from_dict(d["judge"])
        return cls(**d)


def judge_from_dict(d: dict[str, Any]) -> JudgeConfig:
    """A :class:`JudgeConfig` from a table of judge settings, unknown keys and wrong types
    refused with a sentence (not a TypeError)."""
    known = {f.name for f in fields(JudgeConfig)}
    unknown = sorted(map(str, set(d) - known))
    if unknown:
        raise DatakitError(f"Unknown judge setting(s) {', '.join(unknown)}; valid settings: "
                           f"{', '.join(sorted(known))}.")
    check_types(d, dataclass_hints(JudgeConfig), "judge", DatakitError)
    return JudgeConfig(**d)


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _at_least(obj: Any, minima: dict[str, int], what: str) -> None:
    for name, low in minima.items():
        v = getattr(obj, name)
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
            raise DatakitError(f"The {what} setting {name} must be a whole number of at least "
                               f"{low}, got {v!r}.")


def _share(obj: Any, names: tuple[str, ...], what: str, *, low_open: bool,
           high_open: bool = False) -> None:
    for name in names:
        v = getattr(obj, name)
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) \
            and (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)
        if not ok:
            span = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
            raise DatakitError(f"The {what} setting {name} must lie in {span}, got {v!r}.")


def _seed(v: int, what: str) -> None:
    if v > MAX_SEED:
        raise DatakitError(f"The {what} setting seed must be at most {MAX_SEED}, got {v}.")


def _device(v: Any, what: str) -> None:
    if not isinstance(v, str) or not _DEVICE.fullmatch(v):
        raise DatakitError(f"The {what} setting device must be auto, cpu or cuda[:N], got {v!r}.")
