"""Known-answer tests of the verdict: for each check, a planted defect it must name (as a
``fail`` finding and a failed/collapsed class) and a healthy control it must not flag.

Generators are built from real digits (see test_audit_known_answers.World): "fresh" real
images that are in neither split play a perfect generator.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from test_audit_known_answers import _blurred, make_run, world  # noqa: F401  (session fixture)

from datakit.audit import AuditConfig, audit_run
from datakit.manifest.write import write_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the fixture holds about 30 held-out and 30 fresh images per class, some fewer: tested at 20
FAST = dict(cas=False, bootstrap=50, kid_subsets=5, min_class_n=20)


def _fails(a, check=None):
    return [f for f in a["findings"] if f["severity"] == "fail" and (check is None or f["check"] == check)]


def _failed(a):
    return {c["class_name"]: c["failure_reasons"] for c in a["per_class"] if c["failed"]}


def test_healthy_control_has_no_fail(world, tmp_path):
    a = audit_run(make_run(tmp_path / "run", world.manifest, world.fresh_images, world.fresh_labels),
                  AuditConfig(**FAST))
    assert _fails(a) == [] and _failed(a) == {}
    assert not any(c["collapsed"] for c in a["per_class"])


def test_classes_too_small_to_test_are_said_in_one_finding_per_side(world, tmp_path):
    run = make_run(tmp_path / "run", world.manifest, world.fresh_images, world.fresh_labels)
    a = audit_run(run, AuditConfig(**{**FAST, "min_class_n": 1000}))  # every class is too small
    few = [f for f in a["findings"] if f["sentence"].startswith("Too few")]
    assert [f["evidence"]["side"] for f in few] == ["held-out", "generated"]
    names = [str(d) for d in range(10)]
    for f in few:
        assert f["severity"] == "info" and f["classes"] == names
        assert f["sentence"].startswith(f"Too few {f['evidence']['side']} images of 10 classes, 0 (n = ")
        assert f["sentence"].endswith("to test them against their floors (at least 1000 each are "
                                      "needed); they are not failed on label fidelity, coverage, FD or modes.")
    generated = few[1]["evidence"]["per_class"]
    assert generated == {c: int((world.fresh_labels == int(c)).sum()) for c in names}
    assert all(c["untested"] for c in a["per_class"]) and _fails(a) == []


def test_a_class_drawn_as_another_fails_label_fidelity(world, tmp_path):
    images, labels = world.fresh_images.copy(), world.fresh_labels.copy()
    fives, threes = np.flatnonzero(labels == 5), np.flatnonzero(labels == 3)
    images[fives] = images[threes[np.arange(len(fives)) % len(threes)]]  # "5"s that look like 3s
    a = audit_run(make_run(tmp_path / "run", world.manifest, images, labels), AuditConfig(**FAST))
    assert {f["classes"][0] for f in _fails(a, "label_fidelity")} == {"5"}
    assert "label_fidelity" in _failed(a)["5"]
    f = _fails(a, "label_fidelity")[0]
    assert f["evidence"]["ci_high"] < 0 and f["evidence"]["value"] < 0.1
    assert "are read as 3" in f["sentence"]


def test_one_blurred_class_fails_fd(world, tmp_path):
    images, labels = world.fresh_images.copy(), world.fresh_labels.copy()
    sixes = labels == 6
    images[sixes] = _blurred(images[sixes], 2.5)
    a = audit_run(make_run(tmp_path / "run", world.manifest, images, labels), AuditConfig(**FAST))
    failed = _failed(a)
    assert "fd" in failed["6"] and set(failed) == {"6"}, failed
    f = next(f for f in _fails(a, "quality") if f["classes"] == ["6"])
    assert f["evidence"]["value"] > 1.5 * f["evidence"]["floor"] and f["evidence"]["ci_low"] > 0


@pytest.mark.parametrize("planted", ["suppressed", "amplified"])
def test_share_of_a_class(world, tmp_path, planted):
    images, labels = world.fresh_images, world.fresh_labels
    if planted == "suppressed":  # 1 sample of class 4 left
        keep = np.flatnonzero(labels != 4)
        keep = np.concatenate([keep, np.flatnonzero(labels == 4)[:1]])
        images, labels = images[keep], labels[keep]
        name = "4"
    else:  # 60 more real 2s: about 25% of samples against 10% of training
        extra = np.flatnonzero(world.train_labels == 2)[:60]
        images = np.concatenate([images, world.train_images[extra]])
        labels = np.concatenate([labels, world.train_labels[extra]])
        name = "2"
    a = audit_run(make_run(tmp_path / "run", world.manifest, images, labels, conditional=False),
                  AuditConfig(**FAST))
    fails = _fails(a, "shares")
    assert [f["classes"] for f in fails] == [[name]], fails
    assert f"is {planted}" in fails[0]["sentence"]
    assert "share" in _failed(a)[name]


def test_copies_of_training_images_fail_memorisation(world, tmp_path):
    idx = np.random.default_rng(2).choice(len(world.train_images), 300, replace=False)
    a = audit_run(make_run(tmp_path / "run", world.manifest, world.train_images[idx], world.train_labels[idx]),
                  AuditConfig(**FAST))
    sentences = [f["sentence"] for f in _fails(a, "memorisation")]
    assert sentences[0] == "300 generated samples (100%) are exact pixel copies of training images."
    assert any(s.startswith("Data-copying test C_T = ") for s in sentences)


def _skewed(world, tmp_path):
    """The world's manifest with a tenth of the training images of digits 5-9 (test split kept)."""
    m = world.manifest
    t = m.table
    rng = np.random.default_rng(0)
    keep = np.ones(len(t), bool)
    for d in range(5, 10):
        rows = np.flatnonzero((t["label"].to_numpy() == d) & (t["split"].to_numpy() == "train"))
        keep[rng.choice(rows, len(rows) - len(rows) // 10, replace=False)] = False
    sub = t[keep].copy()
    pixels = m.images(sub["row"].to_numpy())
    sub["row"] = np.arange(len(sub))
    return write_manifest(tmp_path / "skewed.parquet", sub, pixels, {"command": "test skew"},
                          classes=list(m.vocabulary))


def test_skewed_set_minority_classes_drawn_wrong_are_named_with_an_interval(world, tmp_path):
    skewed = _skewed(world, tmp_path)
    images, labels = world.fresh_images.copy(), world.fresh_labels.copy()
    minority = labels >= 5
    majority_pool = np.flatnonzero(labels < 5)
    images[minority] = images[majority_pool[np.arange(minority.sum()) % len(majority_pool)]]
    cfg = AuditConfig(**FAST, judge_manifest=str(world.manifest.path))
    a = audit_run(make_run(tmp_path / "bad", skewed, images, labels), cfg)
    failed = _failed(a)
    assert all("label_fidelity" in failed[c] for c in "56789"), failed
    # the "5"-"9" samples look like 0-4, so the judge sees 0-4 over-produced: true, and only that
    assert all(failed.get(c, ["share"]) == ["share"] for c in "01234"), failed
    comp = a["composition"]
    assert comp["skew_ratio"] >= 5 and comp["minority"] == ["5", "6", "7", "8", "9"]
    lf = comp["comparisons"]["label_fidelity"]
    assert lf["worse_for_minority"] and lf["ci_high"] < -0.5
    f = next(f for f in a["findings"] if f["check"] == "composition" and f["evidence"]["metric"] == "label_fidelity")
    assert f["sentence"].startswith("Minority classes (5, 6, 7, 8 and 9: ")
    assert "95% CI" in f["sentence"] and f["severity"] == "warn"
    # healthy control on the same skewed set: no fail, no minority finding
    good = audit_run(make_run(tmp_path / "good", skewed, world.fresh_images, world.fresh_labels), cfg)
    assert _fails(good) == [] and _failed(good) == {}
    assert not any(f["check"] == "composition" and f["severity"] != "info" for f in good["findings"])


# -- the single-run page quotes what its tables show --------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])([+\-−]?\d[\d,]*(?:\.\d+)?)(%| points)?")


def _shown(text: str) -> list[tuple[float, int]]:
    """Numbers of a text as (value, decimals shown); a percentage or "points" as a share.
    ("95% CI" names the interval; "d points, 95% CI a to b": a and b are points too.)"""
    text = re.sub(r"points, 95% CI (\S+) to ([^\s);,]+)", r"points, CI \1 points to \2 points", text)
    text = re.sub(r"(\S+) to (\S+) points", r"\1 points to \2 points", text)
    text = text.replace("95% CI", "CI")
    out = []
    for digits, unit in _NUMBER.findall(text):
        x = float(digits.replace("−", "-").replace(",", ""))
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        out.append((x / 100, decimals + 2) if unit else (x, decimals))
    return out


def _reads_as(quoted: tuple[float, int], cell: tuple[float, int]) -> bool:
    """A table number reads as a quoted one when either, rounded to the other's shown precision,
    is the other (the page shows 3 significant digits, a sentence its own)."""
    (q, qd), (c, cd) = quoted, cell
    return round(c, qd) == round(q, qd) or round(q, cd) == round(c, cd)


def test_numbers_in_a_single_run_verdict_appear_in_its_tables(world, tmp_path):
    """Every number a single run's verdict sentence quotes (values, floors, intervals of the
    difference, counts) can be read in the page's tables, to the sentence's precision."""
    from datakit.report.html import write_report
    images, labels = world.fresh_images.copy(), world.fresh_labels.copy()
    fives, threes = np.flatnonzero(labels == 5), np.flatnonzero(labels == 3)
    images[fives] = images[threes[np.arange(len(fives)) % len(threes)]]  # "5"s that look like 3s
    sixes = labels == 6
    images[sixes] = _blurred(images[sixes], 2.5)
    run = make_run(tmp_path / "run", world.manifest, images, labels)
    audit = audit_run(run, AuditConfig(**FAST))
    assert _fails(audit)  # the planted defects are in the verdict
    html = write_report([run], tmp_path / "report.html").read_text()  # its audit.json, read
    verdict = re.search(r'<h2 id="verdict">.*?(?=<h2 )', html, flags=re.S).group(0)
    sentences = [re.sub(r"<[^>]+>", "", s) for s in re.findall(r"<li[^>]*>(.*?)</li>", verdict, flags=re.S)]
    tables = " ".join(re.findall(r"<table.*?</table>", html, flags=re.S))
    assert sum(len(_shown(s)) for s in sentences) > 10  # values, floors, intervals, counts
    cells = [n for text in re.findall(r">([^<>]+)<", tables) for n in _shown(text)]
    missing = [(q, s) for s in sentences for q in _shown(s)
               if not any(_reads_as(q, c) for c in cells)]
    assert missing == [], missing
