"""Source ``svhn``: the Street View House Numbers cropped digits (``*_32x32.mat``) -> a manifest.

Each split is one MATLAB v5 file holding ``X`` (32×32×3×N uint8, the image index last)
and ``y`` (N×1, labels 1-10, where 10 stands for the digit 0). Official sizes: train
73,257, test 26,032, extra 531,131. Domain: wild (photographs of house numbers).
"""
from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from datakit._core.progress import log
from datakit.errors import DatakitError, FormatError, SourceNotFound, UnknownName
from datakit.manifest.model import Geometry, Manifest
from datakit.sources._io.download import fetch
from datakit.sources.common import ErrorPolicy, finish
from datakit.sources.home import not_in_home, source_home

DATASET = "svhn"
DOMAIN = "wild"
CLASSES = [str(d) for d in range(10)]
GEOMETRY = Geometry(32, 32, 3)
SPLITS = ("train", "test", "extra", "all")
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
#: More images than any official split (extra has 531,131): a header declaring more is
#: corrupt, and refusing it early keeps a forged file from making us allocate gigabytes.
MAX_IMAGES = 1_000_000


@dataclass(frozen=True)
class SvhnConfig:
    """The settings of one SVHN ingest, saved in the manifest's sidecar (``config``)."""

    path: str
    split: str = "all"
    on_error: str = "raise"
    download: bool = False
    source: str = "svhn"


# MATLAB v5 constants (from the published MAT-file format).
MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 5, 6, 14, 15
ITEM_SIZE = {6: 8, 7: 4, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4, 13: 4, 14: 8, 15: 8}  # mxCLASS -> bytes
CLASS_NAME = {6: "double", 7: "single", 8: "int8", 9: "uint8", 10: "int16", 11: "uint16",
              12: "int32", 13: "uint32", 14: "int64", 15: "uint64"}
#: Array headers (flags, dimensions, name, data tag) are well under this many bytes.
HEADER_SLACK = 4096


def _tag(buf: bytes, at: int, order: str) -> tuple[int, int, int]:
    """(data type, byte count, offset of the data) of the element tag at ``at``."""
    first, second = np.frombuffer(buf, dtype=order + "u4", count=2, offset=at)
    if first >> 16:  # "small data element": type and size packed in 4 bytes, data in the next 4
        return int(first & 0xFFFF), int(first >> 16), at + 4
    return int(first), int(second), at + 8


def _array_header(buf: bytes, order: str) -> tuple[str, tuple[int, ...], int]:
    """(name, dimensions, mxCLASS) of the miMATRIX element at the start of ``buf``."""
    mdtype, _, at = _tag(buf, 0, order)
    if mdtype != MI_MATRIX:
        raise ValueError(f"expected a matrix element, found type {mdtype}")
    _, n, at = _tag(buf, at, order)  # array flags: the class is the low byte
    mclass = int(np.frombuffer(buf, order + "u4", 1, at)[0] & 0xFF)
    at += n
    _, n, at = _tag(buf, at, order)  # dimensions, int32 each
    dims = tuple(int(d) for d in np.frombuffer(buf, order + "i4", n // 4, at))
    at += n + (-n % 8)
    _, n, at = _tag(buf, at, order)  # the name
    return buf[at: at + n].decode("latin1"), dims, mclass


def scan_mat_file(path: str | os.PathLike, inflate: tuple[str, ...] = ("X", "y"),
                  max_elements: int = MAX_IMAGES * 32 * 32 * 3) -> dict[str, tuple[tuple[int, ...], str]]:
    """Declared variables of a MATLAB v5 file: ``{name: (dimensions, class)}``, without loading data.

    Compressed variables named in ``inflate`` are inflated chunk by chunk (constant memory)
    and must not yield more bytes than their declared shape holds: a decompression bomb,
    a truncated stream or corrupt data is refused here, before scipy allocates anything.

    Raises:
        FormatError: naming the file and what is wrong.
    """
    path = Path(path)
    size = path.stat().st_size
    found: dict[str, tuple[tuple[int, ...], str]] = {}
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128 or header[124:126] not in (b"\x00\x01", b"\x01\x00"):
            if header[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in header[:116]:
                raise FormatError(f"{path} is a MATLAB v7.3 (HDF5) file; SVHN's cropped digits are "
                                  "MATLAB v5 (*_32x32.mat). Re-download the original file.")
            raise FormatError(f"{path} is not a MATLAB v5 .mat file (no v5 header).")
        order = "<" if header[126:128] == b"IM" else ">"
        while f.tell() + 8 <= size:
            start = f.tell()
            mdtype, nbytes, _ = _tag(f.read(8), 0, order)
            end = start + 8 + nbytes
            if end > size:
                raise FormatError(f"{path} is truncated: a variable declares {nbytes:,} bytes "
                                  f"but the file ends {end - size:,} bytes short.")
            try:
                if mdtype == MI_COMPRESSED:
                    name, dims, mclass = _inflate_checked(f, nbytes, order, inflate, max_elements, path)
                elif mdtype == MI_MATRIX:
                    f.seek(start)
                    name, dims, mclass = _array_header(f.read(min(nbytes + 8, HEADER_SLACK)), order)
                else:
                    raise ValueError(f"unexpected element type {mdtype} at byte {start}")
            except (ValueError, IndexError, zlib.error) as e:
                raise FormatError(f"{path} is corrupt ({e}).") from e
            found[name] = (dims, CLASS_NAME.get(mclass, f"class {mclass}"))
            f.seek(end + (-(end) % 8 if mdtype == MI_MATRIX else 0))
    return found


def _inflate_checked(f, nbytes: int, order: str, inflate: tuple[str, ...], max_elements: int,
                     path: Path) -> tuple[str, tuple[int, ...], int]:
    """Read one compressed variable's header; inflate it fully (bounded) if it is in ``inflate``."""
    d = zlib.decompressobj()
    left = nbytes
    head = b""
    while len(head) < HEADER_SLACK and left:  # enough to parse the array header
        chunk = f.read(min(left, 1 << 14))
        left -= len(chunk)
        head += d.decompress(chunk, HEADER_SLACK - len(head))
        if d.unconsumed_tail:
            break
    name, dims, mclass = _array_header(head, order)
    if name not in inflate:
        return name, dims, mclass
    elements = int(np.prod(dims, dtype=np.int64))
    if elements > max_elements:
        raise FormatError(f"{path}: variable {name} declares {elements:,} elements (shape "
                          f"{dims}), more than any SVHN split; the file is corrupt.")
    cap = elements * ITEM_SIZE.get(mclass, 8) + HEADER_SLACK
    total = len(head)
    tail = d.unconsumed_tail
    while True:  # every output chunk is bounded, so memory stays flat whatever the ratio
        if not tail:
            if not left or d.eof:
                break
            tail = f.read(min(left, 1 << 20))
            left -= len(tail)
        total += len(d.decompress(tail, 1 << 20))
        tail = d.unconsumed_tail
        if total > cap:
            raise FormatError(f"{path}: variable {name} inflates to more than the {cap:,} bytes "
                              f"its shape {dims} needs (a decompression bomb?); refusing it.")
    if not d.eof:
        raise FormatError(f"{path}: variable {name}'s compressed data is truncated.")
    return name, dims, mclass


def read_svhn_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×32×32×3 uint8) and digit labels (N int64, 0-9) of one SVHN ``.mat`` file.

    The variables' declared shapes, and what their compressed data inflates to, are
    checked by :func:`scan_mat_file` before scipy loads anything.

    Raises:
        FormatError: not a MATLAB v5 file, no ``X``/``y``, wrong shapes, types or labels.
    """
    import scipy.io

    path = Path(path)
    declared = scan_mat_file(path)
    missing = [v for v in ("X", "y") if v not in declared]
    if missing:
        raise FormatError(f"{path} has no variable {' or '.join(missing)} (it holds: "
                          f"{', '.join(declared) or 'nothing'}); SVHN files hold X (images) and y (labels).")
    x_shape, x_kind = declared["X"]
    if len(x_shape) != 4 or tuple(x_shape[:3]) != (32, 32, 3):
        raise FormatError(f"{path}: X has shape {tuple(x_shape)}, expected 32x32x3xN.")
    n = x_shape[3]
    if n > MAX_IMAGES:
        raise FormatError(f"{path}: X declares {n:,} images, more than any SVHN split; "
                          "the file is corrupt.")
    y_shape, _ = declared["y"]
    if int(np.prod(y_shape)) != n:
        raise FormatError(f"{path} holds {n:,} images in X but {int(np.prod(y_shape)):,} "
                          "labels in y; the counts must match.")
    if x_kind != "uint8":
        raise FormatError(f"{path}: X is {x_kind}, expected uint8 pixels.")
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except Exception as e:  # a corrupt or truncated data block
        raise FormatError(f"{path} is truncated or corrupt ({e}).") from e
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.shape != (32, 32, 3, n) or len(y) != n:  # the data must match its header
        raise FormatError(f"{path}: X has shape {x.shape} and y {len(y)} labels, which "
                          "disagree with the file's own header.")
    if n and (y.min() < 1 or y.max() > 10 or np.any(y != np.round(y))):
        raise FormatError(f"{path}: y holds labels from {y.min():g} to {y.max():g}; "
                          "SVHN labels are the whole numbers 1-10.")
    # SVHN's quirk, handled here once: label 10 means the digit 0 (1-9 are themselves).
    labels = y.astype(np.int64) % 10
    # 32×32×3×N (MATLAB's column-major layout, index last) -> N×32×32×3.
    images = np.ascontiguousarray(np.moveaxis(x, 3, 0))
    return images, labels


def files_present(folder: Path) -> list[str]:
    """The splits whose ``*_32x32.mat`` file is in ``folder``, in official order."""
    return [s for s in FILES if (Path(folder) / FILES[s]).is_file()]


def ingest_svhn(path: str | os.PathLike | None = None, *, split: str = "all",
                out: str | os.PathLike | None = None, name: str | None = None,
                on_error: str = "raise", download: bool = False) -> Manifest:
    """Ingest SVHN's cropped-digit ``.mat`` files from the folder ``path`` into a manifest.

    Args:
        path: the folder holding ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``
            (default: ``DATA_HOME/svhn``, see :mod:`datakit.sources.home`).
        split: ``train``, ``test``, ``extra``, or ``all``: every split whose file is in
            ``path`` (with ``download``: all three; extra is 1.3 GB).
        out: output folder or ``.parquet`` path (default ``data_manifests/``).
        name: manifest name (default ``svhn``, or ``svhn-train`` etc.).
        on_error: ``raise`` at the first bad file, or ``skip`` a bad file and record it.
        download: fetch the official files into ``path`` (or the data home) first,
            checksums verified.

    Raises:
        UnknownName: bad ``split`` or ``on_error``.
        SourceNotFound: the files are not in ``path`` (or the data home).
        FormatError: a file is corrupt (with ``on_error="skip"``: only if no split is left).
    """
    # 1. Check arguments.
    if split not in SPLITS:
        raise UnknownName(f"Unknown split {split!r} for SVHN; use one of: {', '.join(SPLITS)}.")
    policy = ErrorPolicy(on_error)
    folder = Path(path) if path is not None else source_home(DATASET)
    # 2. Download if asked.
    wanted = list(FILES) if split == "all" else [split]
    if download:
        fetch("svhn", folder, files=[FILES[s] for s in wanted])
    present = files_present(folder)
    if path is None and not (present if split == "all" else split in present):
        # The data home: say where we looked and that --download fills it.
        raise not_in_home(f"SVHN {'files' if split == 'all' else split + ' file'}", folder,
                          ", ".join(FILES[s] for s in wanted))
    if not folder.is_dir():
        raise SourceNotFound(f"SVHN folder {folder} does not exist. Pass the folder that holds "
                             "the *_32x32.mat files, or use --download.")
    if split == "all":
        splits = present
        if not splits:
            raise SourceNotFound(
                f"SVHN files not found in {folder} (looked for {', '.join(FILES.values())}). "
                "Pass the folder that holds them, or use --download.")
        absent = [FILES[s] for s in FILES if s not in splits]
        if absent:
            log(f"svhn: {', '.join(absent)} not in {folder}; ingesting {', '.join(splits)}")
    else:
        splits = [split]
    # 3. Verify and load, file by file.
    loaded: list[tuple[str, np.ndarray, np.ndarray, Path]] = []
    failures: list[DatakitError] = []
    for s in splits:
        file = folder / FILES[s]
        try:
            if not file.is_file():
                raise SourceNotFound(
                    f"SVHN file not found in {folder} (looked for {FILES[s]}). Pass the folder "
                    "that holds it, or use --download.")
            loaded.append((s, *read_svhn_mat(file), file))
            log(f"svhn {s}: {len(loaded[-1][2]):,} images")
        except DatakitError as e:
            failures.append(e)
            policy.handle(str(file), e)
    if not loaded:
        reasons = " ".join(item["reason"] for item in policy.skipped)
        kind = SourceNotFound if all(isinstance(e, SourceNotFound) for e in failures) else FormatError
        raise kind(f"No SVHN split could be ingested from {folder}; every file was skipped. {reasons}")
    # 4. Rows and pixels, then the atomic write.
    parts = [images for _, images, _, _ in loaded]
    pixels = parts[0] if len(parts) == 1 else np.concatenate(parts)  # no copy for one split
    records = []
    for s, _, labels, file in loaded:
        records.extend({
            "id": f"svhn/{s}/{i:06d}", "dataset": DATASET, "subset": s, "split": s,
            "domain": DOMAIN, "label": lab, "class_name": CLASSES[lab],
            "source": f"{file.name}[{i}]", "orig_width": 32, "orig_height": 32, "orig_mode": "RGB",
        } for i, lab in enumerate(labels.tolist()))
    inputs = [_describe_input(file) for _, _, _, file in loaded]
    config = {**asdict(SvhnConfig(str(folder), split, on_error, download)),
              "splits": [s for s, *_ in loaded]}  # what "all" resolved to
    default_name = "svhn" if split == "all" else f"svhn-{split}"
    return finish(out, name or default_name, records, pixels, classes=CLASSES, inputs=inputs,
                  policy=policy, config=config)


def _describe_input(path: Path) -> dict[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:  # streamed: extra_32x32.mat is 1.3 GB
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return {"path": str(path), "sha256": sha.hexdigest(), "md5": md5.hexdigest()}
