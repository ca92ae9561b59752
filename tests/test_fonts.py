"""The embedded ``fonts`` source: glyphs rendered from the machine's fonts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from datakit.errors import DatakitError, SourceNotFound, UnknownName
from datakit.sources import fonts
from datakit.sources.fonts import ingest_fonts


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return ingest_fonts(size=16, per_class=10, classes="digits", seed=3,
                        out=tmp_path_factory.mktemp("fonts"))


def test_rows_splits_and_geometry(digits):
    t = digits.table
    assert len(digits) == 100 and digits.geometry.shape == (16, 16, 1)
    assert digits.name == "fonts-digits" and digits.vocabulary == [str(d) for d in range(10)]
    assert set(t["dataset"]) == {"fonts"} and set(t["subset"]) == {"fonts"}
    assert set(t["domain"]) == {"synthetic"}
    assert (t.groupby("class_name").size() == 10).all()
    # Every fifth image of each class is held out for the judge.
    test_rows = t[t["split"] == "test"]
    assert len(test_rows) == 20
    assert sorted(set(test_rows["id"].str[-5:].astype(int))) == [4, 9]
    assert digits.meta["config"]["seed"] == 3 and digits.meta["config"]["per_class"] == 10


def test_dark_glyph_on_a_light_page_filling_the_frame(digits):
    px = digits.images()[..., 0].astype(int)
    border = np.concatenate([px[:, 0], px[:, -1], px[:, :, 0], px[:, :, -1]], axis=1)
    assert np.median(border, axis=1).min() >= 225          # page
    assert px.reshape(len(px), -1).min(axis=1).max() <= 80  # every image has dark ink
    for im in px:
        ys, xs = np.nonzero(im < 128)
        assert max(np.ptp(ys), np.ptp(xs)) + 1 >= 0.6 * 16     # tight fit, like Chars74K Fnt


def test_deterministic_for_a_seed_and_per_class(tmp_path, digits):
    again = ingest_fonts(size=16, per_class=10, classes="digits", seed=3, out=tmp_path / "a")
    other = ingest_fonts(size=16, per_class=10, classes="digits", seed=4, out=tmp_path / "b")
    assert again.checksum == digits.checksum
    assert not np.array_equal(other.images(), digits.images())
    # A class's images do not depend on which other classes are rendered.
    everything = ingest_fonts(size=16, per_class=10, classes="all", seed=3, out=tmp_path / "c")
    assert len(everything) == 620 and everything.vocabulary[10] == "A"
    assert np.array_equal(everything.images()[:100], digits.images())
    assert set(everything.table["label"]) == set(range(62))


def test_bundled_font_families_are_used_and_non_text_fonts_are_not():
    names = {p.name for p in fonts.available_fonts()}
    assert {"DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf",
            "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf"} <= names
    assert not names & {"cmex10.ttf", "cmsy10.ttf", "LastResortHE-Regular.ttf"}
    display = next(p for p in fonts.bundled_fonts() if p.name == "DejaVuSansDisplay.ttf")
    assert not fonts._has_glyph(str(display), "A")         # no letters in it: not used
    assert fonts._has_glyph(str(display.with_name("DejaVuSans.ttf")), "A")


def test_sidecar_lists_the_fonts_it_drew_from(digits):
    used = {Path(i["path"]).name for i in digits.meta["inputs"]}
    assert len(used) >= 10 and all(len(i["sha256"]) == 64 for i in digits.meta["inputs"])
    sources = {s.split(":")[0] for s in digits.table["source"]}
    assert sources == used


def test_stroke_weight_and_rotation_change_the_glyph():
    font = str(fonts.bundled_fonts()[0].with_name("DejaVuSans.ttf"))
    args = dict(fill=0.9, dx=0.0, dy=0.0, page=255, ink=0)
    def ink(im):
        return (255 - im.astype(int)).sum()
    thin, bold = (fonts.render_glyph(font, "O", 32, angle=0.0, stroke=s, **args) for s in (0, 2))
    assert ink(bold) > 1.25 * ink(thin)
    upright, tilted = (fonts.render_glyph(font, "l", 32, angle=a, stroke=0, **args) for a in (0, 10))
    cols = [np.nonzero(im < 128)[1] for im in (upright, tilted)]
    assert np.ptp(cols[1]) > np.ptp(cols[0]) + 2              # a tilted "l" spans more columns


def test_given_font_files_only(tmp_path):
    one = fonts.bundled_fonts()[0].with_name("cmtt10.ttf")
    m = ingest_fonts(size=8, per_class=2, classes="lower", font_files=[one], out=tmp_path)
    assert {s.split(":")[0] for s in m.table["source"]} == {"cmtt10.ttf"}
    assert m.name == "fonts-lower" and m.vocabulary[0] == "a"


def test_bad_arguments(tmp_path):
    with pytest.raises(UnknownName, match="digits, upper, lower, all"):
        ingest_fonts(classes="greek", out=tmp_path)
    with pytest.raises(DatakitError, match=r"--per-class must be a positive whole number, got 0"):
        ingest_fonts(per_class=0, out=tmp_path)
    with pytest.raises(SourceNotFound, match=r"Font file .*nope.ttf does not exist"):
        ingest_fonts(font_files=[tmp_path / "nope.ttf"], out=tmp_path)
    notafont = tmp_path / "x.ttf"
    notafont.write_bytes(b"not a font")
    with pytest.raises(SourceNotFound, match=r"x.ttf cannot be read"):
        ingest_fonts(font_files=[notafont], out=tmp_path)
    assert not list(tmp_path.glob("*.parquet"))


def test_cli(tmp_path):
    from datakit.cli import main
    r = CliRunner().invoke(main, ["ingest", "fonts", "--classes", "upper", "--per-class", "2",
                                  "--size", "12", "--seed", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert f"Wrote {tmp_path / 'fonts-upper.parquet'} (52 images, 12x12x1)" in r.output
    assert "splits: train=52" in r.output
    r = CliRunner().invoke(main, ["ingest", "fonts", "--size", "4", "--out", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output == "Error: Unsupported --size 4 for fonts; use a whole number from 8 to 512.\n"
