"""The data-audit page: self-contained, escaped, one or several manifests, composition history."""
import re

import numpy as np
from click.testing import CliRunner

from datakit.cli import main
from datakit.composition.build import compose
from datakit.manifest.write import write_manifest
from datakit.report.dataset import composition_section, jinja_environment, render_dataset_report
from datakit.sources.common import build_table

EVIL = "<script>alert(1)</script>"


def evil_manifest(folder):
    """A manifest whose class name, subset, source and folder all carry markup (and a class
    name that matplotlib would read as broken mathtext)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    records = [{"id": f"e/{i}", "dataset": "evil", "subset": EVIL, "split": "train", "domain": "wild",
                "label": i % 3, "class_name": [r"$\frac{1}{$", EVIL, "0"][i % 3], "source": EVIL,
                "orig_width": 8, "orig_height": 8, "orig_mode": "L"} for i in range(6)]
    return write_manifest(folder / "evil.parquet", build_table(records, images), images,
                          {"command": f"datakit ingest {EVIL}"})


def test_section_has_the_documented_keys(tmp_path, make_manifest):
    m = make_manifest({"0": 6, "1": 3})
    c = compose([m], tmp_path / "c.parquet", skew="step:0.5", seed=1)
    s = composition_section(c)
    for key in ("name", "path", "checksum", "images", "geometry", "figures", "balance", "classes",
                "domains", "subsets", "splits", "sizes", "missing_classes", "low_count_classes", "examples",
                "duplicates", "leakage", "history", "parents", "seed", "stats"):
        assert key in s
    assert s["images"] == 9 and [r["images"] for r in s["classes"]] == [6, 3]
    assert s["figures"]["class_counts"].startswith("data:image/png;base64,")
    assert [e["class_name"] for e in s["examples"]] == ["0", "1"]
    assert all(e["uri"].startswith("data:image/png;base64,") for e in s["examples"])
    assert s["sizes"] == [{"subset": "toy", "median": "8×8", "range": "8–8 × 8–8", "most_common": "8x8 (9)",
                           "mean_intensity": f"{np.asarray(c.pixels).mean():.1f}"}]
    assert [h["op"] for h in s["history"]] == ["vocabulary", "skew", "geometry"]
    assert s["parents"][0]["checksum"] == m.checksum and s["seed"] == 1


def test_page_is_self_contained_and_escapes_data(tmp_path):
    m = evil_manifest(tmp_path / EVIL)
    out = render_dataset_report([m], tmp_path / "report.html")
    html = out.read_text()
    assert EVIL not in html  # class name, subset, folder, command: all escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    # no network: every src/href is inline
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith("data:"), url
    assert "http://" not in html and "https://" not in html
    assert not list(tmp_path.glob(".report.html.tmp-*"))


def test_several_manifests_side_by_side_with_history(tmp_path, make_manifest):
    a = make_manifest({"0": 5, "1": 5}, name="alpha")
    b = compose([a], tmp_path / "beta.parquet", class_counts="0=5,1=1", holdout=0.4)
    out = tmp_path / "sub" / "page.html"
    r = CliRunner().invoke(main, ["stats", str(a.path), str(b.path), "--html", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.endswith(f"Wrote {out}\n")
    html = out.read_text()
    assert html.count('<section class="dk-composition">') == 2
    assert "<h2>alpha</h2>" in html and "<h2>beta</h2>" in html
    assert "class_counts" in html and "Composed from:" in html and str(a.path.resolve()) in html
    assert "dk-n2" in html


def test_partial_can_be_embedded_by_another_template(tmp_path, make_manifest):
    # The run-audit report includes the macro this way; it must render on its own.
    section = composition_section(make_manifest({"0": 3, "1": 3}))
    env = jinja_environment()
    tpl = env.from_string('{% from "_composition.html" import composition_section %}'
                          '<div>{{ composition_section(s, heading="h3") }}</div>')
    html = tpl.render(s=section)
    assert "<h3>toy</h3>" in html and "Duplicates and leakage" in html


def test_duplicate_findings_carry_pictures_of_the_group(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    images = np.concatenate([base, base[:1]])  # image 0 twice: once in train, once in test
    records = [{"id": f"d/{i}", "dataset": "d", "subset": "d", "split": "test" if i == 4 else "train",
                "domain": "wild", "label": 0, "class_name": "0", "source": "gen", "orig_width": 8,
                "orig_height": 8, "orig_mode": "L"} for i in range(5)]
    m = write_manifest(tmp_path / "d.parquet", build_table(records, images), images, {"command": "t"})
    s = composition_section(m)
    ex = s["duplicates"]["exact"]["examples"]
    assert len(ex) == 1 and sorted(ex[0]["ids"]) == ["d/0", "d/4"]
    assert ex[0]["uri"].startswith("data:image/png;base64,")
    assert s["leakage"]["exact"]["examples"][0]["uri"].startswith("data:image/png;base64,")
    assert "uri" not in m.stats["exact_duplicates"]["examples"][0]  # the sidecar stays picture-free


def test_unwritable_page_is_a_clean_error(tmp_path, make_manifest):
    m = make_manifest({"0": 2})
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = CliRunner().invoke(main, ["stats", str(m.path), "--html", str(blocker / "page.html")])
    assert r.exit_code == 1
    assert r.output.splitlines()[-1].startswith(f"Error: Cannot write the data-audit page {blocker / 'page.html'} (")
