"""The run-audit report on fake run directories: structure, verdict sentences, escaping, CLI."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from datakit.cli import main
from datakit.audit.schema import Audit, AuditSchemaError
from datakit.errors import RunDirError
from datakit.report.html import render_report, write_report
from datakit.report.run_data import read_audited_run, shares, summary_metrics
from datakit.report.verdict import findings
from fake_runs import fake_audit, fake_study, make_run

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def toy(make_manifest):
    return make_manifest({"0": 12, "1": 6, "2": 6}, size=8, name="toy")


def _texts(html: str) -> list[str]:
    return re.findall(r'<li class="(?:fail|warn|info)">(.*?)</li>', html, flags=re.S)


def test_one_run_has_every_section_in_order(tmp_path, toy):
    run = make_run(tmp_path / "run", toy)
    out = write_report([run], tmp_path / "r.html", audits=[fake_audit(toy, collapsed=("2",))])
    html = out.read_text()
    heads = [html.index(h) for h in ("1. Verdict", "Training sets", 'id="runs"', "<h3>Quality",
                                     "<h3>Training", "<h3>Composition ↔ quality")]
    assert heads == sorted(heads)
    assert "Datasheet: Composition" in html and "Is it a sample of instances" in html
    assert "Generated (left) beside held-out real (right), per class" in html
    assert "Fixed-noise samples over time" in html and "data:image/gif;base64," in html
    # Self-contained: every image inline, nothing fetched from elsewhere.
    assert "datakit " in html and "with datakit " in html  # provenance
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert "http://" not in html and "https://" not in html


def test_verdict_is_the_audits_findings_and_ranks_comparable_runs(tmp_path, toy):
    a = make_run(tmp_path / "a", toy)
    b = make_run(tmp_path / "b", toy)
    audit_a = fake_audit(toy, collapsed=("2",), fd=34.0)
    audit_b = fake_audit(toy, fd=10.0)
    html = render_report([read_audited_run(a, audit_a), read_audited_run(b, audit_b)])
    texts = _texts(html)
    assert texts[0] == ('<span class="sev">warn</span> Run a is 3.4× further from the reference real '
                        "images than run b (Fréchet distance 34.00 vs 10.00, floor 2.00, n = 100, one "
                        "judge and one reference).")
    assert '<span class="sev">fail</span> Run a: Class 2 collapsed: diversity 0.10 of real.' in texts
    assert "Runs compared" in html and "FD / floor" in html


def test_runs_with_different_judges_or_references_are_not_ranked(tmp_path, make_manifest):
    m1 = make_manifest({"0": 6, "1": 6}, size=8, name="one", seed=1)
    m2 = make_manifest({"0": 6, "1": 6}, size=8, name="two", seed=2)
    # one shared judge, but each run against its own real images: still two rulers
    a1 = fake_audit(m1, fd=30.0, fd_floor=10.0, judge_checksum=m2.checksum)
    a2 = fake_audit(m2, fd=12.0, fd_floor=1.0, judge_checksum=m2.checksum)
    runs = [read_audited_run(make_run(tmp_path / "x", m1), a1), read_audited_run(make_run(tmp_path / "y", m2), a2)]
    texts = [f.sentence for f in findings(runs)]
    assert texts[0] == ("These runs were measured with one judge but against different reference sets. "
                        "Their Fréchet distances are therefore not on one scale and are not ranked. "
                        "Each against its own floor: x 30.00 (floor 10.00, n = 100), y 12.00 "
                        "(floor 1.00, n = 100).")
    assert not any("further from" in t for t in texts)
    # one judge and one reference: ranked
    a1 = fake_audit(m1, fd=30.0, judge_checksum=m2.checksum, reference_checksum=m2.checksum)
    a2 = fake_audit(m2, fd=12.0, judge_checksum=m2.checksum)
    runs = [read_audited_run(make_run(tmp_path / "x", m1), a1), read_audited_run(make_run(tmp_path / "y", m2), a2)]
    assert findings(runs)[0].sentence.startswith("Run x is 2.5× further from the reference real images")


def test_runs_compared_says_what_differs_as_the_intro_counts_it(tmp_path, toy):
    # Planted (class_skew): one judge and one reference, but the DCGAN runs' metrics are on 500
    # images and the ACGAN runs' on 2,500. The page used to say they were not measured with
    # one judge and one reference; it must name the sample sizes and the generated images.
    import dataclasses
    from datakit.report.verdict import comparison_note
    audits = [fake_audit(toy, fd=10.0), fake_audit(toy, fd=12.0)]
    small = dataclasses.replace(audits[1].summary["fd"], sample_size=50)
    audits[1] = dataclasses.replace(audits[1], summary={**audits[1].summary, "fd": small})
    runs = [read_audited_run(make_run(tmp_path / n, toy), a, label=n, arm=n.split("_")[0], seed=0)
            for n, a in (("acgan_s0", audits[0]), ("dcgan_s0", audits[1]))]
    generated = audits[0].run["generated_count"]
    note = comparison_note(runs)
    assert note == ("These runs were measured with one judge and one reference set of real images, "
                    "at different sample sizes n (the generated and held-out images each metric is "
                    f"computed on): n = 100 of {generated} generated images for acgan; n = 50 of "
                    f"{generated} generated images for dcgan. Their Fréchet distances are therefore "
                    "not on one scale and are not ranked.")
    html = render_report(runs)
    assert note in html and "not measured with one judge" not in html
    assert comparison_note(runs[:1] * 2) is None  # control: one ruler, nothing to say


def test_runs_are_plotted_against_skew_only_when_their_skews_differ_by_design(tmp_path, make_manifest):
    """Stratified subsamples of a balanced set differ in imbalance ratio by chance (1.2 against
    1.3): no figure against skew then; a skew imposed on purpose (1.2 against 10) gets one."""
    def page(counts_a, counts_b):
        runs = []
        for name, counts in (("a", counts_a), ("b", counts_b)):
            m = make_manifest(counts, size=8, name=f"m{name}{sum(counts.values())}")
            runs.append(read_audited_run(make_run(tmp_path / f"{name}{sum(counts.values())}", m),
                                         fake_audit(m, fd=10.0 if name == "a" else 12.0), label=name))
        return render_report(runs)
    near = page({"0": 12, "1": 10, "2": 10}, {"0": 26, "1": 20, "2": 20})
    assert "Each whole-set metric against the runs' training-set size:" in near
    apart = page({"0": 12, "1": 10, "2": 10}, {"0": 40, "1": 4, "2": 4})
    assert ("Each whole-set metric against the runs' training-set size, skew (imbalance ratio, "
            "max/min class count):") in apart


def test_an_old_or_foreign_audit_is_refused_with_what_to_do(tmp_path, toy):
    run = make_run(tmp_path / "run", toy)
    (run / "audit").mkdir()
    (run / "audit" / "audit.json").write_text(json.dumps({"summary": {"fid": 3.0}}))
    with pytest.raises(AuditSchemaError) as e:
        read_audited_run(run)
    assert str(e.value) == (f"{run / 'audit' / 'audit.json'} has audit schema version None, but this "
                            "datakit reads version 3; re-run `datakit audit` on the run to rewrite it.")
    bad = fake_audit(toy).to_dict()
    bad["summary"]["fd"]["ci"] = [1, 2]
    with pytest.raises(AuditSchemaError, match=r"summary\.fd does not match audit schema 3; unknown ci\."):
        Audit.from_dict(bad, f"the audit of {run}")


def test_confusion_matrices_are_drawn(tmp_path, toy):
    run = make_run(tmp_path / "run", toy)
    html = write_report([run], tmp_path / "r.html", audits=[fake_audit(toy)]).read_text()
    assert "Judge confusion: held-out real images (row: true label)" in html
    assert "Judge confusion: generated samples (row: conditioning label)" in html


def test_data_strings_are_escaped(tmp_path, make_manifest):
    m = make_manifest({EVIL: 6, "b": 6}, size=8, name="evil")
    run = make_run(tmp_path / 'run &<>"', m)
    audit = fake_audit(m, collapsed=(EVIL,))
    html = write_report([run], tmp_path / "r.html", audits=[audit]).read_text()
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'run &amp;&lt;&gt;&#34;' in html
    assert 'run &<>"' not in html
    assert html.lower().count("<script") == 1  # only the page's own sorting script


def test_unconditional_run_shows_one_grid(tmp_path, toy):
    run = make_run(tmp_path / "dc", toy, conditional=False)
    html = write_report([run], tmp_path / "r.html", audits=[fake_audit(toy)]).read_text()
    assert "Generated (left) beside real (right)</h4>" in html
    assert "per class</h4>" not in html


def test_audit_accessors_read_the_schema_as_is(toy):
    audit = fake_audit(toy, fd=3.0, generated_shares={"0": 0.6, "1": 0.2, "2": 0.2})
    s = summary_metrics(audit)
    assert s["fd"] == {"value": 3.0, "floor": 2.0, "ci_low": 2.7, "ci_high": pytest.approx(3.3),
                       "better": "lower", "ideal": 0.0, "sample_size": 100, "fd_infinity": None}
    assert shares(audit, "class") == ({"0": 0.5, "1": 0.25, "2": 0.25}, {"0": 0.6, "1": 0.2, "2": 0.2})
    assert shares(audit, "domain") is None


def test_missing_audit_is_a_clear_error(tmp_path, toy):
    run = make_run(tmp_path / "run", toy)
    with pytest.raises(RunDirError, match=r"audit\.json is missing: the audit results \(run `datakit audit`"):
        read_audited_run(run)


def test_report_tolerates_missing_optional_parts(tmp_path, toy):
    run = make_run(tmp_path / "run", toy)
    (run / "metrics.csv").unlink()
    (run / "training.gif").unlink()
    html = write_report([run], tmp_path / "r.html", audits=[fake_audit(toy)]).read_text()
    assert "metrics.csv is missing; no training curves." in html


# -- CLI -----------------------------------------------------------------------------------

@pytest.fixture
def fake_audit_run(monkeypatch, toy):
    """Stand in for the audit computation (tested on its own) so the CLI is tested alone."""
    import datakit.audit.many

    def audit_run(run_dir, config=None):
        audit = fake_audit(toy).to_dict()
        path = run_dir / "audit" / "audit.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(audit))
        return audit

    monkeypatch.setattr(datakit.audit.many, "audit_run", audit_run)


def test_cli_audit_writes_the_default_report_and_prints_json(tmp_path, toy, fake_audit_run):
    run = make_run(tmp_path / "run", toy)
    result = CliRunner().invoke(main, ["audit", str(run), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["summary"]["fd"]["value"] == 20.0
    assert (run / "audit" / "report.html").exists()


def test_cli_audit_no_cas_leaves_the_cas_classifier_out(tmp_path, toy, monkeypatch):
    import datakit.audit.many
    seen = []

    def audit_run(run_dir, config=None):
        seen.append(config.cas)
        raise SystemExit(0)   # the configuration is all this test looks at
    monkeypatch.setattr(datakit.audit.many, "audit_run", audit_run)
    run = make_run(tmp_path / "run", toy)
    CliRunner().invoke(main, ["audit", str(run), "--no-cas"])
    CliRunner().invoke(main, ["audit", str(run)])
    assert seen == [False, True]


def test_a_report_that_cannot_be_written_leaves_no_stale_page_beside_the_new_audit(tmp_path, toy, fake_audit_run,
                                                                                   monkeypatch):
    import datakit.report.html as page
    run = make_run(tmp_path / "run", toy)
    assert CliRunner().invoke(main, ["audit", str(run)]).exit_code == 0
    report = run / "audit" / "report.html"

    def full(path, text):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(page, "atomic_write_text", full)
    result = CliRunner().invoke(main, ["audit", str(run)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().endswith(
        f"Error: The report {report} could not be written (No space left on device); the audits are in each "
        "run's audit/audit.json, and the older report.html, which no longer matched them, was removed. Free "
        "space (or choose another --out) and run `datakit audit --reuse` on the same runs to write it.")
    assert not report.exists() and (run / "audit" / "audit.json").exists()


def test_cli_audit_several_runs(tmp_path, toy, fake_audit_run):
    a, b = make_run(tmp_path / "a", toy), make_run(tmp_path / "b", toy)
    out = tmp_path / "cmp.html"
    result = CliRunner().invoke(main, ["audit", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"Report: {out}")
    assert "Runs compared" in out.read_text()


def test_cli_audit_prints_each_runs_verdict_before_the_report(tmp_path, toy, fake_audit_run):
    a, b = make_run(tmp_path / "a", toy), make_run(tmp_path / "b", toy)
    out = tmp_path / "cmp.html"
    result = CliRunner().invoke(main, ["audit", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    sentence = Audit.from_dict(fake_audit(toy).to_dict()).verdict.sentence
    assert result.stdout.splitlines() == [f"{a}: {sentence}", f"{b}: {sentence}", f"Report: {out}"]


def test_an_audit_page_shows_every_path_relative_to_its_own_folder(tmp_path, toy, fake_audit_run):
    """The header says "Paths are relative to this page's folder": the run, its training set
    and the reference images are shown so, wherever --out puts the page, and each leads from
    the page's folder to the file (audit.json keeps the reference relative to RUN_DIR/audit)."""
    from datakit.report.portable import absolute_paths
    run = make_run(tmp_path / "runs" / "a", toy)
    out = tmp_path / "pages" / "cmp.html"
    assert CliRunner().invoke(main, ["audit", str(run), "--out", str(out)]).exit_code == 0
    audit = json.loads((run / "audit" / "audit.json").read_text())
    audit["reference"]["manifest"] = str(Path("..", "..", "..", toy.path.name))  # as the audit stores it
    (run / "audit" / "audit.json").write_text(json.dumps(audit))
    assert CliRunner().invoke(main, ["audit", str(run), "--out", str(out), "--reuse"]).exit_code == 0
    html = out.read_text()
    assert "Paths are relative to this page's folder." in html and absolute_paths(html) == []
    shown = re.search(r"Reference real images: <code>([^<]+)</code>", html).group(1)
    assert (out.parent / shown).resolve() == toy.path.resolve()
    assert f"<code>{Path('..', toy.path.name)}</code>" in html           # the training set
    assert f"Folder <code>{Path('..', 'runs', 'a')}</code>" in html


def test_cli_audit_judge_manifest_reaches_the_audit(tmp_path, toy, monkeypatch):
    import datakit.audit.many
    seen = []

    def audit_run(run_dir, config=None):
        seen.append(config.judge_manifest)
        return fake_audit(toy).to_dict()

    monkeypatch.setattr(datakit.audit.many, "audit_run", audit_run)
    a, b = make_run(tmp_path / "a", toy), make_run(tmp_path / "b", toy)
    result = CliRunner().invoke(main, ["audit", str(a), str(b), "--judge-manifest", str(toy.path),
                                       "--out", str(tmp_path / "cmp.html")])
    assert result.exit_code == 0, result.output
    assert seen == [str(toy.path), str(toy.path)]


def test_cli_audit_missing_run_dir(tmp_path):
    result = CliRunner().invoke(main, ["audit", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output == (f"Error: Run directory {tmp_path / 'nope'} does not exist. "
                             "Pass a folder written by `datakit train`.\n")


def test_conditional_shares_use_the_judges_reading(toy):
    # the judge reads 90% of the samples as class 0 (the per-class generated_share); the
    # conditioning labels asked for a third each (amplification.classes: generated_share)
    audit = fake_audit(toy, generated_shares={"0": 0.9, "1": 0.05, "2": 0.05}).to_dict()
    for r in audit["amplification"]["classes"]["rows"]:
        r["judged_share"], r["generated_share"] = r["generated_share"], 1 / 3
    assert shares(Audit.from_dict(audit), "class")[1] == {"0": 0.9, "1": 0.05, "2": 0.05}


# -- the study page: comparison first ---------------------------------------------------------

@pytest.fixture(scope="module")
def study_page(tmp_path_factory):
    """A fake 4-arm × 3-seed study (10 classes of 28×28, 32 samples a class) and its page."""
    import os
    import shutil
    root = tmp_path_factory.mktemp("study")
    (root / "manifests").mkdir()
    dirs, audits, study = fake_study(root)
    page = write_report(dirs, root / "report.html", audits=audits, title="Fake study",
                        intro="Does the arm matter?", study=study, relative_paths=True,
                        labels=[f"arm{a} (seed {s})" for a in range(4) for s in range(3)],
                        arm_seeds=[(f"arm{a}", s) for a in range(4) for s in range(3)],
                        command=["/usr/bin/datakit", "study", str(root / "fake.toml"), "--out", str(root)])
    keep = os.environ.get("DATAKIT_KEEP_REPORT")
    if keep:
        shutil.copy(page, keep)
    return page


def test_study_page_opens_with_the_comparison_and_stays_small(study_page):
    html = study_page.read_text()
    order = [html.index(h) for h in ("1. Verdict", "2. Contrasts", "Each metric across arms",
                                     "3. Classes across runs", "4. Runs compared", "Training sets",
                                     'id="runs"')]
    assert order == sorted(order)
    assert study_page.stat().st_size < 4_000_000
    assert "inconclusive at this budget" in html
    # the collapsed class of the last arm is marked in every one of its runs, in the cell
    assert html.count(" ✗ C</td>") + html.count(" C</td>") >= 3
    assert "Class <b>1</b>:" in html and "collapsed in 3 of 12 runs" in html
    # each arm's training set once, referenced by its three runs
    assert html.count('<details class="dataset"') == 4
    assert html.count('<details class="run"') == 12 and '<details class="run" id="run-0" open' not in html
    # provenance: the command as typed, relative paths, no path of this machine
    assert "datakit study fake.toml --out ." in html
    assert str(study_page.parent) not in html and "/tmp/" not in html


def test_runs_compared_has_short_headers_explained_by_a_legend(study_page):
    # short headers keep the 15 columns within 1024 px at 10 pt; the legend names each one
    html = study_page.read_text()
    section = html[html.index("4. Runs compared"):html.index('id="datasets"')]
    assert '<th class="sticky">run</th>' in section and "&#34;" not in section
    heads = re.findall(r"<th>([^<]*)</th>", section.split("</thead>")[0])
    assert heads[:2] == ["steps", "images"] and "coll" in heads and "fail" in heads
    assert all(len(h) <= 6 for h in heads), heads
    assert re.findall(r"<dt>([^<]*)</dt>", section) == heads


def test_runs_compared_shows_the_steps_each_run_trained():
    # A run that stopped on its probe's plateau at 3,250 of its 5,000 steps reads 3,250 in
    # "Runs compared" (its header says "training steps done"), not the planned 5,000.
    from datakit.report.run_data import RunData

    stopped = RunData(Path("run"), "stopped", {"model": "acgan", "steps": 5000, "steps_done": 3250},
                      audit=None)
    older = RunData(Path("run"), "older", {"model": "acgan", "steps": 1000}, audit=None)
    assert stopped.properties()["steps"] == 3250
    assert older.properties()["steps"] == 1000


def test_every_per_class_table_has_a_csv_link(study_page):
    import urllib.parse
    html = study_page.read_text()
    links = re.findall(r'href="data:text/csv;charset=utf-8,([^"]*)"', html)
    assert len(links) >= 4 + 12  # the four heatmaps and each run's per-class table
    tables = [urllib.parse.unquote(x).splitlines() for x in links]
    heat = [t for t in tables if t[0].startswith("class,arm0 s0,arm0 s1")]
    assert len(heat) == 4 and all(len(t) == 11 for t in heat)
    per_class = [t for t in tables if t[0].startswith("class,train,") or "collapse_evidence" in t[0]]
    assert len(per_class) == 12


def test_a_study_verdict_warns_where_an_arm_is_conclusively_worse(study_page):
    # the fake arms' FD is 3 per arm higher on every seed, and the last arm's 20 more: arm3
    # (+29) is conclusively worse than arm0 (a warning); arm1's +3 is within the image noise
    html = study_page.read_text()
    verdict = re.search(r'<h2 id="verdict">.*?</ul>', html, flags=re.S).group(0)
    warns = re.findall(r'<li class="warn(?: answer)?"><span class="sev">warn</span> ([^<]*)</li>', verdict)
    assert any(w.startswith("arm3 is worse than arm0 on FD (lower is better): arm3 − arm0 = +29, "
                            "95% interval [") for w in warns), warns
    assert "arm1 is worse" not in html


def test_numbers_in_the_verdict_appear_in_the_tables(study_page):
    html = study_page.read_text()
    verdict = re.search(r'<h2 id="verdict">.*?</ul>', html, flags=re.S).group(0)
    tables = " ".join(re.findall(r"<table.*?</table>", html, flags=re.S))
    cells = set(re.findall(r">([^<>]*)<", tables))
    words = {w.strip("[],;") for c in cells for w in c.split()}
    quoted = re.findall(r"[+-−]?\d+\.\d+(?:e[+-]\d+)?", verdict)
    assert quoted
    missing = [q for q in quoted if q not in words]
    assert missing == [], missing


def test_sample_evidence_is_shown_at_twice_its_pixels(study_page):
    html = study_page.read_text()
    # per class: 32 generated beside 32 real (8 a row: 4 rows of 29 px + 1, 2 halves + gap), at 2×
    # the fake held-out sets hold fewer than 32 images of a class: all of them are shown
    shown = [int(n) for n in re.findall(r"32 generated \| (\d+) real", html)]
    assert shown and max(shown) >= 16
    # a 32 | 32 sprite is 2 × (8 columns of 29 px) + gap by 4 rows of 29 px, shown at 2×
    assert 'width="944" height="234"' in html
    # a collapsed class shows its samples above their nearest training images
    assert "closest to a training image (top)" in html
    # five grids over time, and the animation inline
    assert html.count("alt=\"samples at step") >= 5 * 4
    assert "data:image/gif;base64," in html and "training.gif" not in html
    # each grid over time: the class names left of 4 samples a class (of the trainer's 8), at 2×
    grids = re.findall(r'width="(\d+)" height="(\d+)" alt="samples at step', html)
    assert grids and set(grids) == {(str(2 * (8 + 6 * 1 + 1 + 4 * 29)), str(2 * (1 + 10 * 29)))}
    # a crowded page's animations are re-encoded below 100 kB each
    gifs = re.findall(r'src="data:image/gif;base64,([^"]*)"', html)
    assert len(gifs) == 4 and all(len(base64.b64decode(g)) <= 100_000 for g in gifs)


def test_sample_pictures_keep_black_white_and_move_pixels_by_at_most_half_a_level():
    from datakit.report.evidence import fewer_levels
    grey = np.arange(256, dtype=np.uint8)
    five_bits = fewer_levels(grey, 32)
    assert len(np.unique(five_bits)) == 32 and five_bits[0] == 0 and five_bits[-1] == 255
    assert np.abs(five_bits.astype(int) - grey).max() <= 255 / 31 / 2 + 0.5
    assert np.array_equal(fewer_levels(grey, 256), grey)  # 256 levels: unchanged


def test_grid_over_time_is_cut_to_the_first_samples_of_each_class(tmp_path):
    from PIL import Image
    from datakit.report.evidence import labelled_grid
    from datakit.report.inline import image_grid
    cells = np.zeros((3 * 8, 10, 10, 1), dtype=np.uint8)
    cells[:, 2:8, 2:8] = 255  # a white square in every cell
    Image.fromarray(image_grid(cells, 8)[..., 0]).save(tmp_path / "step_000010.png")
    pic = labelled_grid(tmp_path / "step_000010.png", ["a", "b", "c"], columns=4)
    # 3 rows of 11 px + 1; 4 columns of 11 px + 1, after a label margin of 8 + 6 px
    assert (pic.width, pic.height) == (2 * (14 + 1 + 4 * 11), 2 * (1 + 3 * 11))
    # a grid whose rows are not the classes is shown whole, unlabelled
    Image.fromarray(np.zeros((40, 90), dtype=np.uint8)).save(tmp_path / "step_000020.png")
    pic = labelled_grid(tmp_path / "step_000020.png", ["a", "b", "c", "d", "e", "f", "g", "h"], columns=4)
    assert (pic.width, pic.height) == (2 * 90, 2 * 40)


def test_a_class_missing_a_mode_shows_the_real_images_its_samples_miss(tmp_path, toy):
    from datakit.audit.schema import Finding
    run = make_run(tmp_path / "run", toy)
    t = toy.table
    ids = t.loc[t["class_name"] == "2", "id"].astype(str).tolist()[:4]
    missed = Finding("modes", "fail", ["2"], "Class 2 collapsed: its samples cover 1 of 2 real modes.",
                     {"test": "modes", "kind": "modes",
                      "missed": [{"real_share": 0.5, "expected": 3.0, "got": 0, "examples": ids + ["not/an/id"]}]})
    html = write_report([run], tmp_path / "r.html",
                        audits=[fake_audit(toy, collapsed=("2",), findings=[missed])]).read_text()
    caption = html[html.index("What its samples miss"):]
    assert caption.startswith("What its samples miss: real images of the mode nearest its centre (it holds\n"
                              "50% of the class's real images; 0 of its samples\nland there where real images "
                              "would put 3).</figcaption>")
    assert re.match(r'</figcaption>\s*<img class="px" src="data:image/png;base64,[^"]+" width="\d+" height="\d+" '
                    r'alt="class 2: real images of the mode its samples miss">',
                    caption[caption.index("</figcaption>"):])
    # a class that is not collapsed shows no such picture
    html = write_report([run], tmp_path / "r2.html", audits=[fake_audit(toy, findings=[missed])]).read_text()
    assert "What its samples miss" not in html
