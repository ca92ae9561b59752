"""Reading image files out of a tar archive (.tgz / .tar.bz2 / .tar.xz / .tar) or a folder tree.

Both readers stream ``(kind, rel, where, data)`` tuples in a stable order, so a source can
read an extracted tree or the original archive the same way. The archive reader never
extracts to disk and is strict: path escapes, links, special files, absurd declared sizes
and archive-level decompression bombs are refused; a truncated stream is an error rather
than a silent end. Used by the Chars74K and folder sources.
"""
from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import re
import stat
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from datakit.errors import FormatError, UnsafeArchive
from datakit.sources._io.images import MAX_FILE_BYTES
from datakit.sources.common import ErrorPolicy

#: An archive may inflate to at most MAX_UNPACK_RATIO times its size (or MAX_UNPACKED_BYTES,
#: whichever is larger): Chars74K's archives inflate about 2x.
MAX_UNPACK_RATIO = 200
MAX_UNPACKED_BYTES = 1 << 30

#: What both readers yield: (``"dir"`` or ``"file"``, path relative to the root, where (for
#: messages), the file's bytes or None).
FileEntry = tuple[str, str, str, "bytes | None"]


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
                            f"{link!r}); image archives hold only plain files. Refusing to "
                            "follow it.")
    if kind not in (b"0", b"\0", b"7", b"5"):
        raise UnsafeArchive(f"{where} is not a plain file or folder (tar type {kind!r}); "
                            "refusing to read it.")
    if size > MAX_FILE_BYTES:
        raise UnsafeArchive(f"{where} declares {size:,} bytes, more than the {MAX_FILE_BYTES:,}-byte "
                            "limit for one image; refusing to read it.")
    return path


def archive_files(archive: Path, prefix: str, policy: ErrorPolicy,
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


def tree_files(root: Path, policy: ErrorPolicy) -> Iterator[tuple[str, str, str, bytes | None]]:
    """Walk a folder tree in sorted order, yielding like :func:`archive_files`.

    Only regular files are read (a link to one is followed): a FIFO, a device, a socket, a
    link to a folder and a link that loops or leads nowhere are bad files (the error policy
    decides), never read, so nothing can hang the walk or read without end.
    """
    def walk(folder: Path, rel: str) -> Iterator[tuple[str, str, str, bytes | None]]:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            sub = f"{rel}/{entry.name}" if rel else entry.name
            where = _utf8_name(str(folder / entry.name))
            if where != str(folder / entry.name):
                policy.handle(where, FormatError(f"{where}: the name is not UTF-8 text; rename "
                                                 "it (or pass --on-error skip to leave it out)."))
                continue
            try:
                mode = os.stat(entry.path).st_mode  # follows a link: what it leads to
            except OSError as e:
                policy.handle(where, FormatError(f"{where} cannot be read ({e.strerror or e}); "
                                                 "remove it, or pass --on-error skip."))
                continue
            if stat.S_ISDIR(mode) and entry.is_symlink():
                policy.handle(where, UnsafeArchive(f"{where} is a symbolic link to a folder; "
                                                   "it is not followed (it may loop)."))
                continue
            if stat.S_ISDIR(mode):
                yield "dir", sub, where, None
                yield from walk(Path(entry.path), sub)
                continue
            try:
                data = read_regular_file(entry.path, where)
            except OSError as e:
                policy.handle(where, FormatError(f"{where} cannot be read ({e.strerror or e}); "
                                                 "remove it, or pass --on-error skip."))
                continue
            except (UnsafeArchive, FormatError) as e:
                policy.handle(where, e)
                continue
            yield "file", sub, where, data
    yield from walk(root, "")


def read_regular_file(path: str, where: str) -> bytes:
    """The bytes of the regular file ``path``, at most :data:`MAX_FILE_BYTES` of them.

    The file is opened without blocking (a FIFO would wait for a writer forever) and checked
    to be a regular file through the open descriptor (``stat`` says 0 bytes for a device or a
    FIFO); the read stops one byte past the limit, whatever the size said.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{where} is not a regular file (a FIFO, a device or a socket); "
                              "only image files are read. Remove it, or pass --on-error skip.")
        if st.st_size <= MAX_FILE_BYTES:
            data = f.read(MAX_FILE_BYTES + 1)  # a file growing as it is read stops here
    if st.st_size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
        raise UnsafeArchive(f"{where} is {max(st.st_size, MAX_FILE_BYTES + 1):,} bytes, more "
                            f"than the {MAX_FILE_BYTES:,}-byte limit for one image.")
    return data
