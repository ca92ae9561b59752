"""Per-class quality and the mode-collapse verdict.

For each class: intra-class Fréchet distance, label fidelity (conditional runs: does the
judge read a generated "7" as 7), diversity (mean pairwise feature distance of generated
samples relative to real ones), coverage, and a collapse verdict with the evidence behind
it, each next to its real-vs-real floor (held-out real images of the class in the place
of generated ones).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from datakit.audit import metrics


@dataclass
class CollapseRule:
    """A class is collapsed when its generated samples are this much less diverse than real ones."""

    max_diversity_ratio: float = 0.5   # generated / real mean pairwise distance below this
    max_close_pair_share: float = 0.5  # or more than this share of pairs closer than a real NN radius


def close_pair_share(features: np.ndarray, radius: float, max_samples: int = 2000, seed: int = 0) -> float:
    """Share of distinct sample pairs within ``radius`` of each other (``<=``, as the PRDC balls).

    Only pairs of two different samples count, so the share lies in [0, 1] for any
    radius; with a radius of 0 (a real class with duplicate images) exact copies among
    the samples still count as close. NaN with fewer than two samples or no radius.
    """
    d = metrics.pairwise_distances(features, max_samples=max_samples, seed=seed)
    if d is None or not np.isfinite(radius):
        return float("nan")
    i, j = torch.triu_indices(len(d), len(d), offset=1)
    return float((d[i, j] <= radius).double().mean())


def collapse_verdict(class_name: str, generated_count: int, diversity_ratio: float,
                     close_share: float, rule: CollapseRule) -> tuple[bool, str]:
    """Decide collapse for one class and say why, in one sentence."""
    if generated_count == 0:
        return True, f"class {class_name}: no generated sample belongs to this class (mode dropped)."
    if generated_count == 1:
        return True, f"class {class_name}: a single generated sample, so no variety at all."
    collapsed = bool(diversity_ratio < rule.max_diversity_ratio or close_share > rule.max_close_pair_share)
    return collapsed, (
        f"class {class_name}: diversity {diversity_ratio:.2f} of real, {close_share:.0%} of "
        f"generated pairs within one real-image nearest-neighbour radius of each other "
        f"({generated_count} samples) -> {'collapsed' if collapsed else 'not collapsed'} "
        f"(thresholds: diversity < {rule.max_diversity_ratio:g} or pairs > {rule.max_close_pair_share:.0%}).")


def _fd_or_nan(real: np.ndarray, fake: np.ndarray) -> float:
    return metrics.fd(real, fake) if len(real) >= 2 and len(fake) >= 2 else float("nan")


def _coverage_or_nan(real: np.ndarray, fake: np.ndarray, k: int, radii: np.ndarray | None) -> float:
    if radii is None or len(fake) == 0:
        return float("nan")
    rel = metrics.neighbour_relations(real, fake, k=k, real_radii=radii, with_fake_radii=False)
    return metrics.coverage(rel)


def class_report(class_name: str, label: int, reference: np.ndarray, held: np.ndarray,
                 generated: np.ndarray, *, k: int = 5, rule: CollapseRule | None = None,
                 seed: int = 0) -> dict:
    """All per-class metrics for one class from its three feature sets.

    Args:
        reference: training-image features of the class (the judge's reference).
        held: held-out real features of the class (gives the floors).
        generated: features of generated samples assigned to the class.
    """
    rule = rule or CollapseRule()
    real_div = metrics.mean_pairwise_distance(reference, seed=seed)
    div = metrics.mean_pairwise_distance(generated, seed=seed) / real_div if real_div > 0 else float("nan")
    div_floor = metrics.mean_pairwise_distance(held, seed=seed) / real_div if real_div > 0 else float("nan")
    # "one real-image nearest-neighbour radius": the median 1-NN distance among real samples.
    nn = metrics.neighbour_distances(reference, min(k, len(reference) - 1)) if len(reference) > 1 else None
    radius = float(np.median(nn[:, 0])) if nn is not None else float("nan")
    radii = nn[:, k - 1] if nn is not None and nn.shape[1] == k else None
    close = close_pair_share(generated, radius, seed=seed)
    collapsed, evidence = collapse_verdict(class_name, len(generated), div, close, rule)
    return {
        "class_name": class_name, "label": int(label),
        "reference_count": int(len(reference)), "held_out_count": int(len(held)),
        "generated_count": int(len(generated)),
        "fd": _fd_or_nan(reference, generated), "fd_floor": _fd_or_nan(reference, held),
        "diversity_ratio": div, "diversity_floor": div_floor,
        "close_pair_share": close, "close_pair_share_floor": close_pair_share(held, radius, seed=seed),
        "coverage": _coverage_or_nan(reference, generated, k, radii),
        "coverage_floor": _coverage_or_nan(reference, held, k, radii),
        "collapsed": collapsed, "collapse_evidence": evidence,
    }


def label_fidelity(assigned: np.ndarray, predicted: np.ndarray, label: int) -> float:
    """Share of samples generated for ``label`` that the judge reads as ``label``."""
    m = np.asarray(assigned) == label
    return float((np.asarray(predicted)[m] == label).mean()) if m.any() else float("nan")
