"""Known-answer validation: controlled "generators" built from real digits whose truth is known.

One judge is trained per session (cached under a session-wide DATAKIT_CACHE). The
"fresh" pool holds real digits that are in neither split of the manifest, so they play a
perfect generator that never saw the training set.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from datakit.audit import AuditConfig, audit_run, judge_for_manifest
from datakit.judge import metrics
from datakit.judge.network import Judge, split_real
from datakit.manifest.model import Manifest
from datakit.manifest.write import write_manifest
from datakit.sources.common import build_table
from datakit.sources.digits import load_digits_arrays

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(cas=False, bootstrap=10, kid_subsets=10)


@dataclass
class World:
    manifest: Manifest
    judge: Judge
    train_images: np.ndarray
    train_labels: np.ndarray
    fresh_images: np.ndarray
    fresh_labels: np.ndarray


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    mp = pytest.MonkeyPatch()
    mp.setenv("DATAKIT_CACHE", str(tmp_path_factory.mktemp("judge-cache")))
    pixels, labels = load_digits_arrays(32)
    order = np.random.default_rng(0).permutation(len(pixels))
    fresh, test, train = order[:300], order[300:600], order[600:]
    keep = np.concatenate([train, test])
    records = [{"id": f"d/{i}", "dataset": "digits", "subset": "digits",
                "split": "test" if n >= len(train) else "train", "domain": "handwritten",
                "label": int(labels[i]), "class_name": str(labels[i]), "source": f"digits[{i}]",
                "orig_width": 8, "orig_height": 8, "orig_mode": "L"} for n, i in enumerate(keep)]
    out = tmp_path_factory.mktemp("audit-manifest")
    m = write_manifest(out / "digits-audit.parquet", build_table(records, pixels[keep]), pixels[keep],
                       {"command": "test"}, classes=[str(d) for d in range(10)])
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see _one_torch_thread; this session fixture is set up before it
    judge = judge_for_manifest(m)
    torch.set_num_threads(threads)
    yield World(m, judge, pixels[train], labels[train], pixels[fresh], labels[fresh])
    mp.undo()


def make_run(path: Path, manifest: Manifest, images: np.ndarray, labels: np.ndarray,
             conditional: bool = True) -> Path:
    """A run directory as `datakit train` writes it, with our controlled samples."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({
        "manifest": str(manifest.path), "manifest_checksum": manifest.checksum,
        "model": "acgan" if conditional else "dcgan", "conditional": conditional}))
    np.savez(path / "generated.npz", images=images,
             labels=labels if conditional else np.full(len(images), -1, np.int64))
    return path


def _reference(world: World) -> np.ndarray:
    return world.judge.embed(world.train_images).features


def test_judge_is_accurate_and_cached(world):
    assert world.judge.info["held_out_accuracy"] > 0.95
    again = judge_for_manifest(world.manifest)
    assert "cached" in again.info
    np.testing.assert_allclose(again.embed(world.fresh_images[:20]).features,
                               world.judge.embed(world.fresh_images[:20]).features, rtol=1e-6)


def test_fresh_real_images_score_near_ideal(world, tmp_path):
    run = make_run(tmp_path / "run", world.manifest, world.fresh_images, world.fresh_labels)
    a = audit_run(run, AuditConfig(**FAST))
    s = a["summary"]
    assert s["precision"]["value"] > 0.9 and s["recall"]["value"] > 0.9
    assert 0.8 < s["density"]["value"] < 1.25
    assert s["label_fidelity"]["value"] > 0.95
    # FD, KID, coverage depend on sample size: compare with the real-vs-real floor (another
    # 300 unseen real images), allowing for sampling noise at this size.
    assert s["fd"]["value"] < 2 * s["fd"]["floor"]
    assert abs(s["coverage"]["value"] - s["coverage"]["floor"]) < 0.1
    assert not any(c["collapsed"] for c in a["per_class"])
    assert a["memorisation"]["flagged_share"] <= 0.05 and a["memorisation"]["exact_copies"] == 0
    assert abs(a["memorisation"]["ct"]["value"]) < 3
    assert a["amplification"]["classes"]["divergence"]["tv"] < 0.1


def test_fresh_vs_train_at_equal_size_has_high_coverage(world):
    ref = _reference(world)[:300]
    q = metrics.prdc(ref, world.judge.embed(world.fresh_images).features, k=5)
    assert q["coverage"] > 0.85 and q["precision"] > 0.85


def _noisy(images, sigma, rng):
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).astype(np.uint8)


def _blurred(images, radius):
    if radius == 0:
        return images
    return np.stack([np.asarray(Image.fromarray(im[..., 0]).filter(ImageFilter.GaussianBlur(radius)))
                     for im in images])[..., None]


@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_growing_corruption_raises_fd_kid_and_lowers_precision_density(world, kind):
    ref = _reference(world)
    rng = np.random.default_rng(0)
    # digits are upsampled from 8×8, so blur below ~1 pixel changes nothing measurable
    levels = [0, 30, 60, 120] if kind == "noise" else [0, 1.2, 2.0, 3.0]
    fds, kids, precs, dens = [], [], [], []
    for lv in levels:
        imgs = _noisy(world.fresh_images, lv, rng) if kind == "noise" else _blurred(world.fresh_images, lv)
        f = world.judge.embed(imgs).features
        fds.append(metrics.fd(ref, f))
        kids.append(metrics.kid(ref, f, subsets=20)["value"])
        q = metrics.prdc(ref, f, k=5)
        precs.append(q["precision"])
        dens.append(q["density"])
    assert all(np.diff(fds) > 0), fds
    assert all(np.diff(kids) > 0), kids
    assert all(np.diff(precs) <= 0) and precs[-1] < precs[0] - 0.2, precs
    assert all(np.diff(dens) <= 0) and dens[-1] < dens[0] - 0.2, dens


def test_one_class_of_copies_collapses_only_that_class(world, tmp_path):
    images, labels = world.fresh_images.copy(), world.fresh_labels.copy()
    threes = np.flatnonzero(labels == 3)
    images[threes] = images[threes[0]]
    a = audit_run(make_run(tmp_path / "run", world.manifest, images, labels), AuditConfig(**FAST))
    collapsed = {c["class_name"] for c in a["per_class"] if c["collapsed"]}
    assert collapsed == {"3"}
    three = next(c for c in a["per_class"] if c["class_name"] == "3")
    assert three["diversity_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert "class 3: diversity 0.00 of real, 100% of generated pairs" in three["collapse_evidence"]
    fails = [f for f in a["findings"] if f["severity"] == "fail" and f["check"] == "collapse"]
    assert [f["classes"] for f in fails] == [["3"]]
    assert fails[0]["sentence"].startswith("Class 3 collapsed: diversity 0.00 of real, 100% of generated pairs")


def test_swapped_labels_lower_fidelity_for_exactly_those_classes(world, tmp_path):
    labels = world.fresh_labels.copy()
    ones, sevens = labels == 1, labels == 7
    labels[ones], labels[sevens] = 7, 1
    a = audit_run(make_run(tmp_path / "run", world.manifest, world.fresh_images, labels),
                  AuditConfig(**FAST))
    fidelity = {c["class_name"]: c["label_fidelity"] for c in a["per_class"]}
    assert fidelity["1"] < 0.1 and fidelity["7"] < 0.1
    assert all(v > 0.85 for k, v in fidelity.items() if k not in ("1", "7")), fidelity


@pytest.mark.parametrize("conditional", [True, False])
def test_chosen_class_proportions_are_reported_as_amplification(world, tmp_path, conditional):
    chosen = np.array([0.3, 0.3, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    n = 400
    rng = np.random.default_rng(1)
    picks = np.concatenate([rng.choice(np.flatnonzero(world.train_labels == c), int(round(p * n)))
                            for c, p in enumerate(chosen)])
    a = audit_run(make_run(tmp_path / "run", world.manifest, world.train_images[picks],
                           world.train_labels[picks], conditional), AuditConfig(**FAST))
    train_share = np.bincount(world.train_labels, minlength=10) / len(world.train_labels)
    rows = a["amplification"]["classes"]["rows"]
    got_share = np.array([r["generated_share"] for r in rows])
    got_ratio = np.array([r["ratio"] for r in rows])
    if conditional:  # shares are counted from the labels: exact
        np.testing.assert_allclose(got_share, chosen, rtol=1e-9)
        np.testing.assert_allclose(got_ratio, chosen / train_share, rtol=1e-9)
    else:  # read by the judge: as exact as the judge is accurate
        assert a["amplification"]["classes"]["basis"] == "judge predictions"
        np.testing.assert_allclose(got_share, chosen, atol=0.02)
        np.testing.assert_allclose(got_ratio, chosen / train_share, rtol=0.15)
    tv = 0.5 * np.abs(chosen - train_share).sum()
    assert a["amplification"]["classes"]["divergence"]["tv"] == pytest.approx(tv, abs=0.02)


def test_copies_of_training_images_are_memorised_fresh_are_not(world, tmp_path):
    idx = np.random.default_rng(2).choice(len(world.train_images), 300, replace=False)
    copies = audit_run(make_run(tmp_path / "copies", world.manifest, world.train_images[idx],
                                world.train_labels[idx]), AuditConfig(**FAST))["memorisation"]
    fresh = audit_run(make_run(tmp_path / "fresh", world.manifest, world.fresh_images,
                               world.fresh_labels), AuditConfig(**FAST))["memorisation"]
    assert copies["exact_copies"] == 300 and copies["flagged_share"] == 1.0
    # Complete separation in a cell of m generated and n held-out samples gives
    # Z = -sqrt(3mn/(m+n+1)), about -4.7 for 15 and 15; below -3 is the paper's "copying".
    assert copies["ct"]["value"] < -3
    assert all(c["ct"] is None or c["ct"] < -2 for c in copies["per_class"])
    assert fresh["exact_copies"] == 0 and fresh["flagged_share"] <= 0.05
    assert abs(fresh["ct"]["value"]) < 3
    assert copies["worst"][0]["distance"] == pytest.approx(0.0, abs=1e-6)
    assert copies["exact_copy_share"] == 1.0


def test_cas_is_high_for_real_labels_and_low_for_shuffled(world, tmp_path):
    cfg = AuditConfig(**{**FAST, "cas": True})
    good = audit_run(make_run(tmp_path / "good", world.manifest, world.fresh_images, world.fresh_labels), cfg)
    shuffled = np.random.default_rng(3).permutation(world.fresh_labels)
    bad = audit_run(make_run(tmp_path / "bad", world.manifest, world.fresh_images, shuffled), cfg)
    assert good["cas"]["accuracy"] > 0.8
    assert bad["cas"]["accuracy"] < 0.35
    assert set(good["cas"]["per_class"]) == {str(d) for d in range(10)}
    assert good["cas"]["epochs"] == 10  # about 50,000 image passes, at most 10 epochs


def test_cas_trains_channels_last_and_reads_as_the_default_layout(world):
    # CAS trains a fresh classifier in every audit, in the channels-last layout (faster on the
    # CPU); the cached judge keeps the default layout, so its features do not move.
    import torch

    from datakit.judge.network import JudgeConfig

    classes = [str(d) for d in range(10)]
    fit = dict(held_images=world.fresh_images, held_labels=world.fresh_labels)
    default = Judge(JudgeConfig(epochs=4)).fit(world.train_images, world.train_labels, classes, **fit)
    fast = Judge(JudgeConfig(epochs=4)).fit(world.train_images, world.train_labels, classes,
                                            channels_last=True, **fit)
    conv = lambda judge: judge.net.body[4].weight  # noqa: E731  (16 -> 32 channels)
    assert conv(fast).is_contiguous(memory_format=torch.channels_last)
    assert not conv(default).is_contiguous(memory_format=torch.channels_last)
    assert not conv(world.judge).is_contiguous(memory_format=torch.channels_last)
    assert default.info["held_out_accuracy"] > 0.9
    assert abs(fast.info["held_out_accuracy"] - default.info["held_out_accuracy"]) < 0.03


def test_split_real_uses_test_split(world):
    split = split_real(world.manifest)
    assert len(split.held_rows) == 300 and "test" in split.how
