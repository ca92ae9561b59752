"""Source ``folder`` (ImageFolder layout) on trees written here in several image formats."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import progress_lines
from PIL import Image

from datakit.cli import main
from datakit.errors import FormatError, SourceNotFound, UnknownName, UnsafeArchive
from datakit.sources.folder import ingest_folder


def _image_bytes(seed: int, fmt: str, size=(20, 24)) -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def make_tree(root, classes=("A", "b", "7"), per_class=3):
    """ROOT/<class>/<n>.<fmt>, formats cycling PNG, JPEG, BMP, GIF, TIFF."""
    exts = [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("GIF", "gif"), ("TIFF", "tif")]
    seed = 0
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            fmt, ext = exts[seed % len(exts)]
            (root / cls / f"{i}.{ext}").write_bytes(_image_bytes(seed, fmt))
            seed += 1
    (root / "README.txt").write_text("loose files beside the class folders are ignored")
    (root / ".hidden").mkdir()
    return root


def test_one_class_per_folder_any_format(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    m = ingest_folder(root, domain="handwritten", out=tmp_path / "o", workers=0)
    assert m.vocabulary == ["7", "A", "b"]   # sorted folder names, as torchvision does
    assert len(m) == 9 and m.geometry.shape == (32, 32, 1)
    assert set(m.table["domain"]) == {"handwritten"} and set(m.table["split"]) == {"train"}
    assert (m.table["class_name"] == np.asarray(m.vocabulary)[m.table["label"]]).all()
    assert set(m.table["orig_width"]) == {20} and set(m.table["orig_height"]) == {24}
    assert m.table["id"].iloc[0] == "folder/glyphs/7/0.jpg"


def test_notes_and_thumbnail_caches_in_class_folders_are_left_out_and_said(tmp_path, monkeypatch, caplog):
    import logging
    root = make_tree(tmp_path / "glyphs")
    (root / "A" / "notes.txt").write_text("drawn by hand, 2019")
    (root / "A" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "b" / "labels.CSV").write_text("0.png,b")
    (root / "b" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    monkeypatch.setattr(logging.getLogger("datakit"), "propagate", True)
    caplog.set_level(logging.INFO, logger="datakit")
    m = ingest_folder(root, out=tmp_path / "o", workers=0)
    assert len(m) == 9 and not m.meta.get("skipped")
    assert (f"Left out 3 file(s) whose names say they are not images: {root / 'A' / 'Thumbs.db'}, "
            f"{root / 'A' / 'notes.txt'}, {root / 'b' / 'labels.CSV'}") in caplog.messages
    # A file that claims to be an image and is not one is still an error.
    (root / "b" / "3.png").write_text("not a png")
    with pytest.raises(FormatError, match="3.png is not a readable image"):
        ingest_folder(root, out=tmp_path / "o2", workers=0)
    # A class folder holding only notes holds no images.
    (root / "Z").mkdir()
    (root / "Z" / "readme.md").write_text("to do")
    with pytest.raises(FormatError, match=r"\(class 'Z'\) holds no images"):
        ingest_folder(root, classes="A,Z", out=tmp_path / "o3", workers=0)


def test_classes_option_chooses_and_orders_the_vocabulary(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    m = ingest_folder(root, classes="b,A", out=tmp_path / "o", workers=0)
    assert m.vocabulary == ["b", "A"] and len(m) == 6
    assert m.geometry.channels == 3  # wild keeps colour
    with pytest.raises(UnknownName, match=r"No class folder Z in .*; its class folders are: 7, A, b\."):
        ingest_folder(root, classes="A,Z", out=tmp_path / "o")


def test_parallel_decode_gives_the_same_manifest(tmp_path):
    root = make_tree(tmp_path / "glyphs", per_class=120)  # several batches of 256 files
    one = ingest_folder(root, out=tmp_path / "one", workers=0)
    two = ingest_folder(root, out=tmp_path / "two", workers=2)
    assert one.checksum == two.checksum


def test_corrupt_file(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    (root / "A" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(FormatError, match=r"bad\.png"):
        ingest_folder(root, out=tmp_path / "o", workers=0)
    m = ingest_folder(root, out=tmp_path / "o", workers=0, on_error="skip")
    assert len(m) == 9
    assert [s["file"] for s in m.meta["skipped"]] == [str(root / "A" / "bad.png")]


def test_a_skipped_file_s_reason_does_not_advise_skipping_it(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    (root / "A" / "empty.png").write_bytes(b"")
    with pytest.raises(FormatError, match=r"Remove it, replace it, or pass --on-error skip\.$"):
        ingest_folder(root, out=tmp_path / "o", workers=0)
    m = ingest_folder(root, out=tmp_path / "o", workers=0, on_error="skip")
    where = root / "A" / "empty.png"
    assert m.meta["skipped"] == [{"file": str(where), "reason": f"{where} is empty (0 bytes); it is "
                                  "not an image. Remove it or replace it."}]


def test_empty_class_folder(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    (root / "Q").mkdir()
    with pytest.raises(FormatError, match=r"Class folder .*Q \(class 'Q'\) holds no images"):
        ingest_folder(root, out=tmp_path / "o", workers=0)
    m = ingest_folder(root, out=tmp_path / "o", workers=0, on_error="skip")
    assert "Q" in m.vocabulary and m.stats["missing_classes"] == ["Q"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are bytes")
def test_unreadable_file_name(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    bad = os.fsencode(str(root / "A")) + b"/caf\xe9.png"  # Latin-1 bytes: not UTF-8
    try:
        with open(bad, "wb") as f:
            f.write(_image_bytes(99, "PNG"))
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    with pytest.raises(FormatError, match=r"caf\\xe9\.png: the name is not UTF-8 text"):
        ingest_folder(root, out=tmp_path / "o", workers=0)
    m = ingest_folder(root, out=tmp_path / "o", workers=0, on_error="skip")
    assert len(m) == 9 and len(m.meta["skipped"]) == 1
    json.dumps(m.meta)  # the sidecar holds only valid text


def test_decompression_bomb_is_refused(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    big = Image.new("L", (9000, 9000))  # 81 megapixels, above the 40 MP limit
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    (root / "A" / "bomb.png").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchive, match=r"bomb\.png declares a 9000x9000 image .* a decompression bomb"):
        ingest_folder(root, out=tmp_path / "o", workers=0)


def test_missing_root_and_cli(tmp_path):
    with pytest.raises(SourceNotFound, match=r"is not a folder"):
        ingest_folder(tmp_path / "nope", out=tmp_path / "o")
    root = make_tree(tmp_path / "glyphs")
    r = CliRunner().invoke(main, ["ingest", "folder", str(root), "--out", str(tmp_path / "o"),
                                  "--domain", "synthetic", "--workers", "0", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["images"] == 9 and out["classes"] == ["7", "A", "b"]
    assert out["geometry"] == {"height": 32, "width": 32, "channels": 1}
    r = CliRunner().invoke(main, ["ingest", "folder", str(root), "--domain", "space"])
    assert r.exit_code == 2 and "'space' is not one of 'wild', 'synthetic', 'handwritten'" in r.output


# -- special files: regular files only, bounded reads, loops are bad files -----------------

@contextlib.contextmanager
def _at_most(seconds: int):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""
    def _hang(*_):
        raise TimeoutError(f"still running after {seconds} s")
    before = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)


def _ingest_cli(root, tmp_path, *more):
    return CliRunner().invoke(main, ["ingest", "folder", str(root), "--out", str(tmp_path / "o"),
                                     "--workers", "0", *more])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_a_class_folder_is_a_bad_file_not_a_hang(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    os.mkfifo(root / "A" / "pipe.png")
    with _at_most(30):
        r = _ingest_cli(root, tmp_path)
    assert r.exit_code == 1
    assert r.output == (f"Error: {root / 'A' / 'pipe.png'} is not a regular file (a FIFO, a device "
                        "or a socket); only image files are read. Remove it, or pass --on-error skip.\n")
    with _at_most(30):
        m = ingest_folder(root, out=tmp_path / "o", workers=0, on_error="skip")
    assert len(m) == 9 and [s["file"] for s in m.meta["skipped"]] == [str(root / "A" / "pipe.png")]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_link_to_a_device_is_not_read(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    os.symlink("/dev/zero", root / "A" / "zero.png")  # stat says 0 bytes; it never ends
    with _at_most(30):
        r = _ingest_cli(root, tmp_path)
    assert r.exit_code == 1
    assert r.output == (f"Error: {root / 'A' / 'zero.png'} is not a regular file (a FIFO, a device "
                        "or a socket); only image files are read. Remove it, or pass --on-error skip.\n")


def test_a_symlink_loop_is_skipped_like_any_bad_file(tmp_path):
    root = make_tree(tmp_path / "glyphs")
    os.symlink("loop.png", root / "A" / "loop.png")
    r = _ingest_cli(root, tmp_path)
    assert r.exit_code == 1
    assert r.output == (f"Error: {root / 'A' / 'loop.png'} cannot be read (Too many levels of "
                        "symbolic links); remove it, or pass --on-error skip.\n")
    m = ingest_folder(root, out=tmp_path / "o", workers=0, on_error="skip")
    assert len(m) == 9 and [s["file"] for s in m.meta["skipped"]] == [str(root / "A" / "loop.png")]
    os.symlink(root / "A" / "0.png", root / "b" / "linked.png")  # control: a link to a file is read
    assert len(ingest_folder(root, out=tmp_path / "o2", workers=0, on_error="skip")) == 10


def test_a_camera_jpeg_is_decoded_the_way_up_its_exif_says():
    from datakit.sources._io.images import ORIENTATION_TAG, decode_image
    # a 2x3 image with one white pixel top left; stored turned, with EXIF orientation 6
    # ("rotate 90° clockwise to view"), as phones write portrait photos
    stored = np.zeros((2, 3), np.uint8)
    stored[1, 0] = 255  # bottom-left as stored is top-left once turned 90° clockwise
    im = Image.fromarray(stored)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    buf = io.BytesIO()
    im.save(buf, format="PNG", exif=exif)
    shown = np.asarray(decode_image(buf.getvalue(), "photo.png"))
    assert shown.shape == (3, 2) and shown[0, 0] == 255 and shown.sum() == 255
    plain = io.BytesIO()
    im.save(plain, format="PNG")
    np.testing.assert_array_equal(np.asarray(decode_image(plain.getvalue(), "scan.png")), stored)


def test_one_class_name_in_two_unicode_forms_is_refused_with_both_spellings(tmp_path):
    root = make_tree(tmp_path / "glyphs", classes=("caf\u00e9", "cafe\u0301"))
    r = _ingest_cli(root, tmp_path)
    assert r.exit_code == 1
    assert r.output == (f"Error: {root} has two class folders that are one name in two Unicode forms: "
                        "'cafe\\u0301' and 'caf\\xe9' both read 'caf\u00e9'. They would become two classes "
                        "that look the same; merge them into one folder (or rename one).\n")


def test_ingest_off_a_terminal_logs_decoding_and_writing(tmp_path, off_terminal, caplog):
    root = make_tree(tmp_path / "glyphs")
    off_terminal.tick = 30  # each clock reading 30 s later
    ingest_folder(root, domain="handwritten", out=tmp_path / "o", workers=0)
    assert progress_lines(caplog, "decoding") == ["decoding: 9, 3.3 s/img, 0:30 elapsed",
                                                  "decoding: 9 done in 1:00, 6.7 s/img"]
    assert progress_lines(caplog, "writing pixels")[-1] == "writing pixels: 9/9 done in 1:00, 6.7 s/img"
