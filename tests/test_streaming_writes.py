"""Streaming writes: ingest and compose write the pixel store a chunk at a time, with the same
files as a whole-array write, and leave no temporary file behind."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from test_chars74k import FNT, fnt_files, write_tgz, write_tree
from test_folder import make_tree

import datakit.manifest.store as pixel_spill
import datakit.manifest.write as manifest_module
from datakit.composition.build import compose
from datakit.errors import FormatError, ManifestError
from datakit.manifest.read import read_manifest
from datakit.manifest.store import PixelSpill, StoreReader, in_order
from datakit.manifest.write import write_manifest, write_manifest_chunks
from datakit.sources._io import decode as decode_pool
from datakit.sources.common import build_table


def _table_and_pixels(n=150, shape=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    records = [{"id": f"t/{i}", "dataset": "toy", "subset": "toy", "split": "train",
                "domain": "handwritten", "label": i % 3, "class_name": "abc"[i % 3],
                "source": f"gen:{i}", "orig_width": 8, "orig_height": 8, "orig_mode": "L"}
               for i in range(n)]
    return records, pixels


def _files(folder, name):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name.startswith(name + ".")}


def test_chunked_write_gives_the_files_of_a_whole_array_write(tmp_path):
    records, pixels = _table_and_pixels()
    whole = write_manifest(tmp_path / "a" / "m.parquet", build_table(records, pixels), pixels,
                           {"command": "test"})
    table = build_table(records, pixels).drop(columns=["sha256", "row"])
    chunks = (pixels[s:s + 37] for s in range(0, len(pixels), 37))  # uneven chunks
    streamed = write_manifest_chunks(tmp_path / "b" / "m.parquet", table, chunks, (8, 8, 1),
                                     {"command": "test"})
    assert streamed.checksum == whole.checksum
    assert streamed.stats == whole.stats
    a, b = _files(tmp_path / "a", "m"), _files(tmp_path / "b", "m")
    assert a["m.pixels.npy"] == b["m.pixels.npy"]  # the same .npy, byte for byte
    assert np.array_equal(read_manifest(streamed.path).images(), pixels)


@pytest.mark.parametrize("cut,extra", [(100, None), (150, 5)])
def test_chunks_that_do_not_hold_the_table_write_nothing(tmp_path, cut, extra):
    records, pixels = _table_and_pixels()
    table = build_table(records, pixels).drop(columns=["sha256", "row"])
    chunks = [pixels[:cut]] + ([pixels[:extra]] if extra else [])
    with pytest.raises(ManifestError, match="do not hold the table's 150 images; nothing was"):
        write_manifest_chunks(tmp_path / "m.parquet", table, chunks, (8, 8, 1))
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_compose_converts_a_chunk_at_a_time_with_the_same_result(tmp_path, make_manifest,
                                                                 monkeypatch):
    parent = make_manifest({"0": 120, "1": 90}, size=12, channels=1)
    whole = compose([parent], tmp_path / "whole.parquet", image_size=16, channels=3,
                    polarity="light-on-dark")
    import datakit.composition.build as composer
    sizes, convert = [], composer.convert
    monkeypatch.setattr(composer, "convert",
                        lambda images, *a: sizes.append(len(images)) or convert(images, *a))
    monkeypatch.setattr(pixel_spill, "CHUNK_BYTES", 1)  # the smallest chunk: 64 images
    chunked = compose([parent], tmp_path / "chunked.parquet", image_size=16, channels=3,
                      polarity="light-on-dark")
    assert sizes == [64, 64, 64, 18]  # never the whole output at once
    assert chunked.checksum == whole.checksum
    assert chunked.stats == whole.stats


def test_chars74k_ingest_spills_to_disk_and_cleans_up(tmp_path, monkeypatch):
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, fnt_files(samples=(1, 2, 11, 37)))
    m = chars74k_ingest(archive, tmp_path / "a")
    monkeypatch.setattr(pixel_spill, "CHUNK_BYTES", 1)
    again = chars74k_ingest(archive, tmp_path / "b")
    assert again.checksum == m.checksum
    for folder in ("a", "b"):
        assert not [p for p in (tmp_path / folder).iterdir() if ".tmp-" in p.name]


def chars74k_ingest(archive, out):
    from datakit.sources.chars74k import ingest_chars74k
    return ingest_chars74k(archive, subset="Fnt", out=out, workers=0)


def test_a_store_reader_reads_like_the_store_and_keeps_no_map_open(tmp_path):
    pixels = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    np.save(tmp_path / "s.npy", pixels)
    reader = StoreReader(tmp_path / "s.npy")
    assert (len(reader), reader.shape, reader.dtype, reader.ndim) == (5, (5, 4, 4, 3), np.uint8, 4)
    for key in (slice(1, 4), slice(None, None, 2), np.array([4, 0, 4]), np.array([1, 0, 1, 0, 1], bool), 3):
        got = reader[key]
        assert type(got) is np.ndarray and np.array_equal(got, pixels[key]), key
    maps = (Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else "")
    assert str(tmp_path / "s.npy") not in maps  # every read closed its map


def _spy_on_chunks(monkeypatch, batch=16):
    """Decode ``batch`` files at a time, write the store in chunks of 64 images (the smallest),
    and record each spill append (images, spill file bytes on disk then) and each store chunk."""
    monkeypatch.setattr(decode_pool, "BATCH", batch)
    monkeypatch.setattr(pixel_spill, "CHUNK_BYTES", 1)
    appends, writes = [], []
    append, write_chunks = PixelSpill.append, manifest_module._write_store_chunks

    def spied_append(spill, images):
        append(spill, images)
        appends.append((len(images), spill.path.stat().st_size))

    monkeypatch.setattr(PixelSpill, "append", spied_append)
    monkeypatch.setattr(manifest_module, "_write_store_chunks", lambda store, chunks, shape:
                        write_chunks(store, (writes.append(len(c)) or c for c in chunks), shape))
    return appends, writes


def _tgz_in_stream_order(path, files):
    """A gzip tarball of ``FNT/rel`` members in the order given (the release's is not sorted)."""
    with tarfile.open(path, "w:gz") as tf:
        for rel, data in files:
            ti = tarfile.TarInfo(f"{FNT}/{rel}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_chars74k_decodes_into_the_spill_a_batch_at_a_time(tmp_path, monkeypatch, workers):
    from datakit.sources.chars74k import ingest_chars74k
    files = fnt_files(samples=(1, 2, 11, 37), per_class=40)  # 160 images of 32x32x1 (1 KiB)
    whole = ingest_chars74k(write_tree(tmp_path / "tree", FNT, files), subset="Fnt",
                            out=tmp_path / "whole", workers=0)
    # Stream order is the reverse of path order: the store is reordered chunk by chunk.
    archive = _tgz_in_stream_order(tmp_path / "EnglishFnt.tgz", sorted(files.items())[::-1])
    appends, writes = _spy_on_chunks(monkeypatch)
    m = ingest_chars74k(archive, subset="Fnt", out=tmp_path / "m", workers=workers)
    assert [n for n, _ in appends] == [16] * 10  # one batch at a time, never the output
    assert [size for _, size in appends] == [16 * 1024 * k for k in range(1, 11)]  # on disk
    assert writes == [64, 64, 32]
    assert m.checksum == whole.checksum  # path order, whatever the stream order
    assert np.array_equal(m.images(), whole.images())
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "chars74k-fnt.json", "chars74k-fnt.parquet", "chars74k-fnt.pixels.npy"]


def test_folder_decodes_into_the_spill_a_batch_at_a_time(tmp_path, monkeypatch):
    from datakit.sources.folder import ingest_folder
    root = make_tree(tmp_path / "glyphs", per_class=30)  # 90 images of 32x32x3 (3 KiB)
    whole = ingest_folder(root, out=tmp_path / "whole", workers=0)
    appends, writes = _spy_on_chunks(monkeypatch, batch=20)
    m = ingest_folder(root, out=tmp_path / "m", workers=2)
    assert [n for n, _ in appends] == [20, 20, 20, 20, 10]
    assert appends[-1][1] == 90 * 3072
    assert writes == [64, 26]
    assert m.checksum == whole.checksum
    assert not [p for p in (tmp_path / "m").iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_a_corrupt_file_mid_chunk_leaves_nothing_behind(tmp_path, monkeypatch, workers, existing):
    from datakit.sources.chars74k import ingest_chars74k
    files = fnt_files(samples=(1, 2), per_class=20)
    out = tmp_path / "out" / "deeper"
    if existing:
        good = write_tgz(tmp_path / "good" / "EnglishFnt.tgz", FNT, files)
        old = ingest_chars74k(good, subset="Fnt", out=out, workers=0)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = sorted(files)[21]  # in the second batch of 16 and the first store chunk of 64
    files[bad] = b"this is not a png at all"
    archive = write_tgz(tmp_path / "EnglishFnt.tgz", FNT, files)
    appends, writes = _spy_on_chunks(monkeypatch)
    with pytest.raises(FormatError, match=f"^EnglishFnt.tgz:{FNT}/{bad} is not a readable image"):
        ingest_chars74k(archive, subset="Fnt", out=out, workers=workers)
    assert appends[0] == (16, 16 * 1024)  # the first batch was on disk when the error came
    assert writes == []
    if existing:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old one, intact
        assert read_manifest(old.path).checksum == old.checksum
    else:
        assert list(tmp_path.joinpath("out").parent.iterdir()) == [tmp_path / "EnglishFnt.tgz"]


def test_a_spill_left_by_a_killed_ingest_is_removed_by_the_next(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".m.pixels.npy.part.tmp-{dead}"
    stale.write_bytes(b"x" * 10)
    live = tmp_path / f".m.pixels.npy.part.tmp-{os.getppid()}"  # a live process's: kept
    live.write_bytes(b"y")
    with PixelSpill(tmp_path / "m.pixels.npy", (2, 2, 1)) as spill:
        spill.append(np.zeros((3, 2, 2, 1), np.uint8))
        assert not stale.exists() and live.exists()
        assert list(in_order(spill.pixels(), np.array([2, 0]))) [0].shape == (2, 2, 2, 1)
        with pytest.raises(ManifestError, match=r"Cannot add uint8 images of shape \(2, 2, 3\)"):
            spill.append(np.zeros((1, 2, 2, 3), np.uint8))
    assert not spill.path.exists()


@pytest.mark.parametrize("order", ["ascending", "shuffled", "reversed"])
def test_a_spill_reads_back_in_any_order_a_chunk_at_a_time(tmp_path, order):
    pixels = np.random.default_rng(1).integers(0, 256, (200, 4, 4, 3), dtype=np.uint8)
    rows = {"ascending": np.arange(200), "reversed": np.arange(200)[::-1],
            "shuffled": np.random.default_rng(2).permutation(200)}[order]
    with PixelSpill(tmp_path / "m.pixels.npy", (4, 4, 3)) as spill:
        for s in range(0, 200, 30):
            spill.append(pixels[s:s + 30])
        chunks = list(spill.in_order(rows, chunk_bytes=48 * 70))  # 70 images a chunk
    assert [len(c) for c in chunks] == [70, 70, 60]
    assert all(not isinstance(c, np.memmap) for c in chunks)  # copies: the maps are gone
    assert np.array_equal(np.concatenate(chunks), pixels[rows])


def test_a_spill_removes_the_folders_it_made_when_nothing_was_written(tmp_path):
    with pytest.raises(RuntimeError):
        with PixelSpill(tmp_path / "new" / "deeper" / "m.pixels.npy", (2, 2, 1)):
            raise RuntimeError("the ingest failed")
    assert list(tmp_path.iterdir()) == []


# Peak memory of the measuring process itself: VmHWM of /proc/self/status, which starts
# afresh at exec. (getrusage's ru_maxrss does not: a child inherits the high-water mark of
# the process it was forked from, so under a 1.4 GB pytest every child "peaked" at 1.4 GB.)
_PEAK_MB = """
def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) // 1024
"""


@pytest.mark.realdata
@pytest.mark.slow
def test_compose_of_60k_mnist_stays_within_its_output_plus_500_mb(tmp_path):
    """Peak RSS of a 60k MNIST compose to 32x32x3 (175 MB) in a fresh process (issue 14's
    target). It was 4x the output (950+ MB) while compose held every pixel, 2.4 GB while the
    near-duplicate search listed its candidate pairs; now a chunk, the thumbnails of the
    near-duplicate candidates and the libraries (torch alone is ~180 MB)."""
    from conftest import real_data_dir
    mnist = real_data_dir("mnist")
    code = (
        _PEAK_MB +
        "from datakit.sources.mnist import ingest_mnist\n"
        "from datakit.composition import compose\n"
        f"m = ingest_mnist({str(mnist)!r}, split='train', out={str(tmp_path)!r})\n"
        f"c = compose([m], {str(tmp_path / 'c.parquet')!r}, image_size=32, channels=3)\n"
        "print(peak_mb(), c.pixels.nbytes // 2**20)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "DATAKIT_QUIET": "1"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    peak_mb, output_mb = map(int, out.stdout.split())
    assert output_mb == 175  # 60,000 x 32 x 32 x 3 bytes
    assert peak_mb < output_mb + 500, f"peak {peak_mb} MB for a {output_mb} MB store"


_FNT_PEAKS = _PEAK_MB + """
import json, sys
import datakit.sources.chars74k as chars74k
import datakit.manifest.write as stats

peaks = {"start": peak_mb()}
def at(stage, fn):  # the peak so far when ``fn`` is first called
    def wrapped(*a, **k):
        peaks.setdefault(stage, peak_mb())
        return fn(*a, **k)
    return wrapped

chars74k.records_in_path_order = at("decoded", chars74k.records_in_path_order)
stats.compute_stats = at("written", stats.compute_stats)
m = chars74k.ingest_chars74k(sys.argv[1], subset="Fnt", out=sys.argv[2])
peaks["end"] = peak_mb()
print(json.dumps({"peaks": peaks, "output_mb": m.pixels.nbytes // 2**20, "rows": len(m)}))
"""


@pytest.fixture(scope="module")
def fnt_ingest_peaks(tmp_path_factory):
    """Peak RSS (MB) of an ingest of the real Chars74K Fnt (62,992 images, a 61 MB store) in a
    fresh process: at its start, when decoding ends, when the store is written (before the
    statistics), and at its end."""
    from conftest import real_data_dir
    chars = real_data_dir("chars74k", "EnglishFnt.tgz").parent
    out = subprocess.run([sys.executable, "-c", _FNT_PEAKS, str(chars),
                          str(tmp_path_factory.mktemp("fnt"))], capture_output=True, text=True,
                         env={**os.environ, "DATAKIT_QUIET": "1"}, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert (result["rows"], result["output_mb"]) == (62_992, 61)  # 62,992 x 32 x 32 x 1 bytes
    return result


@pytest.mark.realdata
@pytest.mark.slow
def test_fnt_ingest_decodes_and_writes_without_holding_its_output(fnt_ingest_peaks):
    """Decoding spills each batch to disk: it grew the process by 150 MB (2.3x the output)
    while every decoded image stayed in memory, and by about 30 MB since. Writing the store
    holds a chunk plus the mapped output."""
    peaks, output_mb = fnt_ingest_peaks["peaks"], fnt_ingest_peaks["output_mb"]
    assert peaks["decoded"] - peaks["start"] < output_mb, peaks
    assert peaks["written"] < output_mb + 500, peaks


@pytest.mark.realdata
@pytest.mark.slow
def test_fnt_ingest_stays_within_its_output_plus_500_mb(fnt_ingest_peaks):
    """The whole ingest, statistics included (near-duplicate search bounded): 418 MB for a
    61 MB store when measured; 1.5 GB while the search listed every close pair."""
    peaks, output_mb = fnt_ingest_peaks["peaks"], fnt_ingest_peaks["output_mb"]
    assert peaks["end"] < output_mb + 500, f"peak {peaks} MB for a {output_mb} MB store"
