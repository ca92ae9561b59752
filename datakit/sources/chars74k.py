"""Source ``chars74k``: the English part of Chars74K (de Campos, Babu & Varma, 2009).

Four subsets, each a tree of ``SampleNNN`` class folders holding PNG files:

=========  ==================================  ==============  ===============  ========
subset     folder in the release               official .tgz   domain           channels
=========  ==================================  ==============  ===============  ========
GoodImg    English/Img/GoodImg/Bmp/SampleNNN   EnglishImg.tgz  wild             3
BadImag    English/Img/BadImag/Bmp/SampleNNN   EnglishImg.tgz  wild             3
Fnt        English/Fnt/SampleNNN               EnglishFnt.tgz  synthetic        1
Hnd        English/Hnd/Img/SampleNNN           EnglishHnd.tgz  handwritten      1
=========  ==================================  ==============  ===============  ========

Images are read from the extracted tree or straight from the ``.tgz`` archives (never
extracted to disk). The main process streams the files and ships their bytes in batches
to a pool of worker processes that decode and fit them (both cores, deterministic order).
Chars74K has no official split: every row is ``train``; ``datakit compose`` makes splits.
"""
from __future__ import annotations

import bz2
import hashlib
import lzma
import multiprocessing as mp
import signal
import os
import re
import struct
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from datakit.data_home import not_in_home, source_home
from datakit.errors import DatakitError, FormatError, SourceNotFound, UnknownName, UnsafeArchive
from datakit.manifest import CHARS62, Manifest
from datakit.progress import log, progress
from datakit.sources.common import ErrorPolicy, finish
from datakit.sources.images import MAX_FILE_BYTES, FitOptions, decode_image, fit_square

DATASET = "chars74k"


@dataclass(frozen=True)
class Subset:
    """Where one English subset lives in the release and what it is."""

    name: str                  # canonical name, as the release spells its folder
    folder: str                # path of the class folders inside the release
    domain: str
    channels: int              # default store channels
    archives: tuple[str, ...]  # archive names to look for, in order of preference
    download: str              # the official archive that holds it
    crop_ink: bool = False     # scans of paper: crop to the ink before resizing


SUBSETS = {s.name: s for s in (
    Subset("GoodImg", "English/Img/GoodImg/Bmp", "wild", 3,
           ("EnglishImg-GoodImg.tgz", "EnglishImg.tgz"), "EnglishImg.tgz"),
    Subset("BadImag", "English/Img/BadImag/Bmp", "wild", 3,
           ("EnglishImg-BadImag.tgz", "EnglishImg.tgz"), "EnglishImg.tgz"),
    Subset("Fnt", "English/Fnt", "synthetic", 1, ("EnglishFnt.tgz",), "EnglishFnt.tgz"),
    Subset("Hnd", "English/Hnd/Img", "handwritten", 1, ("EnglishHnd.tgz",), "EnglishHnd.tgz",
           crop_ink=True),
)}
# The official folder is spelled "BadImag"; people (and the issue) write "BadImg" too.
SUBSET_ALIASES = {"goodimg": "GoodImg", "badimg": "BadImag", "badimag": "BadImag",
                  "fnt": "Fnt", "hnd": "Hnd"}

CLASS_GROUPS = {"digits": CHARS62[:10], "upper": CHARS62[10:36], "lower": CHARS62[36:],
                "all": CHARS62}

# Quirk, handled here once: class folders are numbered from 1, Sample001..Sample062 being
# "0".."9", "A".."Z", "a".."z" (the order of CHARS62).
SAMPLE_FOLDER = re.compile(r"^Sample(\d+)$")

#: An archive may inflate to at most MAX_UNPACK_RATIO times its size (or MAX_UNPACKED_BYTES,
#: whichever is larger): Chars74K's archives inflate about 2x.
MAX_UNPACK_RATIO = 200
MAX_UNPACKED_BYTES = 1 << 30

BATCH = 256                # files per task shipped to a worker: large enough to amortise IPC,
BATCH_BYTES = 16 << 20     # and small enough in bytes that the tasks in flight stay small


@dataclass(frozen=True)
class Chars74kConfig:
    """The settings of one Chars74K ingest (saved in the manifest's sidecar)."""

    path: str
    subset: str
    classes: str = "all"
    size: int = 32
    channels: int = 1
    on_error: str = "raise"
    source: str = "chars74k"


def canonical_subset(subset: str) -> Subset:
    """The :class:`Subset` for any accepted spelling (case-insensitive; BadImg = BadImag)."""
    key = SUBSET_ALIASES.get(str(subset).lower())
    if key is None:
        raise UnknownName(f"Unknown Chars74K subset {subset!r}; use one of: GoodImg, BadImg "
                          "(or BadImag), Fnt, Hnd.")
    return SUBSETS[key]


def class_vocabulary(classes: str) -> list[str]:
    """The class names kept for ``--classes digits|upper|lower|all``, in label order."""
    if classes not in CLASS_GROUPS:
        raise UnknownName(f"Unknown --classes value {classes!r}; use one of: "
                          f"{', '.join(CLASS_GROUPS)}.")
    return list(CLASS_GROUPS[classes])


def class_of_folder(folder: str, where: str) -> str:
    """Class name of a ``SampleNNN`` folder ("Sample001" -> "0"); FormatError for any other."""
    m = SAMPLE_FOLDER.match(folder)
    if m is None or not 1 <= int(m.group(1)) <= len(CHARS62):
        raise FormatError(
            f"{where}: folder {folder} is not a Chars74K English class (Sample001-Sample010 "
            "are 0-9, Sample011-Sample036 A-Z, Sample037-Sample062 a-z). Remove it, or pass "
            "--on-error skip.")
    return CHARS62[int(m.group(1)) - 1]


# -- finding the files ----------------------------------------------------------------

def locate(path: str | os.PathLike, subset: Subset) -> tuple[str, Path]:
    """Find ``subset`` under ``path``: ``("tree", folder of SampleNNN)`` or ``("archive", file)``.

    ``path`` may be an archive, the folder holding the archives, the extracted tree's root
    (holding ``English/``), ``English/`` itself, or the subset's own folder.
    """
    p = Path(path)
    if p.is_file():
        return "archive", p
    if not p.is_dir():
        raise SourceNotFound(f"{p} does not exist. Pass the folder holding the Chars74K archives "
                             f"(e.g. {subset.download}) or the extracted tree, or use --download.")
    inner = subset.folder.split("/", 1)[1]  # the folder path below English/
    for tree in (p / subset.folder, p / inner):
        if tree.is_dir():
            return "tree", tree
    if p.as_posix().rstrip("/").endswith(inner) and _has_sample_folders(p):
        return "tree", p
    for name in subset.archives:
        if (p / name).is_file():
            return "archive", p / name
    raise SourceNotFound(
        f"Chars74K {subset.name} not found in {p} (looked for the folder {subset.folder}/ and "
        f"the archives {', '.join(subset.archives)}). Pass the folder that holds them, or use "
        "--download.")


def locate_in_home(folder: Path, subset: Subset) -> tuple[str, Path]:
    """:func:`locate` in the data home's ``chars74k/`` folder, whose error says where it
    looked and that ``--download`` fetches the archive there."""
    try:
        return locate(folder, subset)
    except SourceNotFound:
        raise not_in_home(f"Chars74K {subset.name}", folder,
                          f"the folder {subset.folder}/ or the archives "
                          f"{', '.join(subset.archives)}") from None


def subsets_present(folder: Path) -> list[str]:
    """The subsets whose tree or archive is in ``folder``, in the release's order."""
    found = []
    for name, sub in SUBSETS.items():
        try:
            locate(folder, sub)
            found.append(name)
        except SourceNotFound:
            pass
    return found


def _has_sample_folders(p: Path) -> bool:
    return any(SAMPLE_FOLDER.match(e.name) for e in os.scandir(p) if e.is_dir())


class _HashingReader:
    """A read-only file wrapper that hashes what is read (the archive's checksum for free)."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self.sha256.update(b)
        return b


class _Corrupt(Exception):
    """Raised inside the tar reader; turned into a FormatError naming the archive."""


def _decompressed(reader: _HashingReader, archive: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The uncompressed bytes of a .tgz / .tar.bz2 / .tar.xz / .tar, in pieces of at most ``chunk``.

    Unlike tarfile's stream mode, this notices a compressed stream that stops early, and it
    refuses an archive that inflates to absurd sizes (an archive-level decompression bomb).
    """
    limit = max(MAX_UNPACKED_BYTES, MAX_UNPACK_RATIO * archive.stat().st_size)
    first = reader.read(chunk)
    if first[:2] == b"\x1f\x8b":
        def new():
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif first[:3] == b"BZh":
        new = bz2.BZ2Decompressor
    elif first[:6] == b"\xfd7zXZ\x00":
        new = lzma.LZMADecompressor
    else:  # a plain tar
        data = first
        while data:
            yield data
            data = reader.read(chunk)
        return
    d, data, total = new(), first, 0
    while data:
        for out in _inflate(d, data, chunk):
            total += len(out)
            if total > limit:
                raise UnsafeArchive(
                    f"Archive {archive} inflates to more than {limit:,} bytes "
                    f"({MAX_UNPACK_RATIO}x its size or {MAX_UNPACKED_BYTES:,} bytes): a "
                    "decompression bomb, not a Chars74K archive. Refusing to read it.")
            yield out
        data = d.unused_data if d.eof else b""
        if not data:
            data = reader.read(chunk)
        if data and d.eof:  # concatenated gzip members: go on with the next one
            d = new()
    if not d.eof:
        raise _Corrupt("the compressed stream ends early")


def _inflate(d, data: bytes, chunk: int) -> Iterator[bytes]:
    """Feed ``data`` to decompressor ``d``, yielding output pieces of at most ``chunk`` bytes."""
    if hasattr(d, "unconsumed_tail"):  # zlib
        while True:
            out = d.decompress(data, chunk)
            data = d.unconsumed_tail
            if out:
                yield out
            if d.eof or (not data and len(out) < chunk):  # a full piece may have more behind it
                return
    out = d.decompress(data, chunk)  # bz2 / lzma keep their own backlog
    while True:
        if out:
            yield out
        if d.eof or d.needs_input:
            return
        out = d.decompress(b"", chunk)


def _octal(field: bytes, what: str) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256 for big numbers
        return int.from_bytes(field[1:], "big", signed=field[:1] == b"\xff")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise _Corrupt(f"a header has a malformed {what} field") from None


def _tar_entries(chunks: Iterator[bytes]) -> Iterator[tuple[str, bytes, str, int, bytes | None]]:
    """Parse a tar stream: ``(name, typeflag, linkname, size, data)`` per member.

    A small reader of the ustar/GNU/pax formats, about three times faster than tarfile's
    stream mode on Chars74K's 63,000 tiny members, and strict: a bad header checksum or
    data that stops mid-member is an error rather than a silent end of the archive.
    ``data`` is None for members larger than :data:`MAX_FILE_BYTES` (not read).
    """
    buf, pos, skip = bytearray(), 0, 0
    long_name = long_link = None
    pax: dict[str, str] = {}
    ended = False
    for chunk in chunks:
        if ended:
            continue  # padding after the end-of-archive blocks; still decompressed (checked)
        buf += chunk
        while True:
            if skip:
                n = min(skip, len(buf) - pos)
                pos, skip = pos + n, skip - n
                if skip:
                    break
            if len(buf) - pos < 512:
                break
            header = bytes(buf[pos:pos + 512])
            if header == _ZERO_BLOCK:
                ended = True
                break
            stored = _octal(header[148:156], "checksum")
            if stored != sum(header) - sum(header[148:156]) + 256 and stored != (  # signed: old tars
                    sum(struct.unpack("512b", header)) - sum(struct.unpack("8b", header[148:156])) + 256):
                raise _Corrupt("a member header has a bad checksum")
            kind = header[156:157]
            size = int(pax.get("size", _octal(header[124:136], "size")))
            padded = (size + 511) // 512 * 512
            if kind in (b"L", b"K", b"x", b"g"):  # metadata for the next member
                if size > 1 << 20:
                    raise _Corrupt("a long-name or pax header is larger than 1 MiB")
                if len(buf) - pos < 512 + padded:
                    break
                meta = bytes(buf[pos + 512:pos + 512 + size])
                pos += 512 + padded
                if kind == b"L":
                    long_name = meta.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif kind == b"K":
                    long_link = meta.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif kind == b"x":
                    pax = _pax_records(meta)
                continue
            name = long_name or pax.get("path") or _header_name(header)
            link = long_link or pax.get("linkpath") or \
                header[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if kind not in _NO_DATA_TYPES and size > MAX_FILE_BYTES:
                yield name, kind, link, size, None   # refused by the caller, never buffered
                pos, skip = pos + 512, padded
            elif kind not in _NO_DATA_TYPES:
                if len(buf) - pos < 512 + padded:
                    break
                data = bytes(buf[pos + 512:pos + 512 + size])
                pos += 512 + padded
                yield name, kind, link, size, data
            else:
                pos += 512
                yield name, kind, link, 0, None
            long_name = long_link = None
            pax = {}
        del buf[:pos]
        pos = 0
    if not ended and (len(buf) or skip):
        raise _Corrupt("it ends in the middle of a member")


_ZERO_BLOCK = bytes(512)
_NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, folders, FIFOs


def _header_name(header: bytes) -> str:
    name = header[0:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\x00":  # POSIX ustar: long paths are split into prefix/name
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def _pax_records(meta: bytes) -> dict[str, str]:
    records, pos = {}, 0
    while pos < len(meta):
        length = meta[pos:].split(b" ", 1)[0]
        if not length.isdigit() or int(length) <= 0:
            break
        record = meta[pos:pos + int(length)].decode("utf-8", "surrogateescape")
        key, _, value = record.split(" ", 1)[1].rstrip("\n").partition("=")
        records[key] = value
        pos += int(length)
    return records


def _member_path(name: str, archive: Path) -> str:
    """The member's path with ``./`` removed; UnsafeArchive if it is absolute or escapes."""
    parts = re.split(r"[/\\]", name) if "\\" in name else name.split("/")
    if name.startswith(("/", "\\")) or ".." in parts or name[1:2] == ":":
        raise UnsafeArchive(f"{archive.name}: member {name!r} escapes the archive root "
                            "(absolute path or '..'). Refusing to read this archive; "
                            "re-download it from the official site.")
    if "." in parts or "" in parts:
        return "/".join(part for part in parts if part not in (".", ""))
    return name


def _utf8_name(name: str) -> str:
    """A file name as text for messages and the sidecar: bytes that are not UTF-8 shown as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check_utf8(name: str, where: str) -> None:
    """Names become ``source`` values in the table (Parquet strings): they must be UTF-8."""
    if _utf8_name(name) != name:
        raise FormatError(f"{where}: the name is not UTF-8 text; rename it (or pass "
                          "--on-error skip to leave it out).")


def _check_member(where: str, name: str, kind: bytes, link: str, size: int, archive: Path) -> str:
    """Safety checks of one member; returns its normalised path or raises UnsafeArchive."""
    _check_utf8(name, where)
    path = _member_path(name, archive)
    if kind in (b"1", b"2"):
        raise UnsafeArchive(f"{where} is a {'symbolic' if kind == b'2' else 'hard'} link (to "
                            f"{link!r}); Chars74K archives hold only plain files. Refusing to "
                            "follow it.")
    if kind not in (b"0", b"\0", b"7", b"5"):
        raise UnsafeArchive(f"{where} is not a plain file or folder (tar type {kind!r}); "
                            "refusing to read it.")
    if size > MAX_FILE_BYTES:
        raise UnsafeArchive(f"{where} declares {size:,} bytes, more than the {MAX_FILE_BYTES:,}-byte "
                            "limit for one image; refusing to read it.")
    return path


def _archive_files(archive: Path, prefix: str, policy: ErrorPolicy,
                   info: dict[str, Any]) -> Iterator[tuple[str, str, str, bytes | None]]:
    """Stream ``(kind, rel, where, data)`` for the members of ``archive`` under ``prefix``.

    ``kind`` is ``"dir"`` or ``"file"``; ``rel`` is relative to ``prefix``. Every member is
    checked for safety (path escape, links, special files, absurd declared sizes). The
    archive's sha256 and member count are left in ``info`` once the stream is exhausted.
    """
    count = 0
    try:
        with open(archive, "rb") as raw:
            reader = _HashingReader(raw)
            for name, kind, link, size, data in _tar_entries(_decompressed(reader, archive)):
                count += 1
                where = _utf8_name(f"{archive.name}:{name.rstrip('/') if kind == b'5' else name}")
                try:
                    path = _check_member(where, name, kind, link, size, archive)
                except (UnsafeArchive, FormatError) as e:
                    policy.handle(where, e)
                    continue
                if not path.startswith(prefix + "/"):
                    continue
                rel = path[len(prefix) + 1:]
                if rel:
                    info["entries"] = info.get("entries", 0) + 1
                    yield ("dir" if kind == b"5" else "file"), rel, where, data
            if count == 0:
                raise _Corrupt("it holds no tar members")
            info["sha256"] = reader.sha256.hexdigest()
    except (_Corrupt, zlib.error, OSError, EOFError, lzma.LZMAError) as e:
        raise FormatError(
            f"Archive {archive} is truncated or corrupt ({e}; after {count} members). "
            "Re-download it (--download) or pass the extracted folder instead.") from e
    info["members"] = count


def _tree_files(root: Path, policy: ErrorPolicy) -> Iterator[tuple[str, str, str, bytes | None]]:
    """Walk an extracted subset folder in sorted order, yielding like :func:`_archive_files`."""
    def walk(folder: Path, rel: str) -> Iterator[tuple[str, str, str, bytes | None]]:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            sub = f"{rel}/{entry.name}" if rel else entry.name
            where = _utf8_name(str(folder / entry.name))
            if where != str(folder / entry.name):
                policy.handle(where, FormatError(f"{where}: the name is not UTF-8 text; rename "
                                                 "it (or pass --on-error skip to leave it out)."))
                continue
            if entry.is_symlink() and entry.is_dir():
                policy.handle(where, UnsafeArchive(f"{where} is a symbolic link to a folder; "
                                                   "it is not followed (it may loop)."))
                continue
            if entry.is_dir():
                yield "dir", sub, where, None
                yield from walk(Path(entry.path), sub)
                continue
            try:
                size = entry.stat().st_size
                if size > MAX_FILE_BYTES:
                    raise UnsafeArchive(f"{where} is {size:,} bytes, more than the "
                                        f"{MAX_FILE_BYTES:,}-byte limit for one image.")
                data = Path(entry.path).read_bytes()
            except OSError as e:
                policy.handle(where, FormatError(f"{where} cannot be read ({e.strerror or e})."))
                continue
            except UnsafeArchive as e:
                policy.handle(where, e)
                continue
            yield "file", sub, where, data
    yield from walk(root, "")


# -- decoding (runs in the worker processes) ----------------------------------------

_WORKER_OPTS: FitOptions | None = None


def _init_worker(opts: FitOptions) -> None:
    global _WORKER_OPTS
    _WORKER_OPTS = opts
    # Ctrl-C reaches the whole process group: the parent stops the pool; workers stay quiet
    # (no KeyboardInterrupt or BrokenPipe tracebacks from each of them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode_batch(batch: list[tuple[str, bytes]], opts: FitOptions | None = None
                  ) -> tuple[np.ndarray, list[tuple[int, int, str] | DatakitError]]:
    """Decode and fit a batch of files; return their pixels (good ones, in order) and per
    file either ``(orig_width, orig_height, orig_mode)`` or the error it raised."""
    opts = opts or _WORKER_OPTS
    images, results = [], []
    for where, data in batch:
        try:
            im = decode_image(data, where)
            results.append((im.width, im.height, im.mode))
            images.append(fit_square(im, opts))
        except DatakitError as e:
            results.append(e)
        except Exception as e:  # a decoder bug on a hostile file must not kill the ingest
            results.append(FormatError(f"{where} cannot be decoded ({type(e).__name__}: {e})."))
    shape = (0, opts.size, opts.size, opts.channels)
    return (np.stack(images) if images else np.empty(shape, np.uint8)), results


# -- the ingest -----------------------------------------------------------------------

def ingest_chars74k(path: str | os.PathLike | None = None, *, subset: str, classes: str = "all", size: int = 32,
                    channels: int | None = None, workers: int | None = None,
                    out: str | os.PathLike | None = None, name: str | None = None,
                    on_error: str = "raise", download: bool = False) -> Manifest:
    """Ingest one English Chars74K subset into a manifest.

    Args:
        path: an archive, the folder holding the archives, or the extracted tree
            (default: ``DATA_HOME/chars74k``, see :mod:`datakit.data_home`).
        subset: GoodImg, BadImg (= BadImag), Fnt or Hnd, any case.
        classes: ``digits``, ``upper``, ``lower`` or ``all``; labels index this vocabulary.
        size: side of the square store images (aspect kept by padding with the border colour).
        channels: 1 or 3 (default 3 for GoodImg/BadImag, 1 for Fnt/Hnd).
        workers: decode processes (default: all cores; 0 or 1 decodes in this process).
        out: output folder or ``.parquet`` path (default ``data_manifests/``).
        name: manifest name (default ``chars74k-<subset>[-<classes>]``).
        on_error: ``raise`` at the first bad file, or ``skip`` it and record why in the
            sidecar. A truncated or corrupt archive always raises: nothing after it can be read.
        download: fetch the official archive into ``path`` (or the data home) first.
    """
    sub = canonical_subset(subset)
    vocab = class_vocabulary(classes)
    channels = sub.channels if channels is None else int(channels)
    if channels not in (1, 3):
        raise UnknownName(f"Unsupported --channels {channels}; use 1 or 3.")
    if not isinstance(size, int) or not 4 <= size <= 1024:
        raise DatakitError(f"Unsupported --size {size!r}; use a whole number from 4 to 1024.")
    policy = ErrorPolicy(on_error)
    root = Path(path) if path is not None else source_home(DATASET)
    if download:
        from datakit.sources.download import fetch
        fetch("chars74k", root.parent if root.is_file() else root, files=[sub.download])
    kind, where = locate(root, sub) if path is not None else locate_in_home(root, sub)
    opts = FitOptions(size=size, channels=channels, crop_ink=sub.crop_ink)
    info: dict[str, Any] = {}
    if kind == "archive":
        files = _archive_files(where, sub.folder, policy, info)
    else:
        files = _tree_files(where, policy)
    log(f"Reading Chars74K {sub.name} from {where}")
    rels, pixels, metas, folders = _read_all(files, vocab, opts, policy, workers)
    _check_empty_folders(folders, vocab, policy)
    if kind == "archive" and not info.get("entries"):
        raise SourceNotFound(f"Archive {where} holds no {sub.folder}/ folder, so no Chars74K "
                             f"{sub.name} images. Pass the archive that holds that subset "
                             f"({sub.download}).")
    if not rels:
        raise FormatError(f"No Chars74K {sub.name} images of the classes '{classes}' were read "
                          f"from {where}" + (f"; all {len(policy.skipped)} bad files were skipped "
                                             f"(first: {policy.skipped[0]['reason']})"
                                             if policy.skipped else "") + ".")
    order = sorted(range(len(rels)), key=lambda i: rels[i][0])  # tree and archive agree
    label_of = {c: i for i, c in enumerate(vocab)}
    records = []
    for i in order:
        rel, src, cls = rels[i]
        w, h, mode = metas[i]
        records.append({
            "id": f"{DATASET}/{sub.name}/{rel.rsplit('.', 1)[0]}", "dataset": DATASET,
            "subset": sub.name, "split": "train", "domain": sub.domain,
            "label": label_of[cls], "class_name": cls, "source": src,
            "orig_width": w, "orig_height": h, "orig_mode": mode,
        })
    pixels = pixels[np.asarray(order, dtype=np.int64)] if order != list(range(len(order))) else pixels
    policy.skipped.sort(key=lambda s: s["file"])
    config = Chars74kConfig(path=str(root), subset=sub.name, classes=classes, size=size,
                            channels=channels, on_error=on_error)
    inputs = ([{"path": str(where), "sha256": info.get("sha256"), "bytes": where.stat().st_size}]
              if kind == "archive" else [{"path": str(where), "sha256": None, "files": len(rels)}])
    default = f"chars74k-{sub.name.lower()}" + ("" if classes == "all" else f"-{classes}")
    return finish(out, name or default, records, pixels, classes=vocab, inputs=inputs,
                  policy=policy, config=asdict(config))


def _read_all(files: Iterator[tuple[str, str, str, bytes | None]], vocab: list[str],
              opts: FitOptions, policy: ErrorPolicy, workers: int | None):
    """Batch the streamed files, decode them (in a pool when there is more than one batch)
    and return ``(rels, pixels, metas, folders)`` for the good ones, in stream order.

    ``folders`` maps each selected class folder seen to ``[where, number of files]``.
    """
    rels: list[tuple[str, str, str]] = []      # (relative path, source, class) per good image
    metas: list[tuple[int, int, str]] = []     # (orig_width, orig_height, orig_mode)
    chunks: list[np.ndarray] = []
    folders: dict[str, list] = {}
    bad_folders: set[str] = set()
    folder_class: dict[str, str] = {}          # SampleNNN -> class name, parsed once
    kept = set(vocab)
    pending: deque = deque()
    workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
    pool = None
    bar = progress(desc="decoding", unit="img")

    def collect(batch_meta, result) -> None:
        arr, results = result
        chunks.append(arr)
        for (rel, src, cls), res in zip(batch_meta, results):
            if isinstance(res, DatakitError):
                policy.handle(src, res)
            else:
                rels.append((rel, src, cls))
                metas.append(res)
        bar.update(len(results))

    def decode(batch_meta, batch, parallel: bool) -> None:
        nonlocal pool
        if not parallel:
            collect(batch_meta, _decode_batch(batch, opts))
            return
        if pool is None:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(opts,))
        pending.append((batch_meta, pool.apply_async(_decode_batch, (batch,))))
        while len(pending) > 2 * workers + 1:  # bounded: memory stays flat, order kept
            meta, res = pending.popleft()
            collect(meta, res.get())

    parallel = workers > 1
    batch_meta: list[tuple[str, str, str]] = []
    batch: list[tuple[str, bytes]] = []
    batch_bytes = 0
    held = None  # the first full batch waits: a single batch is decoded here, without a pool
    try:
        for kind, rel, where, data in files:
            folder, _, rest = rel.partition("/")
            if kind == "file" and not rest:
                continue  # a loose file beside the class folders (a list or a readme)
            if folder in bad_folders:
                continue
            cls = folder_class.get(folder)
            if cls is None:
                folder_where = where[: len(where) - len(rest) - 1] if rest else where
                try:
                    cls = folder_class[folder] = class_of_folder(folder, folder_where)
                except FormatError as e:
                    bad_folders.add(folder)
                    policy.handle(folder_where, e)
                    continue
                if cls in vocab:
                    folders[folder] = [folder_where, 0]
            if cls not in kept:
                continue
            entry = folders[folder]
            if kind == "dir" or rest.rsplit("/", 1)[-1].startswith("."):
                continue  # hidden files (macOS resource forks and the like) are never images
            entry[1] += 1
            batch_meta.append((rel, where, cls))
            batch.append((where, data))
            batch_bytes += len(data)
            if len(batch) >= BATCH or batch_bytes >= BATCH_BYTES:
                if held is None and pool is None:
                    held = (batch_meta, batch)
                else:
                    if held is not None:
                        decode(*held, parallel)
                        held = None
                    decode(batch_meta, batch, parallel)
                batch_meta, batch, batch_bytes = [], [], 0
        parallel = parallel and (pool is not None or (held is not None and bool(batch)))
        if held is not None:
            decode(*held, parallel)
        if batch:
            decode(batch_meta, batch, parallel)
        while pending:
            meta, res = pending.popleft()
            collect(meta, res.get())
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    shape = (0, opts.size, opts.size, opts.channels)
    pixels = np.concatenate(chunks) if chunks else np.empty(shape, np.uint8)
    return rels, pixels, metas, folders


def _check_empty_folders(folders: dict[str, list], vocab: list[str], policy: ErrorPolicy) -> None:
    """An empty class folder is a broken copy of the dataset: say which one."""
    for folder, (where, n) in sorted(folders.items()):
        if n == 0:
            cls = class_of_folder(folder, where)
            policy.handle(where, FormatError(
                f"Class folder {where} (class {cls!r}) holds no images; the copy of Chars74K "
                "is incomplete. Re-extract or re-download it, or pass --on-error skip."))
