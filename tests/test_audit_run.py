"""audit_run: the audit.json layout, atomic write, clear errors for bad run directories,
and domain amplification / composition links on a mixed-domain manifest."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import progress_lines

from datakit.audit import AuditConfig, audit_run
from datakit.errors import DatakitError, RunDirError
from datakit.manifest.write import write_manifest
from datakit.sources.common import build_table
from datakit.sources.digits import load_digits_arrays

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(cas=False, bootstrap=5, kid_subsets=5)
from datakit.audit.schema import TOP_KEYS, ClassRow, Metric, read_audit


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DATAKIT_CACHE", str(tmp_path_factory.getbasetemp() / "judge-cache-run"))


def _run(path, manifest, images, labels, conditional=True, **extra):
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"manifest": str(manifest.path), "manifest_checksum": manifest.checksum, "model": "acgan",
           "conditional": conditional, **extra}
    (path / "config.json").write_text(json.dumps(cfg))
    np.savez(path / "generated.npz", images=images, labels=labels)
    return path


def _held_out(m):
    test = m.table[m.table["split"] == "test"]
    return m.images(test["row"].to_numpy()), test["label"].to_numpy()


def test_audit_json_layout_matches_the_contract(digits_manifest, tmp_path):
    images, labels = _held_out(digits_manifest)
    run = _run(tmp_path / "run", digits_manifest, images, labels)
    a = audit_run(run, AuditConfig(**{**FAST, "cas": True}))
    assert list(a) == list(TOP_KEYS) and a["schema_version"] == 3
    on_disk = read_audit(run / "audit" / "audit.json")  # typed: the schema's dataclasses
    assert isinstance(on_disk.per_class[0], ClassRow) and isinstance(on_disk.summary["fd"], Metric)
    assert on_disk.to_dict() == a
    # read and written back, audit.json is the same bytes
    written = (run / "audit" / "audit.json").read_text()
    assert json.dumps(on_disk.to_dict(), indent=2, allow_nan=False) == written
    assert not list((run / "audit").glob(".*tmp*"))  # the temporary file is gone
    for name in ("fd", "kid", "precision", "recall", "density", "coverage", "label_fidelity"):
        assert set(a["summary"][name]) == {"value", "floor", "ci_low", "ci_high", "better", "ideal",
                                           "sample_size", "fd_infinity"}, name
        assert (a["summary"][name]["fd_infinity"] is None) == (name != "fd")
        entry = a["summary"][name]
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"] or name == "kid", (name, entry)
    assert [c["class_name"] for c in a["per_class"]] == [str(d) for d in range(10)]
    for c in a["per_class"]:
        assert isinstance(c["collapsed"], bool) and isinstance(c["failed"], bool)
        assert c["collapse_evidence"].startswith(f"class {c['class_name']}:")
        assert not c["failed"] and c["failure_reasons"] == [], c  # held-out real images: healthy
    assert not any(f["severity"] == "fail" for f in a["findings"]), a["findings"]
    conf = a["judge"]["confusion"]
    assert np.asarray(conf["held_out"]).sum() == a["reference"]["held_out_count"]
    assert np.asarray(conf["generated"]).sum() == a["samples"]["generated"]
    assert a["judge"]["held_out_accuracy"] > 0.9
    assert a["config"]["k"] == 5 and a["config"]["judge"]["feature_dim"] == 64
    assert a["run"]["model"] == "acgan" and a["run"]["manifest"] == str(digits_manifest.path.resolve())
    assert 0 <= a["cas"]["accuracy"] <= 1 and a["cas"]["label_source"] == "conditioning labels"
    assert a["composition"]["correlations"] is None  # digits classes are balanced (max/min < 1.5)
    assert a["reference"]["own"] and a["reference"]["manifest"].endswith(digits_manifest.path.name)
    assert all(isinstance(w, str) and w.endswith(".") for w in a["warnings"])


def test_an_audit_off_a_terminal_logs_how_far_each_stage_is(digits_manifest, tmp_path, off_terminal,
                                                            caplog):
    from datakit.audit.registry import registered_checks
    from datakit.judge.network import JudgeConfig
    images, labels = _held_out(digits_manifest)
    run = _run(tmp_path / "run", digits_manifest, images, labels)
    off_terminal.tick = 30  # each clock reading 30 s later: every stage is long enough to log
    audit_run(run, AuditConfig(**FAST, use_cache=False, judge=JudgeConfig(epochs=1)))
    judge = progress_lines(caplog, "judge training")  # 1,438 images: 12 steps of 128
    assert judge[0] == "judge training: 1/12 (8%), 30.0 s/step, 0:30 elapsed, ETA 5:30"
    assert judge[-1].startswith("judge training: 12/12 done in ")
    assert "judge embedding: 1,024/1,438 (71%), 34.1 img/s, 0:30 elapsed, ETA 0:12" in \
        progress_lines(caplog, "judge embedding")  # the training images, 1,024 at a time
    checks = progress_lines(caplog, "audit checks")
    n, first = len(registered_checks()), next(iter(registered_checks()))
    assert checks[0].startswith(f"audit checks: 1/{n} (")
    assert checks[0].endswith(f", last {first}") and len(checks) == n + 1


def test_audit_config_round_trips_and_rejects_unknown_settings():
    cfg = AuditConfig(k=3, bootstrap=7)
    assert AuditConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(DatakitError, match=r"^Unknown audit setting\(s\) nearest; valid settings: "):
        AuditConfig.from_dict({"nearest": 3})


def test_missing_run_dir(tmp_path):
    with pytest.raises(RunDirError) as e:
        audit_run(tmp_path / "nope")
    assert str(e.value) == (f"Run directory {tmp_path / 'nope'} does not exist. "
                            "Pass the folder written by `datakit train`.")


def test_missing_generated_npz(digits_manifest, tmp_path):
    run = _run(tmp_path / "run", digits_manifest, *_held_out(digits_manifest))
    (run / "generated.npz").unlink()
    with pytest.raises(RunDirError) as e:
        audit_run(run)
    assert str(e.value) == (f"{run / 'generated.npz'} is missing: the run has no final samples to audit. "
                            "Let `datakit train` finish (it writes generated.npz last).")


def test_wrong_geometry(digits_manifest, tmp_path):
    run = _run(tmp_path / "run", digits_manifest, np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4, np.int64))
    with pytest.raises(RunDirError) as e:
        audit_run(run)
    assert str(e.value) == (f"{run / 'generated.npz'} holds images of uint8 (4, 28, 28, 1); expected uint8 "
                            "N×32×32×1 (the manifest's geometry).")


def test_changed_manifest_is_refused(digits_manifest, tmp_path):
    run = _run(tmp_path / "run", digits_manifest, *_held_out(digits_manifest))
    cfg = json.loads((run / "config.json").read_text())
    cfg["manifest_checksum"] = "0" * 64
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunDirError, match=r"has changed since the run was trained"):
        audit_run(run)


def test_missing_manifest_names_the_config(digits_manifest, tmp_path):
    run = _run(tmp_path / "run", digits_manifest, *_held_out(digits_manifest))
    cfg = json.loads((run / "config.json").read_text())
    cfg["manifest"] = str(tmp_path / "x.parquet")
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunDirError) as e:
        audit_run(run)
    assert str(e.value).startswith(f"The training manifest named in {run / 'config.json'} cannot be read: "
                                   f"Manifest not found: {tmp_path / 'x.parquet'}.")


def test_mixed_domains_amplification_and_links(tmp_path):
    """Handwritten digits + their inverted copies as a second domain; a generator that
    makes 80% inverted digits must be reported as drifting to that domain."""
    pixels, labels = load_digits_arrays(16)
    n = 700
    hand, inv = pixels[:n], 255 - pixels[n:2 * n]
    all_px = np.concatenate([hand, inv])
    records = [{"id": f"m/{i}", "dataset": "digits", "subset": "plain" if i < n else "inverted",
                "split": "test" if i % 5 == 4 else "train",
                "domain": "handwritten" if i < n else "synthetic",
                "label": int(lab), "class_name": str(lab), "source": f"digits[{i}]",
                "orig_width": 8, "orig_height": 8, "orig_mode": "L"}
               for i, lab in enumerate(np.concatenate([labels[:n], labels[n:2 * n]]))]
    m = write_manifest(tmp_path / "mixed.parquet", build_table(records, all_px), all_px,
                       {"command": "test"}, classes=[str(d) for d in range(10)])
    rest = pixels[2 * n:]
    gen = np.concatenate([255 - rest[:240], rest[240:300]])  # 80% inverted, fresh images
    a = audit_run(_run(tmp_path / "run", m, gen, np.full(300, -1), conditional=False), AuditConfig(**FAST))
    dom = {r["name"]: r for r in a["domains"]["rows"]}
    assert dom["synthetic"]["train_share"] == pytest.approx(0.5, abs=0.01)
    assert dom["synthetic"]["generated_share"] == pytest.approx(0.8, abs=0.03)
    assert dom["synthetic"]["ratio"] == pytest.approx(1.6, rel=0.06)
    assert a["domains"]["divergence"]["tv"] == pytest.approx(0.3, abs=0.03)
    assert any(f["check"] == "domain" and "towards the synthetic domain" in f["sentence"] for f in a["findings"])
    parts = {(p["column"], p["part"]): p for p in a["domains"]["parts"]}
    assert parts[("domain", "synthetic")]["fd"] < parts[("domain", "handwritten")]["fd"]
    assert parts[("domain", "synthetic")]["generated_share"] == dom["synthetic"]["generated_share"]
    assert parts[("subset", "inverted")]["precision"] > parts[("subset", "plain")]["precision"]


def test_labels_outside_the_vocabulary_are_refused(digits_manifest, tmp_path):
    images, labels = _held_out(digits_manifest)
    labels = labels.copy()
    labels[3] = 12
    run = _run(tmp_path / "run", digits_manifest, images, labels)
    with pytest.raises(RunDirError) as e:
        audit_run(run)
    assert str(e.value) == (f"{run / 'generated.npz'} has label 12, outside the manifest's 10 classes "
                            "(0..9, or -1 for unconditional samples).")


@pytest.mark.parametrize("size,channels", [(20, 3), (64, 1), (28, 3)])
def test_judge_reads_any_store_size_and_channel_count(make_manifest, size, channels):
    """Colour or grey glyphs at any store size go through the judge resized to 32×32."""
    from datakit.judge.features import to_judge_input
    from datakit.judge.network import Judge, JudgeConfig
    m = make_manifest({"0": 12, "1": 12}, size=size, channels=channels)
    x = to_judge_input(m.images(), channels)
    assert tuple(x.shape) == (24, channels, 32, 32) and -1.0 <= float(x.min()) <= float(x.max()) <= 1.0
    judge = Judge(JudgeConfig(epochs=2, feature_dim=8)).fit(m.images(), m.labels(), m.vocabulary)
    emb = judge.embed(m.images())
    assert emb.features.shape == (24, 8) and emb.class_logits.shape == (24, 2)
    # a grey judge reads colour samples (averaged) and a colour judge grey ones (repeated)
    other = np.repeat(m.images(), 3, -1) if channels == 1 else m.images()[..., :1]
    assert judge.embed(other).features.shape == (24, 8)


def _class_subset(m, keep, path):
    """A manifest of some of ``m``'s classes, labelled in the order given by ``keep``."""
    t = m.table[m.table["class_name"].isin(keep)].copy()
    pixels = m.images(t["row"].to_numpy())
    t["label"] = t["class_name"].map({c: i for i, c in enumerate(keep)})
    t["row"] = np.arange(len(t))
    return write_manifest(path, t, pixels, {"command": "test subset"}, classes=keep)


def test_a_shared_judge_measures_a_run_with_another_manifests_ruler(digits_manifest, tmp_path):
    keep = ["4", "3", "2", "1", "0"]  # another order than the judge's vocabulary
    small = _class_subset(digits_manifest, keep, tmp_path / "small.parquet")
    images, labels = _held_out(small)
    run = _run(tmp_path / "run", small, images, labels)
    a = audit_run(run, AuditConfig(**FAST, judge_manifest=str(digits_manifest.path)))
    assert a["judge"]["shared"] is True
    assert a["judge"]["manifest_checksum"] == digits_manifest.checksum
    assert a["run"]["manifest_checksum"] == small.checksum
    assert [c["class_name"] for c in a["per_class"]] == keep
    # real held-out images, read by a 10-class judge mapped onto the run's 5 classes by name
    assert a["summary"]["label_fidelity"]["value"] > 0.9


def test_a_shared_judge_must_know_every_class_of_the_run(digits_manifest, tmp_path):
    judge_m = _class_subset(digits_manifest, ["0", "1", "2"], tmp_path / "judge.parquet")
    images, labels = _held_out(digits_manifest)
    run = _run(tmp_path / "run", digits_manifest, images, labels)
    with pytest.raises(DatakitError, match=r"judge\.parquet has no class 3, 4, 5, 6, 7 \.\.\. of the run's"):
        audit_run(run, AuditConfig(**FAST, judge_manifest=str(judge_m.path)))


def test_a_reference_manifest_measures_quality_while_memorisation_keeps_the_runs_own_set(digits_manifest,
                                                                                          tmp_path):
    keep = ["0", "1", "2", "3", "4"]
    small = _class_subset(digits_manifest, keep, tmp_path / "small.parquet")
    images, labels = _held_out(small)
    run = _run(tmp_path / "run", small, images, labels)
    a = audit_run(run, AuditConfig(**FAST, judge_manifest=str(digits_manifest.path),
                                   reference_manifest=str(digits_manifest.path)))
    ref = a["reference"]
    assert not ref["own"] and ref["checksum"] == digits_manifest.checksum
    assert (run / "audit" / ref["manifest"]).resolve() == digits_manifest.path.resolve()
    held = digits_manifest.table[(digits_manifest.table["split"] == "test")
                                 & digits_manifest.table["class_name"].isin(keep)]
    assert ref["held_out_count"] == len(held)
    # shares and memorisation use the run's own training set: the run's held-out images are not copies
    assert a["memorisation"]["exact_copies"] == 0
    assert [c["train_count"] for c in a["per_class"]] == \
        [int(((small.table["split"] != "test") & (small.table["class_name"] == c)).sum()) for c in keep]
