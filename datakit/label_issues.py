"""Label issues: rows whose label is most likely wrong (confident learning).

Method (Northcutt, Jiang & Chuang, "Confident Learning", JAIR 2021), implemented here
from the paper (cleanlab itself is AGPL; datakit is MIT):

1. Out-of-fold predicted probabilities ``P`` (N×K): the manifest is cut into ``folds``
   stratified folds; for each, the judge network (:mod:`datakit.judge.network`) is trained
   on the other folds and predicts the held-out one, so no row is scored by a network
   that saw its label. By default it trains on the plain images, about 150,000 image
   passes (:mod:`datakit.judge.out_of_fold`: ``augment="none"``), which leaves it sure of
   what it reads where that disagrees with a label; ``augment="jitter"`` rotates, zooms
   and shifts each training image on its own (the more accurate classifier, but unsure on
   the mislabelled rows); ``augment="judge"`` trains the audit's judge as is.
2. Per-class thresholds ``t_j``: the mean self-confidence ``P[i, j]`` of the rows
   labelled ``j`` (how sure the network typically is about a true ``j``).
3. The confident joint: row ``i`` (labelled ``y``) counts toward ``(y, j*)`` where
   ``j*`` is the most probable class among those with ``P[i, j] >= t_j``. Rows off the
   diagonal (``j* != y``) are the label-issue candidates.
4. Candidates are ranked by a label-quality score, lowest (most suspicious) first:
   ``self_confidence`` = ``P[i, y]``, or ``normalized_margin`` = ``P[i, y] - max_{k!=y} P[i, k]``
   mapped to [0, 1].

Only the rows of :func:`find_label_issues`' result table are reported: the candidates,
most likely wrong first; or, with ``top=K``, the K lowest-scored rows whatever the
thresholds say (a review list for a set that may have no candidates at all).
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datakit._core.atomic import temp_path
from datakit._core.device import resolve_device
from datakit._core.typecheck import MAX_SEED
from datakit._core.progress import progress
from datakit.errors import DatakitError, ManifestError, UnknownName
from datakit.manifest.model import Manifest

logger = logging.getLogger(__name__)

SCORES = ("self_confidence", "normalized_margin")
#: How the out-of-fold networks are trained (LabelIssuesConfig.augment).
AUGMENTS = ("none", "jitter", "judge")
#: The columns of the issues table (and CSV), in order.
COLUMNS = ["rank", "id", "row", "split", "label", "class_name", "predicted_label",
           "predicted_class_name", "score", "given_label_probability", "predicted_probability",
           "candidate"]


@dataclass
class LabelIssuesConfig:
    """Settings of a label-issue search (saved beside the result)."""

    folds: int = 4                 # out-of-fold rounds; each trains one judge on (folds-1)/folds
    score: str = "self_confidence"  # label-quality score ranking the candidates
    epochs: int = 0                # epochs per fold (0: the augment's own rule)
    width: int = 16                # judge width
    max_train_images: int = 30000  # judge training cap per fold (seeded sample)
    seed: int = 0
    device: str = "auto"
    top: int = 0                   # >0: report the K lowest-scored rows, candidates or not
    # none: plain images, epochs from out_of_fold.plain_epochs (20 on MNIST's test split);
    # jitter: per-image rotation/zoom/shift, the judge's epoch rule; judge: the audit judge's
    augment: str = "none"
    rotation: float = 10.0         # jitter: largest rotation, degrees
    shift: float = 2.0             # jitter: largest shift, pixels of the 32×32 judge input
    scale: float = 0.1             # jitter: largest zoom, 1 ± scale
    ensemble: int = 1              # out-of-fold rounds over other fold splits, probabilities averaged
    # Torch CPU threads while training (0: torch's default). The networks are small (batches
    # of 128 32×32 images): on the shared 2-core machine two threads spent ~4x the CPU time
    # of one for the same search (785 against ~190 CPU-s on MNIST's test split).
    threads: int = 1

    def validate(self) -> None:
        if self.score not in SCORES:
            raise UnknownName(f"Unknown label-quality score {self.score!r}; use one of: "
                              f"{', '.join(SCORES)}.")
        if not isinstance(self.folds, int) or self.folds < 2:
            raise DatakitError(f"--folds must be a whole number of at least 2 (got {self.folds!r}).")
        for name, low in (("epochs", 0), ("width", 1), ("max_train_images", 2), ("seed", 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise DatakitError(f"--{name.replace('_', '-')} must be a whole number of at "
                                   f"least {low} (got {v!r}).")
        if self.seed > MAX_SEED:
            raise DatakitError(f"--seed must be at most {MAX_SEED} (got {self.seed}).")
        if self.augment not in AUGMENTS:
            raise UnknownName(f"Unknown augment {self.augment!r}; use one of: {', '.join(AUGMENTS)}.")
        if not isinstance(self.ensemble, int) or self.ensemble < 1:
            raise DatakitError(f"--ensemble must be a whole number of at least 1 (got {self.ensemble!r}).")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise DatakitError(f"--threads must be 0 (torch's default) or more (got {self.threads!r}).")
        if not isinstance(self.top, int) or self.top < 0:
            raise DatakitError(f"--top must be a whole number of at least 0 (got {self.top!r}).")


@dataclass
class LabelIssues:
    """The result: the ranked candidate table and what produced it."""

    issues: pd.DataFrame                 # COLUMNS, most likely wrong first
    probabilities: np.ndarray            # N×K out-of-fold probabilities, table order
    thresholds: np.ndarray               # K per-class thresholds (nan: class without rows)
    confident_joint: np.ndarray          # K×K counts, rows = given label, columns = j*
    classes: list[str]
    config: LabelIssuesConfig
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``datakit label-issues --json`` prints)."""
        return {"manifest": self.info.get("manifest"), "rows": int(len(self.probabilities)),
                "issues": int(len(self.issues)), "candidates": self.info.get("candidates"),
                "config": asdict(self.config),
                "out_of_fold_accuracy": self.info.get("out_of_fold_accuracy"),
                "thresholds": {c: (None if np.isnan(t) else round(float(t), 6))
                               for c, t in zip(self.classes, self.thresholds)},
                "top": self.issues.head(10).to_dict(orient="records")}


# ---------------------------------------------------------------------------------------
# the pure part: probabilities -> issues (no torch)
# ---------------------------------------------------------------------------------------
def per_class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``t_j`` = mean of ``probs[i, j]`` over the rows labelled ``j`` (nan for absent classes)."""
    k = probs.shape[1]
    sums = np.zeros(k)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    counts = np.bincount(labels, minlength=k).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def confident_classes(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per row, the most probable class among those at or above their threshold (-1: none)."""
    t = np.where(np.isnan(thresholds), np.inf, thresholds)
    above = probs >= t[None, :]
    masked = np.where(above, probs, -np.inf)
    best = masked.argmax(1)
    return np.where(above.any(1), best, -1)


def confident_joint(labels: np.ndarray, confident: np.ndarray, k: int) -> np.ndarray:
    """K×K counts of (given label, confident class) over rows with a confident class."""
    keep = confident >= 0
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[keep], confident[keep]), 1)
    return joint


def label_quality(probs: np.ndarray, labels: np.ndarray, score: str = "self_confidence") -> np.ndarray:
    """Label-quality score per row in [0, 1]; low means the label is likely wrong."""
    given = probs[np.arange(len(labels)), labels]
    if score == "self_confidence":
        return given
    if score == "normalized_margin":
        others = probs.copy()
        others[np.arange(len(labels)), labels] = -np.inf
        return (given - others.max(1) + 1.0) / 2.0
    raise UnknownName(f"Unknown label-quality score {score!r}; use one of: {', '.join(SCORES)}.")


def rank_issues(probs: np.ndarray, labels: np.ndarray, score: str = "self_confidence"
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Confident learning on out-of-fold ``probs``.

    Returns ``(candidate rows ranked most-suspicious first, their scores, thresholds,
    confident joint)``. Candidates are the off-diagonal rows of the confident joint.
    """
    labels = np.asarray(labels, dtype=np.int64)
    thresholds = per_class_thresholds(probs, labels)
    confident = confident_classes(probs, thresholds)
    joint = confident_joint(labels, confident, probs.shape[1])
    quality = label_quality(probs, labels, score)
    cand = np.flatnonzero((confident >= 0) & (confident != labels))
    order = cand[np.lexsort((cand, quality[cand]))]  # low score first; ties by row
    return order, quality[order], thresholds, joint


def lowest_scored(quality: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` rows with the lowest label-quality score, lowest first (ties by row).

    Unlike the candidates of :func:`rank_issues` this ignores the thresholds: on a clean
    set it still gives a reviewer the rows the model doubts most.
    """
    return np.lexsort((np.arange(len(quality)), quality))[:max(0, int(k))]


# ---------------------------------------------------------------------------------------
# out-of-fold probabilities from the judge network
# ---------------------------------------------------------------------------------------
def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per row: each class is shuffled and dealt round-robin over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for lab in np.unique(labels):
        rows = np.flatnonzero(labels == lab)
        rows = rows[rng.permutation(len(rows))]
        fold[rows] = (np.arange(len(rows)) + int(rng.integers(folds))) % folds
    return fold


def out_of_fold_probabilities(images: np.ndarray, labels: np.ndarray, classes: list[str],
                              config: LabelIssuesConfig) -> np.ndarray:
    """N×K softmax probabilities, each row predicted by a judge trained without its fold.

    With ``config.ensemble = E`` the out-of-fold round runs E times, round ``r`` exactly as a
    single round at seed ``config.seed + r`` (its own fold split and networks), and the
    rounds' probabilities are averaged.
    """
    from scipy.special import softmax

    import torch

    rounds = [(r, f) for r in range(config.ensemble) for f in range(config.folds)]
    splits = [stratified_folds(labels, config.folds, config.seed + r) for r in range(config.ensemble)]
    probs = np.zeros((config.ensemble, len(labels), len(classes)))
    threads = torch.get_num_threads()
    if config.threads > 0:  # on a shared machine one thread wastes the least CPU time
        torch.set_num_threads(config.threads)
    try:
        for r, f in progress(rounds, desc="label-issues folds", unit="fold"):
            fold = splits[r]
            held = np.flatnonzero(fold == f)
            train = np.flatnonzero(fold != f)
            logger.info("Round %d/%d, fold %d/%d: training on %d images", r + 1, config.ensemble,
                        f + 1, config.folds, len(train))
            probs[r, held] = softmax(fold_logits(images, labels, classes, train, held, config,
                                                 config.seed + r + f), axis=1)
    finally:
        torch.set_num_threads(threads)
    return probs.mean(0)


def fold_logits(images: np.ndarray, labels: np.ndarray, classes: list[str], train: np.ndarray,
                held: np.ndarray, config: LabelIssuesConfig, seed: int) -> np.ndarray:
    """Class logits of the ``held`` rows from a network trained on the ``train`` rows."""
    # The networks need PyTorch; reading and writing issue CSVs (``stats --html``) does not.
    from datakit._core.device import resolve_device
    from datakit.judge.network import Judge, JudgeConfig
    from datakit.judge.out_of_fold import class_logits, plain_epochs, train_fold_net

    if config.augment == "judge":
        judge_cfg = JudgeConfig(width=config.width, epochs=config.epochs,
                                max_train_images=config.max_train_images, seed=seed,
                                device=config.device)
        return Judge(judge_cfg).fit(images[train], labels[train], classes).embed(images[held]).class_logits
    if len(train) > config.max_train_images:  # the same seeded cap as the judge's
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(train, config.max_train_images, replace=False))
    device = resolve_device(config.device)
    if config.augment == "none":  # the plain images, for longer than the judge's rule
        net = train_fold_net(images[train], labels[train], len(classes), width=config.width,
                             epochs=config.epochs or plain_epochs(len(train)), rotation=0.0,
                             shift=0.0, scale=0.0, seed=seed, device=device)
        return class_logits(net, images[held], device)
    net = train_fold_net(images[train], labels[train], len(classes), width=config.width,
                         epochs=config.epochs, rotation=config.rotation, shift=config.shift,
                         scale=config.scale, seed=seed, device=device)
    return class_logits(net, images[held], device)


def find_label_issues(manifest: Manifest, config: LabelIssuesConfig | None = None, *,
                      probabilities: np.ndarray | None = None) -> LabelIssues:
    """Rank ``manifest``'s rows whose label is most likely wrong (confident learning).

    Args:
        manifest: an opened manifest (all its rows are scored, whatever their split).
        config: folds, score and judge settings.
        probabilities: precomputed out-of-fold N×K probabilities (table order), e.g. from
            another model; skips the judge training.

    Returns a :class:`LabelIssues` whose ``issues`` table has :data:`COLUMNS`.
    """
    config = config or LabelIssuesConfig()
    config.validate()
    if probabilities is None:
        resolve_device(config.device)  # a GPU that is not there: refused before any work
    table = manifest.table.reset_index(drop=True)
    classes = manifest.vocabulary
    labels = table["label"].to_numpy(dtype=np.int64)
    counts = np.bincount(labels, minlength=len(classes))
    if len(table) < 2 * config.folds or (counts[counts > 0] < 2).any():
        raise ManifestError(
            f"Manifest {manifest.path.name} is too small for {config.folds}-fold label-issue "
            "search: it needs at least two images per class and two per fold. Use fewer "
            "--folds or a larger manifest.")
    if probabilities is None:
        # Every pixel is read: each row is checked against its sha256 on the way.
        images = manifest.checked_images(np.arange(len(table)))
        probabilities = out_of_fold_probabilities(images, labels, classes, config)
    order, scores, thresholds, joint = rank_issues(probabilities, labels, config.score)
    candidate = np.zeros(len(labels), dtype=bool)
    candidate[order] = True
    if config.top:
        quality = label_quality(probabilities, labels, config.score)
        order = lowest_scored(quality, config.top)
        scores = quality[order]
    predicted = probabilities[order].argmax(1)
    vocab = np.asarray(classes, dtype=object)
    issues = pd.DataFrame({
        "rank": np.arange(1, len(order) + 1), "id": table["id"].to_numpy()[order],
        "row": table["row"].to_numpy()[order], "split": table["split"].astype(str).to_numpy()[order],
        "label": labels[order], "class_name": table["class_name"].astype(str).to_numpy()[order],
        "predicted_label": predicted, "predicted_class_name": vocab[predicted],
        "score": np.round(scores, 6),
        "given_label_probability": np.round(probabilities[order, labels[order]], 6),
        "predicted_probability": np.round(probabilities[order, predicted], 6),
        "candidate": candidate[order]})
    info = {"manifest": str(manifest.path), "manifest_checksum": manifest.checksum,
            "out_of_fold_accuracy": float((probabilities.argmax(1) == labels).mean()),
            "candidates": int(candidate.sum())}
    return LabelIssues(issues, probabilities, thresholds, joint, list(classes), config, info)


def write_issues_csv(result: LabelIssues, path: str | os.PathLike) -> str:
    """Write the ranked issues table as CSV (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_path(path) as tmp:
        result.issues.to_csv(tmp, index=False)
    return str(path)


def write_probabilities(result: LabelIssues, path: str | os.PathLike) -> str:
    """Save the N×K out-of-fold probabilities as ``.npy`` (atomically); returns the path.

    Row ``i`` is the manifest table's ``i``-th row (table order, not the ``row`` column of
    the issues CSV), column ``j`` the class ``result.classes[j]``: the ``pred_probs`` that
    cleanlab's ``find_label_issues(labels, pred_probs)`` takes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(result.probabilities, dtype=np.float64))
    return str(path)


def read_issues_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV written by :func:`write_issues_csv` (checks the required columns)."""
    try:
        table = pd.read_csv(path, dtype={"class_name": str, "predicted_class_name": str, "id": str})
    except (OSError, ValueError) as e:
        raise ManifestError(f"Label-issues file {path} cannot be read ({e}). Write it with "
                            "`datakit label-issues MANIFEST --out issues.csv`.") from e
    required = ["id", "row", "label", "class_name", "predicted_class_name", "score"]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ManifestError(f"Label-issues file {path} lacks the columns {', '.join(missing)}; "
                            "write it with `datakit label-issues MANIFEST --out issues.csv`.")
    return table


def check_issues_belong(manifest: Manifest, issues: pd.DataFrame) -> None:
    """Raise ManifestError unless every issue row's ``id`` and ``row`` are ``manifest``'s."""
    known = dict(zip(manifest.table["id"].astype(str), manifest.table["row"].to_numpy()))
    ids = issues["id"].astype(str)
    if not ids.isin(known).all() or any(known[i] != r for i, r in zip(ids, issues["row"])):
        raise ManifestError(f"The label-issues file does not belong to {manifest.path}: its ids "
                            "or rows are not this manifest's. Run `datakit label-issues` on it first.")
