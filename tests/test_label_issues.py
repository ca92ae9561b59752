"""Label issues (confident learning): planted wrong labels rank first, clean labels are not flagged."""
from __future__ import annotations

import importlib.abc
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import progress_lines

from datakit.cli import main
from datakit.errors import ManifestError
from datakit.label_issues import (
    LabelIssuesConfig,
    confident_classes,
    confident_joint,
    find_label_issues,
    label_quality,
    lowest_scored,
    per_class_thresholds,
    rank_issues,
    read_issues_csv,
    stratified_folds,
    write_issues_csv,
)
from datakit.manifest.write import write_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_thresholds_and_confident_joint_by_hand():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.8, 0.2]])
    labels = np.array([0, 0, 1, 1, 1])
    t = per_class_thresholds(probs, labels)
    assert np.allclose(t, [0.8, (0.8 + 0.4 + 0.2) / 3])
    confident = confident_classes(probs, t)
    # rows 1 and 3 reach neither threshold; row 4, labelled 1, is confidently 0
    assert confident.tolist() == [0, -1, 1, -1, 0]
    assert confident_joint(labels, confident, 2).tolist() == [[1, 0], [1, 1]]
    order, scores, _, _ = rank_issues(probs, labels)
    assert order.tolist() == [4] and np.allclose(scores, [0.2])
    margin = label_quality(probs, labels, "normalized_margin")
    assert np.allclose(margin, (np.array([0.8, 0.4, 0.6, -0.2, -0.6]) + 1) / 2)


def test_clean_confident_predictions_flag_nothing():
    labels = np.repeat(np.arange(4), 50)
    probs = np.full((200, 4), 0.02)
    probs[np.arange(200), labels] = 0.94
    order, _, _, joint = rank_issues(probs, labels)
    assert len(order) == 0 and np.trace(joint) == 200


def test_absent_classes_get_no_threshold():
    probs = np.array([[0.6, 0.1, 0.3], [0.2, 0.7, 0.1]])
    t = per_class_thresholds(probs, np.array([0, 1]))
    assert np.isnan(t[2])
    assert confident_classes(probs, t).tolist() == [0, 1]


def test_folds_are_stratified():
    labels = np.repeat(np.arange(3), [30, 12, 7])
    fold = stratified_folds(labels, 3, seed=0)
    for lab in range(3):
        counts = np.bincount(fold[labels == lab], minlength=3)
        assert counts.max() - counts.min() <= 1


@pytest.fixture(scope="module")
def flipped_digits(tmp_path_factory):
    """The embedded digits at 16×16 with 20 labels changed on purpose."""
    from datakit.sources.digits import ingest_digits
    out = tmp_path_factory.mktemp("li")
    m = ingest_digits(size=16, out=out)
    rng = np.random.default_rng(0)
    table = m.table.copy()
    flipped = rng.choice(len(table), 20, replace=False)
    table.loc[flipped, "label"] = (table.loc[flipped, "label"] + rng.integers(1, 10, 20)) % 10
    table["class_name"] = table["label"].astype(str)
    flipped_m = write_manifest(out / "flipped.parquet", table, np.asarray(m.pixels),
                               classes=m.vocabulary, compute_statistics=False)
    return flipped_m, set(table["id"].iloc[flipped])


def test_flipped_labels_rank_at_the_top(flipped_digits):
    m, flipped = flipped_digits
    cfg = LabelIssuesConfig(folds=3, epochs=6, width=8)
    result = find_label_issues(m, cfg)
    top = result.issues["id"].head(len(flipped))
    assert top.isin(flipped).mean() >= 0.8, result.issues.head(25)
    assert list(result.issues.columns[:6]) == ["rank", "id", "row", "split", "label", "class_name"]
    first = result.issues.iloc[0]
    assert first["predicted_class_name"] != first["class_name"]
    assert result.info["out_of_fold_accuracy"] > 0.85


def test_fold_networks_train_on_the_plain_images_by_default(make_manifest, monkeypatch):
    # augment="none" (the default): no image is jittered, and with epochs=0 each fold trains
    # for about 150,000 image passes (20 epochs on a 7,500-image fold, at most 30)
    from datakit.judge import out_of_fold

    assert LabelIssuesConfig().augment == "none"
    assert [out_of_fold.plain_epochs(n) for n in (7500, 30000, 100, 10**6)] == [20, 5, 30, 2]
    monkeypatch.setattr(out_of_fold, "jitter", lambda *a, **k: pytest.fail("jittered"))
    m = make_manifest({"0": 8, "1": 8})
    result = find_label_issues(m, LabelIssuesConfig(folds=2, epochs=1, width=4))
    assert result.summary()["config"]["augment"] == "none" and result.probabilities.shape == (16, 2)


def test_an_ensemble_averages_rounds_over_other_fold_splits(make_manifest):
    # --ensemble 2: round r is the single search at seed + r; their probabilities are averaged
    m = make_manifest({"0": 8, "1": 8})
    one = dict(folds=2, epochs=1, width=4)
    rounds = [find_label_issues(m, LabelIssuesConfig(**one, seed=s)).probabilities for s in (3, 4)]
    both = find_label_issues(m, LabelIssuesConfig(**one, seed=3, ensemble=2))
    np.testing.assert_allclose(both.probabilities, (rounds[0] + rounds[1]) / 2, atol=1e-6)
    assert both.summary()["config"]["ensemble"] == 2


def test_cli_writes_the_csv_and_the_page_shows_it(flipped_digits, tmp_path):
    m, flipped = flipped_digits
    csv = tmp_path / "issues.csv"
    r = CliRunner().invoke(main, ["label-issues", str(m.path), "--out", str(csv), "--folds", "2",
                                  "--epochs", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["out"] == str(csv) and out["rows"] == len(m) and out["issues"] >= 1
    table = read_issues_csv(csv)
    assert {"id", "row", "label", "class_name", "predicted_class_name", "score"} <= set(table.columns)
    page = tmp_path / "page.html"
    r = CliRunner().invoke(main, ["stats", str(m.path), "--html", str(page), "--label-issues", str(csv)])
    assert r.exit_code == 0, r.output
    html = page.read_text()
    assert "<h3>Label issues</h3>" in html and table["id"].iloc[0] in html


def test_issues_of_another_manifest_are_refused(flipped_digits, make_manifest, tmp_path):
    m, _ = flipped_digits
    other = make_manifest({"0": 3, "1": 3})
    csv = tmp_path / "issues.csv"
    fake = pd.DataFrame({"rank": [1], "id": [m.table["id"].iloc[0]], "row": [0], "label": [0],
                         "class_name": ["0"], "predicted_class_name": ["1"], "score": [0.1]})
    fake.to_csv(csv, index=False)
    r = CliRunner().invoke(main, ["stats", str(other.path), "--html", str(tmp_path / "p.html"),
                                  "--label-issues", str(csv)])
    assert r.exit_code == 1
    assert r.output == (f"Error: The label-issues file does not belong to {other.path}: its ids or "
                        "rows are not this manifest's. Run `datakit label-issues` on it first.\n")


def test_too_small_a_manifest_is_refused(make_manifest):
    m = make_manifest({"0": 1, "1": 5})
    with pytest.raises(ManifestError, match=r"too small for 4-fold label-issue search"):
        find_label_issues(m, LabelIssuesConfig())


def test_csv_round_trip(tmp_path, flipped_digits):
    m, _ = flipped_digits
    labels = m.table["label"].to_numpy()
    probs = np.full((len(m), 10), 0.01)
    probs[np.arange(len(m)), labels] = 0.91
    probs[0] = 0.01
    probs[0, (labels[0] + 1) % 10] = 0.91
    result = find_label_issues(m, probabilities=probs)
    assert result.issues["id"].tolist() == [m.table["id"].iloc[0]]
    path = write_issues_csv(result, tmp_path / "i.csv")
    assert read_issues_csv(path)["id"].tolist() == [m.table["id"].iloc[0]]


class _NoCuptiMonitor(importlib.abc.MetaPathFinder):
    """A torch whose optional profiler module ``torch.profiler._cupti_monitor`` cannot be
    imported: torch's own probe then fails with ``ImportError: cannot import name
    '_cupti_monitor'`` (not the ModuleNotFoundError it expects) and logs the traceback."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch.profiler._cupti_monitor":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_label_issues_prints_no_torch_traceback(make_manifest, tmp_path, monkeypatch, caplog):
    import torch.autograd.profiler as autograd_profiler
    import torch.profiler
    monkeypatch.setattr(sys, "meta_path", [_NoCuptiMonitor(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, "torch.profiler._cupti_monitor", raising=False)
    monkeypatch.delattr(torch.profiler, "_cupti_monitor", raising=False)
    monkeypatch.setattr(autograd_profiler, "_cupti_monitor_checked", False)  # as in a new process
    m = make_manifest({"0": 8, "1": 8})
    r = CliRunner().invoke(main, ["label-issues", str(m.path), "--folds", "2", "--epochs", "1",
                                  "--out", str(tmp_path / "issues.csv")])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.stderr
    # under pytest torch's warnings reach pytest's log capture rather than stderr
    assert [rec.getMessage() for rec in caplog.records if rec.name.startswith("torch")] == []


def test_label_issues_off_a_terminal_logs_its_folds(make_manifest, off_terminal, caplog):
    m = make_manifest({"0": 8, "1": 8})
    off_terminal.tick = 30
    find_label_issues(m, LabelIssuesConfig(folds=2, epochs=1))
    folds = progress_lines(caplog, "label-issues folds")
    assert [line.split(",")[0] for line in folds[:2]] == ["label-issues folds: 1/2 (50%)",
                                                          "label-issues folds: 2/2 (100%)"]
    assert folds[2].startswith("label-issues folds: 2/2 done in ") and len(folds) == 3
    assert progress_lines(caplog, "judge training")  # and, within each fold, its judge's steps


def test_lowest_scored_ignores_the_thresholds():
    quality = np.array([0.9, 0.2, 0.5, 0.2, 0.99])
    assert lowest_scored(quality, 3).tolist() == [1, 3, 2]  # ties by row
    assert lowest_scored(quality, 0).tolist() == []
    assert lowest_scored(quality, 9).tolist() == [1, 3, 2, 0, 4]


def test_cli_top_writes_the_lowest_scored_rows_and_probs_the_probabilities(make_manifest, tmp_path):
    from datakit.manifest.read import read_manifest

    m = make_manifest({"0": 8, "1": 8, "2": 8})
    csv, npy = tmp_path / "top.csv", tmp_path / "probs.npy"
    r = CliRunner().invoke(main, ["label-issues", str(m.path), "--out", str(csv), "--folds", "2",
                                  "--epochs", "1", "--top", "5", "--probs", str(npy), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["issues"] == 5 and out["probs"] == str(npy) and out["config"]["top"] == 5
    table = read_issues_csv(csv)
    assert len(table) == 5 and table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table["score"].is_monotonic_increasing
    assert int(table["candidate"].sum()) <= out["candidates"]
    probs = np.load(npy)
    assert probs.shape == (24, 3) and probs.dtype == np.float64
    assert np.allclose(probs.sum(1), 1)
    # table order: the saved probabilities rank the same rows the CSV lists
    labels = read_manifest(m.path).table["label"].to_numpy()
    quality = label_quality(probs, labels)
    assert table["row"].tolist() == lowest_scored(quality, 5).tolist()
    assert np.allclose(table["given_label_probability"], quality[table["row"]], atol=1e-6)
    assert set(table["id"][table["candidate"]]) <= set(m.table["id"].iloc[rank_issues(probs, labels)[0]])


def test_cli_without_top_writes_only_candidates(make_manifest, tmp_path):
    m = make_manifest({"0": 8, "1": 8})
    csv = tmp_path / "c.csv"
    r = CliRunner().invoke(main, ["label-issues", str(m.path), "--out", str(csv), "--folds", "2",
                                  "--epochs", "1", "--show", "2"])
    assert r.exit_code == 0, r.output
    table = read_issues_csv(csv)
    assert table["candidate"].all() if len(table) else True
    assert r.output.startswith(f"Wrote {csv} ({len(table)} likely label issues among 16 rows; ")
    assert len(r.output.splitlines()) == 1 + min(2, len(table)) + (not len(table))


def test_cli_with_no_candidate_says_how_to_review_the_doubted_rows(make_manifest, tmp_path, monkeypatch):
    import datakit.cli.label_issues as cli
    from datakit.label_issues import find_label_issues
    m = make_manifest({"0": 8, "1": 8})

    def none_pass(manifest, cfg):  # a clean set: the real search, with every candidate dropped
        result = find_label_issues(manifest, cfg)
        result.issues = result.issues.iloc[:0]
        return result
    monkeypatch.setattr(cli, "find_label_issues", none_pass)
    csv = tmp_path / "c.csv"
    r = CliRunner().invoke(main, ["label-issues", str(m.path), "--out", str(csv), "--folds", "2",
                                  "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1:] == [
        "No row passed its class threshold. To review the rows the model doubts most anyway: "
        "--top 20 writes the 20 lowest-scored."]


def test_cli_refuses_a_negative_top(make_manifest):
    m = make_manifest({"0": 8, "1": 8})
    r = CliRunner().invoke(main, ["label-issues", str(m.path), "--top", "-1"])
    assert r.exit_code == 2
    assert "Invalid value for '--top': -1 is not in the range x>=0." in r.output


BENCH = Path(__file__).parent.parent / "bench"


def _bench_label_issues():
    """bench/label_issues as a module (the script has no .py suffix)."""
    import importlib.util
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("bench_label_issues", str(BENCH / "label_issues"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_bench_scores_candidates_against_a_published_list(tmp_path):
    from types import SimpleNamespace

    bench = _bench_label_issues()
    split, errors = bench.read_published(BENCH / "data" / "mnist_test_label_errors.json")
    assert split == "test" and len(errors) == 15 and errors["mnist/test/00947"] == 8
    table = pd.DataFrame({"id": [f"mnist/test/{i:05d}" for i in range(4)], "label": [0, 1, 1, 0]})
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    issues = pd.DataFrame({"id": ["mnist/test/00001", "mnist/test/00002"], "candidate": [True, True]})
    result = SimpleNamespace(issues=issues, probabilities=probs, config=LabelIssuesConfig())
    listed = {"mnist/test/00001": 1, "mnist/test/00003": 0}
    out = bench.score_published(result, SimpleNamespace(table=table), listed)
    assert out["candidates"] == 2 and out["confirmed_found"] == 1
    assert out["recall"] == 0.5 and out["precision"] == 0.5
    # lowest self-confidence first: rows 1 (0.2), 3 (0.3), 2 (0.4), 0 (0.9)
    assert out["confirmed_in_lowest_2"] == 2 and out["worst_position"] == 2
    with pytest.raises(SystemExit, match="does not match the ingested labels"):
        bench.score_published(result, SimpleNamespace(table=table), {"mnist/test/00001": 0})

