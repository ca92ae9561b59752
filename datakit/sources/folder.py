"""Source ``folder``: any tree of labelled glyphs in torchvision's ImageFolder layout.

::

    ROOT/<class_name>/<any name>.<png|jpg|bmp|gif|tiff|webp|...>

One class per sub-folder of ROOT, the class name being the folder name; files may sit in
deeper folders of a class. Any format PIL reads is accepted, with the same checks as
Chars74K (decompression bombs, oversized files, corrupt files: ``--on-error``) and the
same parallel decode (:mod:`datakit.sources._io.decode`), spilled to disk and written a
chunk at a time (memory holds a chunk, not the output). Only regular files are read
(FIFOs, devices, sockets, links to folders and looping links are bad files). Hidden files and folders
(names starting with ".") and loose files beside the class folders are passed over.
A folder tree has no split: every row is ``train``; ``datakit compose`` makes splits.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from datakit._core.progress import log
from datakit.errors import DatakitError, FormatError, SourceNotFound, UnknownName
from datakit.manifest.model import Manifest
from datakit.sources._io.archive import tree_files
from datakit.sources._io.decode import decode_into
from datakit.sources._io.images import FitOptions
from datakit.sources.common import ErrorPolicy, IngestSpill, finish_chunks, output_path, records_in_path_order

DATASET = "folder"
DOMAINS = ("wild", "synthetic", "handwritten")
#: Default store channels per domain: photographs keep colour, glyph renderings and scans are grey.
DEFAULT_CHANNELS = {"wild": 3, "synthetic": 1, "handwritten": 1}


@dataclass(frozen=True)
class FolderConfig:
    """The settings of one folder ingest (saved in the manifest's sidecar)."""

    path: str
    domain: str = "wild"
    classes: tuple[str, ...] | None = None
    size: int = 32
    channels: int = 3
    on_error: str = "raise"
    source: str = "folder"


def printable(text: str) -> str:
    """``text`` with undecodable bytes of a file name shown as U+FFFD (safe in messages)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def class_folders(root: Path) -> list[str]:
    """The class folders of ``root`` (not hidden, names readable as UTF-8), sorted.

    Two folders whose names are one name in two Unicode forms (``é`` composed, NFC, and as
    ``e`` + a combining accent, NFD: macOS writes the second) would become two classes that
    print alike; that is refused, with both spellings named."""
    names = sorted(e.name for e in os.scandir(root)
                   if e.is_dir() and not e.name.startswith(".") and _is_utf8(e.name))
    seen: dict[str, str] = {}
    for n in names:
        key = unicodedata.normalize("NFC", n)
        if key in seen:
            raise FormatError(
                f"{root} has two class folders that are one name in two Unicode forms: {seen[key]!a} and "
                f"{n!a} both read {key!r}. They would become two classes that look the same; merge them "
                "into one folder (or rename one).")
        seen[key] = n
    return names


def choose_classes(root: Path, classes: str | list[str] | None) -> list[str]:
    """The vocabulary: ``classes`` (a comma list or list, in that order) or every class folder."""
    found = class_folders(root)
    if classes is None or classes == "" or classes == "all":
        if not found:
            raise SourceNotFound(f"{root} holds no class folders. Lay the images out as "
                                 "ROOT/<class_name>/<image file> (one folder per class).")
        return found
    wanted = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
    missing = [c for c in wanted if c not in found]
    if missing:
        raise UnknownName(f"No class folder {', '.join(missing)} in {root}; its class folders are: "
                          f"{', '.join(found) or '(none)'}.")
    return wanted


def _readable_names(files: Iterator[tuple[str, str, str, bytes | None]], policy: ErrorPolicy
                    ) -> Iterator[tuple[str, str, str, bytes | None]]:
    """Pass over (with the error policy) files whose names are not valid UTF-8: their names
    cannot be stored in the manifest's Parquet table or JSON sidecar."""
    bad_dirs: set[str] = set()
    for kind, rel, where, data in files:
        if any(rel.startswith(d + "/") for d in bad_dirs):
            continue
        if not _is_utf8(rel):
            if kind == "dir":
                bad_dirs.add(rel)
            policy.handle(printable(where), FormatError(
                f"{printable(where)}: the name is not valid UTF-8, so it cannot be recorded in "
                "the manifest. Rename it, or pass --on-error skip."))
            continue
        yield kind, rel, where, data


def ingest_folder(path: str | os.PathLike, *, domain: str = "wild",
                  classes: str | list[str] | None = None, size: int = 32,
                  channels: int | None = None, workers: int | None = None,
                  out: str | os.PathLike | None = None, name: str | None = None,
                  on_error: str = "raise") -> Manifest:
    """Ingest an ImageFolder tree (``ROOT/<class_name>/<image>``) into a manifest.

    Args:
        path: the root folder; each sub-folder is one class named after it.
        domain: ``wild``, ``synthetic`` or ``handwritten`` (recorded on every row).
        classes: keep only these class folders (comma list or list; their order is the
            label order). Default: every class folder, sorted by name.
        size: side of the square store images (aspect kept by padding with the border colour).
        channels: 1 or 3 (default 3 for wild, 1 for synthetic and handwritten).
        workers: decode processes (default: all cores; 0 or 1 decodes in this process).
        out: output folder or ``.parquet`` path (default ``data_manifests/``).
        name: manifest name (default: the root folder's name).
        on_error: ``raise`` at the first bad file (corrupt, too large, unreadable name, an
            empty class folder), or ``skip`` it and record why in the sidecar.
    """
    root = Path(path)
    if domain not in DOMAINS:
        raise UnknownName(f"Unknown --domain {domain!r}; use one of: {', '.join(DOMAINS)}.")
    channels = DEFAULT_CHANNELS[domain] if channels is None else int(channels)
    if channels not in (1, 3):
        raise UnknownName(f"Unsupported --channels {channels}; use 1 or 3.")
    if not isinstance(size, int) or not 4 <= size <= 1024:
        raise DatakitError(f"Unsupported --size {size!r}; use a whole number from 4 to 1024.")
    if not root.is_dir():
        raise SourceNotFound(f"{root} is not a folder. Pass the root of an ImageFolder tree "
                             "(ROOT/<class_name>/<image file>).")
    policy = ErrorPolicy(on_error)
    vocab = choose_classes(root, classes)
    opts = FitOptions(size=size, channels=channels)
    subset = root.resolve().name or "folder"
    target = output_path(out, name or subset)
    log(f"Reading {len(vocab)} class folders from {root}")
    files = _readable_names(tree_files(root, policy), policy)
    with IngestSpill(target, (size, size, channels)) as spill:
        rels, metas, folders = decode_into(spill, files, vocab, opts, policy, workers,
                                           lambda folder, where: folder)
        _check_read(root, vocab, folders, len(rels), policy)
        records, order = records_in_path_order(rels, metas, vocab, dataset=DATASET,
                                               subset=subset, domain=domain)
        policy.skipped.sort(key=lambda s: s["file"])
        config = FolderConfig(path=str(path), domain=domain,
                              classes=tuple(vocab) if classes else None, size=size,
                              channels=channels, on_error=on_error)
        inputs = [{"path": str(root), "sha256": None, "files": len(rels)}]
        return finish_chunks(target, name or subset, records, spill.in_order(order),
                             spill.image_shape, classes=vocab, inputs=inputs, policy=policy,
                             config=asdict(config))


def _check_read(root: Path, vocab: list[str], folders: dict[str, list], read: int,
                policy: ErrorPolicy) -> None:
    """An empty class folder, or no image read at all, is an error (or skipped)."""
    for folder in vocab:
        where, n = folders.get(folder, [str(root / folder), 0])
        if n == 0:
            policy.handle(where, FormatError(
                f"Class folder {where} (class {folder!r}) holds no images. Put images in it, "
                "remove it, leave it out of --classes, or pass --on-error skip."))
    if not read:
        raise FormatError(f"No images were read from {root}" + (
            f"; all {len(policy.skipped)} bad files were skipped (first: "
            f"{policy.skipped[0]['reason']})" if policy.skipped else "") + ".")
