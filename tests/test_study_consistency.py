"""A study's pages say one thing once: no absolute path, no link to a file that does not ship
beside the page, one manifest name for one content, each contrast once (fake runs and tiny
manifests: nothing is trained)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from datakit.report.portable import absolute_paths, outside_links
from datakit.study.arms import Reference, _reuse_or_make
from datakit.study.spec import parse_study
from fake_runs import fake_audit, stroke_manifest, written_study

REPORTS = Path(__file__).resolve().parent.parent / "audits" / "reports"


def test_absolute_paths_are_found_and_nothing_else():
    text = ('<td>/home/someone/datakit/studies/x/runs/a</td> --out /tmp/s C:\\data\\x '
            '</td> max/min runs/a/seed0 /* css */ http://example.org/a/b '
            '<img src="data:image/png;base64,iVBO/ab/cd+ef">')
    assert absolute_paths(text) == ["/home/someone/datakit/studies/x/runs/a", "/tmp/s", "C:\\d"]


@pytest.mark.parametrize("page", sorted(REPORTS.glob("*.html")) + sorted(REPORTS.glob("*.json")),
                         ids=lambda p: p.name)
def test_committed_reports_hold_no_absolute_path_and_link_nowhere(page):
    text = page.read_text(encoding="utf-8")
    assert absolute_paths(text) == []
    if page.suffix == ".html":
        assert outside_links(text, page.parent) == []


def test_a_written_study_is_portable_and_compares_each_pair_once(tmp_path):
    # Planted: the pair (s_100, s_200) is asked for in the study file and also added by the
    # sweep over size; it was listed twice, and its factor read "images, skew".
    # s_100 is also skewed, so the two arms differ in images and skew
    ms = {a: stroke_manifest(tmp_path / "manifests" / f"{a}.parquet", {"0": n, "1": n // k}, 8,
                             seed=i)
          for i, (a, n, k) in enumerate((("s_100", 10, 2), ("s_200", 20, 1), ("s_400", 40, 1)))}
    study = parse_study({"study": {"name": "c", "seeds": [0, 1]},
                         "arm": [{"name": a, "manifest": str(ms[a].path)} for a in ms],
                         "compare": {"contrasts": [["s_100", "s_200"]], "factor": "images"}})
    report, path = written_study(tmp_path, study, ms, Reference("s_400", ms["s_400"].path,
                                                              ms["s_400"].checksum),
                                 lambda a, s, m: fake_audit(m, fd=10.0 + s), seeds=(0, 1))
    html, text = report.read_text(), path.read_text()
    assert absolute_paths(html) == [] and absolute_paths(text) == []
    assert str(tmp_path) not in html and str(tmp_path) not in text
    assert outside_links(html, report.parent) == []
    contrasts = json.loads(text)["contrasts"]
    pairs = [(c["a"], c["b"], c["metric"]) for c in contrasts]
    assert len(pairs) == len(set(pairs))
    fd = [(c["factor"], c["a"], c["b"], c["asked"]) for c in contrasts if c["metric"] == "fd"]
    assert fd == [("images", "s_100", "s_200", True), ("images", "s_200", "s_400", False)]


def test_one_manifest_name_means_one_content(tmp_path, make_manifest):
    # Planted (mnist_size and mnist_size_b05): the same inputs, hence the same input digest,
    # composed by two datakit versions into different images, got one name in two folders.
    one = make_manifest({"0": 4, "1": 4}, name="one", seed=1)
    two = make_manifest({"0": 4, "1": 4}, name="two", seed=2)

    def made(source, folder):
        from datakit.composition.build import compose
        out = folder / "mnist_500-6f20a44f50.parquet"
        return _reuse_or_make(out, "compose mnist_500", "test", lambda: compose([source], out))
    a = made(one, tmp_path / "study_a")
    b = made(two, tmp_path / "study_b")
    assert a.checksum != b.checksum
    assert a.path.name == f"mnist_500-{a.checksum[:10]}.parquet"
    assert b.path.name == f"mnist_500-{b.checksum[:10]}.parquet" != a.path.name
    assert not (tmp_path / "study_a" / "mnist_500-6f20a44f50.parquet").exists()
    # the next run finds it by its inputs, without composing again
    again = _reuse_or_make(tmp_path / "study_a" / "mnist_500-6f20a44f50.parquet", "compose", "x",
                           lambda: pytest.fail("composed again"))
    assert again.path == a.path and again.checksum == a.checksum
    # a folder of an older version (named by its inputs only) is adopted under its content name
    from datakit.composition.build import compose
    old = compose([one], tmp_path / "study_c" / "mnist_500-6f20a44f50.parquet")
    adopted = _reuse_or_make(Path(old.path), "compose", "x", lambda: pytest.fail("composed again"))
    assert adopted.path.name == f"mnist_500-{old.checksum[:10]}.parquet"
    assert json.loads(adopted.sidecar_path.read_text())["name"] == adopted.path.name[:-8]


def test_the_first_screen_of_a_study_leads_with_its_answer(tmp_path):
    # Planted: arm b is conclusively better on FD; before, every run's headline and then
    # whichever warning sorted first opened the page.
    import re
    ms = {a: stroke_manifest(tmp_path / "manifests" / f"{a}.parquet", {"0": 20, "1": 20}, 8, seed=i)
          for i, a in enumerate(("a", "b"))}
    study = parse_study({"study": {"name": "ans", "seeds": [0, 1, 2]},
                         "arm": [{"name": a, "manifest": str(ms[a].path)} for a in ms],
                         "compare": {"contrasts": [["a", "b"]], "reference": "a"}})

    def audit_for(arm, seed, m):
        return fake_audit(m, fd=(40.0 if arm == "a" else 10.0) + seed)
    report, path = written_study(tmp_path, study, ms, Reference("a", ms["a"].path, ms["a"].checksum),
                                 audit_for)
    html = report.read_text()
    verdict = html[html.index('<h2 id="verdict">'):html.index('<h2 id="study">')]
    first = re.search(r'<li class="([a-z ]+)"><span class="sev">\w+</span> ([^<]*)</li>', verdict)
    assert "answer" in first.group(1)
    assert first.group(2).startswith("FD, b vs a: difference -30")
    assert verdict.index("<li") < verdict.index("Each run's own verdict")
    assert '<p class="headline">' not in verdict
