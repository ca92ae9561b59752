"""Chars74K source on tiny trees and .tgz archives written here in the real layout."""
from __future__ import annotations

import io
import json
import re
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from datakit.errors import FormatError, SourceNotFound, UnknownName, UnsafeArchive
from datakit.manifest.read import read_manifest
from datakit.sources import chars74k
from datakit.sources._io import archive as archive_reader
from datakit.sources.chars74k import ingest_chars74k
from datakit.sources.common import without_skip_advice

FNT = "English/Fnt"
GOOD = "English/Img/GoodImg/Bmp"
HND = "English/Hnd/Img"


def png(w: int = 20, h: int = 20, *, mode: str = "L", bg=255, ink=0, seed: int = 0) -> bytes:
    """A glyph-like PNG: a ``bg`` page with a block of ``ink`` whose place depends on ``seed``."""
    im = Image.new(mode, (w, h), bg)
    x, y = seed % max(1, w // 2), (seed * 7) % max(1, h // 2)
    im.paste(ink, (x, y, x + max(1, w // 3), y + max(1, h // 3)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(w: int = 60_000, h: int = 60_000) -> bytes:
    """A tiny PNG whose header declares a huge image (what a decompression bomb looks like)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def name_of(sample: int, i: int) -> str:
    return f"Sample{sample:03d}/img{sample:03d}-{i:05d}.png"


def fnt_files(samples=(1, 2, 11, 37), per_class: int = 2) -> dict[str, bytes]:
    return {name_of(s, i + 1): png(seed=s * 3 + i) for s in samples for i in range(per_class)}


def write_tree(root: Path, folder: str, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    for rel, data in files.items():
        p = root / folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for d in dirs:
        (root / folder / d).mkdir(parents=True, exist_ok=True)
    return root


def write_tgz(path: Path, folder: str, files: dict[str, bytes], *, dirs: tuple[str, ...] = (),
              extra: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = ()) -> Path:
    """A gzip tarball in the release's layout: folder entries, then the files, then ``extra``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        folders = sorted({folder} | {f"{folder}/{r.split('/')[0]}" for r in files}
                         | {f"{folder}/{d}" for d in dirs})
        for d in folders:
            ti = tarfile.TarInfo(d)
            ti.type = tarfile.DIRTYPE
            tf.addfile(ti)
        for rel, data in sorted(files.items()):
            ti = tarfile.TarInfo(f"{folder}/{rel}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for item in extra:
            ti, data = item if isinstance(item, tuple) else (item, b"")
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return path


def ingest(path, out, **kw):
    kw.setdefault("subset", "Fnt")
    kw.setdefault("workers", 0)
    return ingest_chars74k(path, out=out, **kw)


# -- what a good ingest produces ------------------------------------------------------

def test_tree_ingest_rows_labels_and_vocabulary(tmp_path):
    root = write_tree(tmp_path / "data", FNT, fnt_files())
    m = ingest(root, tmp_path / "out")
    t = m.table
    assert len(m) == 8 and m.geometry.shape == (32, 32, 1)
    assert m.name == "chars74k-fnt"
    assert m.vocabulary == chars74k.CHARS62
    assert sorted(set(t["class_name"])) == ["0", "1", "A", "a"]
    # Sample011 is "A" (label 10), Sample037 is "a" (label 36): labels index the vocabulary.
    assert dict(zip(t["class_name"], t["label"])) == {"0": 0, "1": 1, "A": 10, "a": 36}
    assert set(t["dataset"]) == {"chars74k"} and set(t["subset"]) == {"Fnt"}
    assert set(t["split"]) == {"train"} and set(t["domain"]) == {"synthetic"}
    assert t["id"].iloc[0] == "chars74k/Fnt/Sample001/img001-00001"
    assert t["source"].iloc[0] == str(root / FNT / "Sample001" / "img001-00001.png")
    assert set(t["orig_width"]) == {20} and set(t["orig_mode"]) == {"L"}
    assert len(m.stats["missing_classes"]) == 58
    assert m.meta["config"]["subset"] == "Fnt" and m.meta["skipped"] == []


def test_archive_and_tree_give_the_same_manifest(tmp_path):
    files = fnt_files()
    tree = write_tree(tmp_path / "tree", FNT, files)
    archive = write_tgz(tmp_path / "arch" / "EnglishFnt.tgz", FNT, files)
    a = ingest(tree, tmp_path / "o1")
    b = ingest(archive.parent, tmp_path / "o2")       # the folder holding the archive
    c = ingest(archive, tmp_path / "o3")              # the archive itself
    d = ingest(tree / "English", tmp_path / "o4")     # English/ itself
    e = ingest(tree / FNT, tmp_path / "o5")           # the subset folder itself
    assert a.checksum == b.checksum == c.checksum == d.checksum == e.checksum
    assert b.table["source"].iloc[0] == "EnglishFnt.tgz:English/Fnt/Sample001/img001-00001.png"
    assert len(b.meta["inputs"][0]["sha256"]) == 64
    assert np.array_equal(a.images(), b.images())


def test_pool_decoding_matches_in_process(tmp_path):
    # More than two batches, so the worker pool really runs; the order must not change.
    files = {name_of(s, i + 1): png(12, 9, seed=i) for s in (1, 12, 40) for i in range(250)}
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, files)
    serial = ingest(archive, tmp_path / "o1", workers=0)
    pooled = ingest(archive, tmp_path / "o2", workers=2)
    assert len(pooled) == 750
    assert pooled.checksum == serial.checksum
    assert pooled.table["source"].tolist() == serial.table["source"].tolist()


def test_classes_digits_keeps_a_ten_class_vocabulary(tmp_path):
    root = write_tree(tmp_path / "d", FNT, fnt_files(samples=(1, 5, 11, 37)), dirs=("Sample010",))
    with pytest.raises(FormatError, match="Sample010"):  # selected and empty: an error
        ingest(root, tmp_path / "o", classes="digits")
    m = ingest(root, tmp_path / "o", classes="digits", on_error="skip")
    assert m.vocabulary == [str(d) for d in range(10)] and m.name == "chars74k-fnt-digits"
    assert sorted(set(m.table["class_name"])) == ["0", "4"]
    assert sorted(set(m.table["label"])) == [0, 4]
    assert m.stats["class_counts"]["9"] == 0 and "9" in m.stats["missing_classes"]


@pytest.mark.parametrize("spelling,canonical", [("badimg", "BadImag"), ("BADIMAG", "BadImag"),
                                                ("goodimg", "GoodImg"), ("HND", "Hnd")])
def test_subset_spellings(spelling, canonical):
    assert chars74k.canonical_subset(spelling).name == canonical


def test_unknown_subset_and_classes():
    with pytest.raises(UnknownName, match="use one of: GoodImg, BadImg"):
        ingest_chars74k(".", subset="Img")
    with pytest.raises(UnknownName, match="digits, upper, lower, all"):
        ingest_chars74k(".", subset="Fnt", classes="vowels")


def test_badimag_and_goodimg_in_one_official_archive(tmp_path):
    archive = tmp_path / "EnglishImg.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        for sub, seed in (("GoodImg", 0), ("BadImag", 5)):
            for i in range(2):
                data = png(30, 18, mode="RGB", bg=(10, 200, 30), ink=(255, 255, 255), seed=seed + i)
                ti = tarfile.TarInfo(f"English/Img/{sub}/Bmp/{name_of(3, i + 1)}")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        msk = png(30, 18)  # GoodImg's masks sit beside Bmp/ and must be ignored
        ti = tarfile.TarInfo(f"English/Img/GoodImg/Msk/{name_of(3, 1)}")
        ti.size = len(msk)
        tf.addfile(ti, io.BytesIO(msk))
    bad = ingest(tmp_path, tmp_path / "o", subset="BadImg")
    good = ingest(tmp_path, tmp_path / "o", subset="goodimg")
    assert len(bad) == 2 and set(bad.table["subset"]) == {"BadImag"}
    assert len(good) == 2 and set(good.table["domain"]) == {"wild"}
    assert good.geometry.channels == 3 and good.name == "chars74k-goodimg"
    assert set(good.table["orig_mode"]) == {"RGB"}


# -- fitting images into the store ---------------------------------------------------

def test_aspect_kept_and_padded_with_the_background_colour(tmp_path):
    im = Image.new("RGB", (40, 20), (200, 50, 50))
    im.paste((0, 0, 255), (15, 5, 25, 15))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    root = write_tree(tmp_path / "d", GOOD, {name_of(11, 1): buf.getvalue()})
    m = ingest(root, tmp_path / "o", subset="GoodImg")
    px = m.images()[0]
    assert px.shape == (32, 32, 3)
    # 40x20 -> 32x16, centred: 8 rows of padding above and below in the page's colour.
    assert (px[:8] == [200, 50, 50]).all() and (px[-8:] == [200, 50, 50]).all()
    # The 10x10 block at (15, 5) lands at (12, 4) + 8 rows of padding, 8x8: still square.
    assert (px[13:19, 13:19] == [0, 0, 255]).all()
    assert (px[11, 13:19] == [200, 50, 50]).all() and (px[21, 13:19] == [200, 50, 50]).all()
    assert m.table["orig_width"].iloc[0] == 40 and m.table["orig_height"].iloc[0] == 20


def test_channels_override_and_odd_modes(tmp_path):
    rgba = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (4, 4, 12, 12))
    palette = Image.new("P", (16, 24), 3)
    deep = Image.fromarray(np.full((10, 10), 40000, np.uint16))
    files = {}
    for i, im in enumerate((rgba, palette, deep)):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        files[name_of(2, i + 1)] = buf.getvalue()
    root = write_tree(tmp_path / "d", GOOD, files)
    m = ingest(root, tmp_path / "o", subset="GoodImg", channels=1)
    assert m.geometry.channels == 1
    assert m.table["orig_mode"].tolist() == ["RGBA", "P", "I;16"]
    px = m.images()
    assert px[0, 0, 0, 0] == 255 and px[0, 16, 16, 0] == 0   # transparent -> white page
    assert abs(int(px[2, 16, 16, 0]) - round(40000 / 65535 * 255)) <= 1  # 16 bits scaled


def test_hnd_scans_are_cropped_to_the_ink(tmp_path):
    scan = Image.new("RGB", (300, 220), (255, 255, 255))
    scan.paste((0, 0, 0), (200, 150, 230, 190))   # a small mark far from the centre
    buf = io.BytesIO()
    scan.save(buf, format="PNG")
    root = write_tree(tmp_path / "d", HND, {name_of(1, 1): buf.getvalue()})
    m = ingest(root, tmp_path / "o", subset="Hnd")
    px = m.images()[0, :, :, 0]
    assert m.geometry.channels == 1 and set(m.table["domain"]) == {"handwritten"}
    assert (px < 128).mean() > 0.3            # the mark fills the frame, not 2% of it
    assert px[0].min() > 200 and px[-1].min() > 200  # a margin of paper is kept around it


# -- bad input -------------------------------------------------------------------------

BAD_FILES = {
    "empty": (b"", "is empty (0 bytes)"),
    "garbage": (b"this is not a png at all", "is not a readable image"),
    "truncated": (png(64, 64, seed=3)[:90], "is truncated or corrupt"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("layout", ["tree", "archive"])
def test_bad_png_raises_or_is_skipped(tmp_path, kind, layout):
    data, reason = BAD_FILES[kind]
    files = fnt_files(samples=(1,))
    files[name_of(1, 9)] = data
    if layout == "tree":
        path = write_tree(tmp_path / "d", FNT, files)
        where = str(path / FNT / name_of(1, 9))
    else:
        path = write_tgz(tmp_path / "d" / "EnglishFnt.tgz", FNT, files)
        where = f"EnglishFnt.tgz:{FNT}/{name_of(1, 9)}"
    out = tmp_path / "o"
    with pytest.raises(FormatError) as e:
        ingest(path, out)
    assert str(e.value).startswith(f"{where} {reason}")
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    m = ingest(path, out, on_error="skip")
    assert len(m) == 2
    # the same reason, without advising --on-error skip: it was passed
    assert m.meta["skipped"] == [{"file": where, "reason": without_skip_advice(str(e.value))}]
    assert "--on-error skip" in str(e.value) and "--on-error" not in m.meta["skipped"][0]["reason"]


def test_unknown_class_folder(tmp_path):
    files = fnt_files(samples=(1,))
    files[name_of(63, 1)] = png()
    root = write_tree(tmp_path / "d", FNT, files)
    with pytest.raises(FormatError, match=r"folder Sample063 is not a Chars74K English class"):
        ingest(root, tmp_path / "o")
    m = ingest(root, tmp_path / "o", on_error="skip")
    assert len(m) == 2
    assert [s["file"] for s in m.meta["skipped"]] == [str(root / FNT / "Sample063")]


def test_empty_class_folder_in_an_archive(tmp_path):
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, fnt_files(samples=(1,)), dirs=("Sample002",))
    with pytest.raises(FormatError) as e:
        ingest(archive, tmp_path / "o")
    assert str(e.value).startswith(
        f"Class folder EnglishFnt.tgz:{FNT}/Sample002 (class '1') holds no images")
    m = ingest(archive, tmp_path / "o", on_error="skip")
    assert m.meta["skipped"][0]["file"] == f"EnglishFnt.tgz:{FNT}/Sample002"


def _link(name: str, target: str, kind) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, target
    return ti


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


@pytest.mark.parametrize("member,message", [
    (_file(f"{FNT}/../../evil.png", png()), "escapes the archive root"),
    (_file("/etc/evil.png", png()), "escapes the archive root"),
    (_link(f"{FNT}/Sample001/link.png", "/etc/passwd", tarfile.SYMTYPE), "is a symbolic link"),
    (_link(f"{FNT}/Sample001/hard.png", f"{FNT}/Sample001/img001-00001.png", tarfile.LNKTYPE),
     "is a hard link"),
])
def test_unsafe_archive_members(tmp_path, member, message):
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, fnt_files(samples=(1,)), extra=[member])
    with pytest.raises(UnsafeArchive, match=message):
        ingest(archive, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    m = ingest(archive, tmp_path / "o", on_error="skip")
    assert len(m) == 2 and len(m.meta["skipped"]) == 1
    assert message in m.meta["skipped"][0]["reason"]


@pytest.mark.parametrize("side,declared", [(8000, "a 8000x8000 image (64,000,000 pixels)"),
                                           (60000, "an image of 3,600,000,000 pixels")])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, side, declared):
    files = fnt_files(samples=(1,))
    files[name_of(1, 3)] = bomb_png(side, side)
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, files)
    with pytest.raises(UnsafeArchive, match=re.escape(
            f"{name_of(1, 3)} declares {declared}, more than the 40,000,000-pixel limit: a "
            "decompression bomb or not a character image. Refusing to decode it.")):
        ingest(archive, tmp_path / "o")
    assert len(ingest(archive, tmp_path / "o", on_error="skip")) == 2


def test_member_declaring_a_huge_size_is_refused(tmp_path, monkeypatch):
    files = fnt_files(samples=(1,))
    files[name_of(1, 3)] = png(400, 400, seed=1) + b"\0" * 3000
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, files)
    monkeypatch.setattr(archive_reader, "MAX_FILE_BYTES", 2000)
    with pytest.raises(UnsafeArchive, match=r"declares [\d,]+ bytes, more than the 2,000-byte limit"):
        ingest(archive, tmp_path / "o")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_corrupt_archive(tmp_path, damage):
    files = {name_of(s, i): png(50, 50, seed=i) for s in (1, 2) for i in range(30)}
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, files)
    raw = bytearray(archive.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)
    archive.write_bytes(bytes(raw))
    for mode in ("raise", "skip"):  # nothing after the damage can be read: always an error
        with pytest.raises(FormatError, match=rf"Archive {archive} is truncated or corrupt"):
            ingest(archive, tmp_path / "o", on_error=mode)
    assert not (tmp_path / "o").exists()


def test_missing_data_and_wrong_archive(tmp_path):
    with pytest.raises(SourceNotFound, match="does not exist"):
        ingest(tmp_path / "nowhere", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFound, match=r"looked for the folder English/Fnt/ and the archives "
                                             r"EnglishFnt.tgz\)\. Pass the folder"):
        ingest(tmp_path / "empty", tmp_path / "o")
    archive = write_tgz(tmp_path / "EnglishHnd.tgz", HND, {name_of(1, 1): png()})
    with pytest.raises(SourceNotFound, match=r"holds no English/Fnt/ folder"):
        ingest(archive, tmp_path / "o")


def test_download_fetches_the_official_archive(tmp_path, monkeypatch):
    calls = []

    def fake_fetch(source, root, files=None, base_url=None):
        calls.append((source, Path(root), files))
        return [write_tgz(Path(root) / files[0], FNT, fnt_files(samples=(3,)))]

    monkeypatch.setattr(chars74k, "fetch", fake_fetch)
    m = ingest(tmp_path / "dl", tmp_path / "o", download=True)
    assert calls == [("chars74k", tmp_path / "dl", ["EnglishFnt.tgz"])]
    assert len(m) == 2


# -- CLI ---------------------------------------------------------------------------------

def test_cli_ingest_and_errors(tmp_path):
    from datakit.cli import main
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, fnt_files())
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["ingest", "chars74k", str(tmp_path), "--subset", "fnt",
                                  "--classes", "upper", "--size", "16", "--workers", "0",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"Wrote {out / 'chars74k-fnt-upper.parquet'} (2 images, 16x16x1)" in r.output
    meta = json.loads((out / "chars74k-fnt-upper.json").read_text())
    assert meta["config"]["classes"] == "upper" and meta["geometry"]["height"] == 16

    r = CliRunner().invoke(main, ["ingest", "chars74k", str(tmp_path / "none"), "--subset", "Hnd",
                                  "--out", str(out)])
    assert r.exit_code == 1
    assert r.output == (f"Error: {tmp_path / 'none'} does not exist. Pass the folder holding the "
                        "Chars74K archives (e.g. EnglishHnd.tgz) or the extracted tree, or use "
                        "--download.\n")

    bad = write_tgz(tmp_path / "bad" / "EnglishFnt.tgz", FNT, {name_of(1, 1): b""})
    r = CliRunner().invoke(main, ["ingest", "chars74k", str(bad), "--subset", "Fnt",
                                  "--out", str(out)])
    assert r.exit_code == 1
    assert r.output == (f"Error: EnglishFnt.tgz:{FNT}/{name_of(1, 1)} is empty (0 bytes); it is not "
                        "an image. Remove it, replace it, or pass --on-error skip.\n")
    assert read_manifest(out / "chars74k-fnt-upper.parquet")  # the earlier manifest is intact


def test_archive_that_inflates_absurdly_is_refused(tmp_path, monkeypatch):
    files = fnt_files(samples=(1,))
    files[name_of(1, 3)] = bytes(3 << 20)   # 3 MiB of zeros: a few KiB once compressed
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, files)
    monkeypatch.setattr(archive_reader, "MAX_UNPACKED_BYTES", 1 << 20)
    monkeypatch.setattr(archive_reader, "MAX_UNPACK_RATIO", 10)
    for mode in ("raise", "skip"):
        with pytest.raises(UnsafeArchive, match=rf"Archive {archive} inflates to more than 1,048,576 "
                                                r"bytes \(10x its size or 1,048,576 bytes\)"):
            ingest(archive, tmp_path / "o", on_error=mode)


@pytest.mark.parametrize("mode", ["w:bz2", "w:xz", "w"])
def test_other_tar_compressions(tmp_path, mode):
    files = fnt_files(samples=(1, 2))
    path = tmp_path / "EnglishFnt.tgz"
    with tarfile.open(path, mode) as tf:
        for rel, data in files.items():
            ti = tarfile.TarInfo(f"{FNT}/{rel}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    m = ingest(path, tmp_path / "o")
    assert len(m) == 4 and m.meta["inputs"][0]["sha256"] is not None


def test_long_member_names_pax_and_gnu(tmp_path):
    data = png(seed=5)
    long_rel = "Sample004/" + "x" * 120 + ".png"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        path = tmp_path / f"{fmt}" / "EnglishFnt.tgz"
        path.parent.mkdir()
        with tarfile.open(path, "w:gz", format=fmt) as tf:
            ti = tarfile.TarInfo(f"./{FNT}/{long_rel}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        m = ingest(path, tmp_path / f"o{fmt}")
        assert m.table["class_name"].tolist() == ["3"]
        assert m.table["id"].iloc[0] == "chars74k/Fnt/" + long_rel[:-4]


def test_cli_on_error_skip_lists_the_skipped_files(tmp_path):
    from datakit.cli import main
    files = fnt_files(samples=(1,))
    files[name_of(1, 5)] = b""
    root = write_tree(tmp_path / "d", FNT, files)
    (root / FNT / "Sample002").symlink_to(root / FNT / "Sample001")
    r = CliRunner().invoke(main, ["ingest", "chars74k", str(root), "--subset", "Fnt",
                                  "--on-error", "skip", "--workers", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "skipped 2 file(s) (listed in chars74k-fnt.json):" in r.output
    assert f"{root / FNT / name_of(1, 5)}: {root / FNT / name_of(1, 5)} is empty (0 bytes)" in r.output
    assert f"{root / FNT / 'Sample002'} is a symbolic link to a folder" in r.output


def test_no_image_of_the_selected_classes(tmp_path):
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, fnt_files(samples=(11, 12)))
    with pytest.raises(FormatError, match=rf"No Chars74K Fnt images of the classes 'digits' were "
                                          rf"read from {archive}\.$"):
        ingest(archive, tmp_path / "o", classes="digits")
    bad = write_tgz(tmp_path / "b" / "EnglishFnt.tgz", FNT, {name_of(1, 1): b""})
    with pytest.raises(FormatError, match=r"all 1 bad files were skipped \(first: .* is empty"):
        ingest(bad, tmp_path / "o", on_error="skip")
