"""Source ``mnist``: the four original IDX files (gzipped or not) -> a manifest.

70,000 handwritten digits, 28×28 grey, labels 0-9; the official split is 60,000 ``train``
(``train-*``) and 10,000 ``test`` (``t10k-*``). The IDX format is a big-endian header
(magic number, then one uint32 per dimension) followed by raw uint8 data; images have
magic 2051 and three dimensions, labels 2049 and one. Decoding is one numpy view per
file, never a per-image loop.
"""
from __future__ import annotations

import hashlib
import math
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from datakit._core.names import describe_os_error
from datakit._core.progress import log
from datakit.errors import DatakitError, FormatError, SourceNotFound, UnknownName
from datakit.manifest.model import Geometry, Manifest
from datakit.sources._io.download import fetch
from datakit.sources.common import ErrorPolicy, finish
from datakit.sources.home import not_in_home, source_home

DATASET = "mnist"
DOMAIN = "handwritten"
CLASSES = [str(d) for d in range(10)]
GEOMETRY = Geometry(28, 28, 1)
SPLITS = ("train", "test", "all")
#: Per split: (images, labels) file names without the optional ``.gz``.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
#: Refuse IDX headers declaring more than this many data bytes (MNIST train is 47 MB):
#: a forged header, or a gzip bomb, cannot make us allocate or inflate more.
MAX_DATA_BYTES = 1 << 30
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class MnistConfig:
    """The settings of one MNIST ingest, saved in the manifest's sidecar (``config``)."""

    path: str
    split: str = "all"
    on_error: str = "raise"
    download: bool = False
    source: str = "mnist"


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``folder``: ``stem.gz``, ``stem``, or the ``stem`` spelling
    with a dot that some unpackers produce (``train-images.idx3-ubyte``)."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        p = folder / name
        if p.is_file():
            return p
    return None


def missing_files(folder: Path, split: str = "all") -> list[str]:
    """The IDX files of ``split`` (train, test or all) that are not in ``folder``."""
    splits = ["train", "test"] if split == "all" else [split]
    return [f"{stem}[.gz]" for s in splits for stem in FILES[s] if find_idx_file(folder, stem) is None]


def files_present(folder: Path) -> bool:
    """Whether ``folder`` holds all four MNIST IDX files."""
    return not missing_files(Path(folder))


class _Gunzip:
    """A gzip stream read with zlib, never inflating more than each read asks for.

    (About twice as fast as ``gzip.GzipFile`` here; the CRC is still checked at the end.)
    """

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.inflater = zlib.decompressobj(wbits=31)  # 31: expect a gzip wrapper
        self.pending = b""

    def read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            if not self.pending:
                if self.inflater.eof:
                    break
                self.pending = self.raw.read(1 << 22)
                if not self.pending:
                    raise EOFError("the compressed data ends before its end-of-stream marker")
            chunk = self.inflater.decompress(self.pending, n)
            self.pending = self.inflater.unconsumed_tail
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def at_end(self) -> bool:
        """Whether the stream is fully consumed (no second gzip member or junk after it)."""
        return not self.read(1) and not self.inflater.unused_data and not self.raw.read(1)


class CountMismatch(FormatError):
    """An IDX header declares another number of items than expected (checked before reading)."""

    def __init__(self, message: str, found: int):
        super().__init__(message)
        self.found = found


def read_idx(path: str | os.PathLike, magic: int, ndim: int, count: int | None = None) -> np.ndarray:
    """Read one uint8 IDX file (gzipped or not, told apart by its first bytes).

    Checks the magic number, that the data is exactly as long as the header declares
    (so truncation, trailing junk and a corrupt gzip stream are all caught), and caps the
    declared size at :data:`MAX_DATA_BYTES` before allocating or inflating anything. With
    ``count``, the header's first dimension must equal it (checked before reading the body,
    so a labels file that disagrees with its images is refused without inflating it).

    Raises:
        FormatError: naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise SourceNotFound(f"Cannot read {path} ({describe_os_error(e)}).") from None
    with raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if path.suffix == ".gz" and not compressed:
            raise FormatError(f"{path} is named .gz but is not gzip data; re-download it.")
        stream = _Gunzip(raw) if compressed else raw
        try:
            header = stream.read(4 + 4 * ndim)
            if len(header) < 4 + 4 * ndim:
                raise FormatError(f"{path} is too short to hold an IDX header ({len(header)} bytes).")
            found = int.from_bytes(header[:4], "big")
            if found != magic:
                raise FormatError(
                    f"{path} has magic number {found}, expected {magic} "
                    f"({'images' if magic == IMAGES_MAGIC else 'labels'}); "
                    "it is not an MNIST IDX file of that kind.")
            dims = tuple(int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
            declared = math.prod(dims)  # Python ints: an int64 product of a corrupt header wraps
            if count is not None and dims[0] != count:
                raise CountMismatch(
                    f"{path} declares {dims[0]:,} items in its header but {count:,} were "
                    "expected (one per image); the files do not belong together.", dims[0])
            if declared > MAX_DATA_BYTES:
                raise FormatError(
                    f"{path} declares {declared:,} bytes of data (dimensions {dims}), more than "
                    f"the {MAX_DATA_BYTES:,} datakit accepts; the header is corrupt.")
            body = stream.read(declared)
            if len(body) < declared:
                raise FormatError(
                    f"{path} is truncated: its header declares {declared:,} bytes of data "
                    f"(dimensions {dims}) but it holds {len(body):,}.")
            # The file must end here (for gzip, reaching the end also checks the CRC).
            at_end = stream.at_end() if compressed else not raw.read(1)
            if not at_end:
                raise FormatError(
                    f"{path} holds more data than its header declares (dimensions {dims}); "
                    "the file is corrupt.")
        except (EOFError, zlib.error) as e:
            raise FormatError(f"{path} is a truncated or corrupt gzip file ({e}); "
                              "re-download it.") from e
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Images (N×28×28×1 uint8), labels (N int64) and the two files of one official split.

    Raises:
        SourceNotFound: a file of the split is missing.
        FormatError: a file is corrupt, or images and labels disagree.
    """
    image_stem, label_stem = FILES[split]
    paths = []
    for stem in (image_stem, label_stem):
        p = find_idx_file(folder, stem)
        if p is None:
            raise _about(SourceNotFound(
                f"MNIST files not found in {folder} (looked for {stem}[.gz]). Pass the folder "
                "that holds them, or use --download."), folder / f"{stem}[.gz]")
        paths.append(p)
    try:
        images = read_idx(paths[0], IMAGES_MAGIC, 3)
    except FormatError as e:
        raise _about(e, paths[0])
    try:
        labels = read_idx(paths[1], LABELS_MAGIC, 1, count=len(images))
    except CountMismatch as e:
        raise _about(FormatError(
            f"{paths[0].name} holds {len(images):,} images but {paths[1].name} holds "
            f"{e.found:,} labels (in {folder}); the counts must match."), paths[1]) from None
    except FormatError as e:
        raise _about(e, paths[1])
    if images.shape[1:] != GEOMETRY.shape[:2]:
        raise _about(FormatError(f"{paths[0]} holds {images.shape[1]}x{images.shape[2]} images; "
                                 "MNIST images are 28x28."), paths[0])
    if len(images) != len(labels):
        raise _about(FormatError(
            f"{paths[0].name} holds {len(images):,} images but {paths[1].name} holds "
            f"{len(labels):,} labels (in {folder}); the counts must match."), paths[1])
    if len(labels) and labels.max() > 9:
        raise _about(FormatError(f"{paths[1]} holds label {int(labels.max())}; MNIST labels "
                                 "are 0-9."), paths[1])
    return images[..., None], labels.astype(np.int64), paths


def _describe_input(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest()}


def ingest_mnist(path: str | os.PathLike | None = None, *, split: str = "all",
                 out: str | os.PathLike | None = None, name: str | None = None,
                 on_error: str = "raise", download: bool = False) -> Manifest:
    """Ingest MNIST's IDX files from the folder ``path`` into a manifest.

    Args:
        path: the folder holding ``train-images-idx3-ubyte[.gz]`` and the three others
            (default: ``DATA_HOME/mnist``, see :mod:`datakit.sources.home`).
        split: ``train``, ``test`` or ``all`` (both).
        out: output folder or ``.parquet`` path (default ``data_manifests/``).
        name: manifest name (default ``mnist``, or ``mnist-train`` / ``mnist-test``).
        on_error: ``raise`` at the first bad file, or ``skip`` a bad split and record it.
        download: fetch the official ``.gz`` files into ``path`` (or the data home) first,
            checksums verified.

    Raises:
        UnknownName: bad ``split`` or ``on_error``.
        SourceNotFound: the files are not in ``path`` (or the data home).
        FormatError: a file is corrupt (with ``on_error="skip"``: only if no split is left).
    """
    # 1. Check arguments.
    if split not in SPLITS:
        raise UnknownName(f"Unknown split {split!r} for MNIST; use one of: {', '.join(SPLITS)}.")
    policy = ErrorPolicy(on_error)
    folder = Path(path) if path is not None else source_home(DATASET)
    splits = ["train", "test"] if split == "all" else [split]
    # 2. Download if asked.
    if download:
        fetch("mnist", folder, files=[stem + ".gz" for s in splits for stem in FILES[s]])
    if path is None:  # the data home: say where we looked and that --download fills it
        missing = missing_files(folder, split)
        if missing and (on_error == "raise" or len(missing) == 2 * len(splits)):
            raise not_in_home("MNIST files", folder, ", ".join(missing))
    if not folder.is_dir():
        raise SourceNotFound(f"MNIST folder {folder} does not exist. Pass the folder that holds "
                             "the IDX files, or use --download.")
    # 3. Verify and load, split by split; a bad split is skipped as a whole under "skip".
    loaded: list[tuple[str, np.ndarray, np.ndarray, list[Path]]] = []
    failures: list[DatakitError] = []
    for s in splits:
        try:
            loaded.append((s, *load_split(folder, s)))
            log(f"mnist {s}: {len(loaded[-1][2]):,} images")
        except DatakitError as e:
            failures.append(e)
            policy.handle(getattr(e, "file", str(folder)), e)
    if not loaded:
        reasons = " ".join(item["reason"] for item in policy.skipped)
        kind = SourceNotFound if all(isinstance(e, SourceNotFound) for e in failures) else FormatError
        raise kind(f"No MNIST split could be ingested from {folder}; every file was skipped. {reasons}")
    # 4. Rows and pixels, then the atomic write.
    parts = [images for _, images, _, _ in loaded]
    pixels = parts[0] if len(parts) == 1 else np.concatenate(parts)  # no copy for one split
    records = []
    for s, images, labels, paths in loaded:
        source = paths[0].name
        records.extend({
            "id": f"mnist/{s}/{i:05d}", "dataset": DATASET, "subset": s, "split": s,
            "domain": DOMAIN, "label": int(lab), "class_name": CLASSES[lab],
            "source": f"{source}[{i}]", "orig_width": 28, "orig_height": 28, "orig_mode": "L",
        } for i, lab in enumerate(labels.tolist()))
    inputs = [_describe_input(p) for _, _, _, paths in loaded for p in paths]
    config = asdict(MnistConfig(str(folder), split, on_error, download))
    default_name = "mnist" if split == "all" else f"mnist-{split}"
    return finish(out, name or default_name, records, pixels, classes=CLASSES, inputs=inputs,
                  policy=policy, config=config)


def _about(error: DatakitError, file: Path) -> DatakitError:
    """Tag ``error`` with the file it is about, for the skipped-files list."""
    error.file = str(file)
    return error
