"""``AuditConfig``: every setting of an audit, typed, with its default in one place."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

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
    cas_epochs: int = 0                # 0 = auto (as the judge)
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
            d["judge"] = JudgeConfig(**d["judge"])
        return cls(**d)
