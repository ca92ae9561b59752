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
extracted to disk, :mod:`datakit.sources._io.archive`), and decoded in parallel
(:mod:`datakit.sources._io.decode`: all cores, deterministic order), their pixels spilled
to disk as they come and written to the store a chunk at a time: memory holds a chunk,
not the output.
Chars74K has no official split: every row is ``train``; ``datakit compose`` makes splits.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datakit._core.progress import log
from datakit.errors import DatakitError, FormatError, SourceNotFound, UnknownName
from datakit.manifest.model import CHARS62, Manifest
from datakit.sources._io.archive import archive_files, tree_files
from datakit.sources._io.decode import decode_into
from datakit.sources._io.download import fetch
from datakit.sources._io.images import FitOptions
from datakit.sources.common import ErrorPolicy, IngestSpill, finish_chunks, output_path, records_in_path_order
from datakit.sources.home import not_in_home, source_home

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




# -- the ingest -----------------------------------------------------------------------

def ingest_chars74k(path: str | os.PathLike | None = None, *, subset: str, classes: str = "all", size: int = 32,
                    channels: int | None = None, workers: int | None = None,
                    out: str | os.PathLike | None = None, name: str | None = None,
                    on_error: str = "raise", download: bool = False) -> Manifest:
    """Ingest one English Chars74K subset into a manifest.

    Args:
        path: an archive, the folder holding the archives, or the extracted tree
            (default: ``DATA_HOME/chars74k``, see :mod:`datakit.sources.home`).
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
        fetch("chars74k", root.parent if root.is_file() else root, files=[sub.download])
    kind, where = locate(root, sub) if path is not None else locate_in_home(root, sub)
    opts = FitOptions(size=size, channels=channels, crop_ink=sub.crop_ink)
    info: dict[str, Any] = {}
    if kind == "archive":
        files = archive_files(where, sub.folder, policy, info)
    else:
        files = tree_files(where, policy)
    default = f"chars74k-{sub.name.lower()}" + ("" if classes == "all" else f"-{classes}")
    target = output_path(out, name or default)
    log(f"Reading Chars74K {sub.name} from {where}")
    with IngestSpill(target, (size, size, channels)) as spill:
        rels, metas, folders = decode_into(spill, files, vocab, opts, policy, workers,
                                           class_of_folder)
        _check_empty_folders(folders, vocab, policy)
        _check_something_read(sub, classes, kind, where, info, len(rels), policy)
        records, order = records_in_path_order(  # tree and archive agree
            rels, metas, vocab, dataset=DATASET, subset=sub.name, domain=sub.domain,
            id_of=lambda rel: rel.rsplit(".", 1)[0])
        policy.skipped.sort(key=lambda s: s["file"])
        config = Chars74kConfig(path=str(root), subset=sub.name, classes=classes, size=size,
                                channels=channels, on_error=on_error)
        inputs = ([{"path": str(where), "sha256": info.get("sha256"),
                    "bytes": where.stat().st_size}] if kind == "archive"
                  else [{"path": str(where), "sha256": None, "files": len(rels)}])
        return finish_chunks(target, name or default, records, spill.in_order(order),
                             spill.image_shape, classes=vocab, inputs=inputs, policy=policy,
                             config=asdict(config))


def _check_something_read(sub: Subset, classes: str, kind: str, where: Path, info: dict[str, Any],
                          read: int, policy: ErrorPolicy) -> None:
    """An archive without the subset's folder, or no image read at all, is an error."""
    if kind == "archive" and not info.get("entries"):
        raise SourceNotFound(f"Archive {where} holds no {sub.folder}/ folder, so no Chars74K "
                             f"{sub.name} images. Pass the archive that holds that subset "
                             f"({sub.download}).")
    if not read:
        raise FormatError(f"No Chars74K {sub.name} images of the classes '{classes}' were read "
                          f"from {where}" + (f"; all {len(policy.skipped)} bad files were skipped "
                                             f"(first: {policy.skipped[0]['reason']})"
                                             if policy.skipped else "") + ".")


def _check_empty_folders(folders: dict[str, list], vocab: list[str], policy: ErrorPolicy) -> None:
    """An empty class folder is a broken copy of the dataset: say which one."""
    for folder, (where, n) in sorted(folders.items()):
        if n == 0:
            cls = class_of_folder(folder, where)
            policy.handle(where, FormatError(
                f"Class folder {where} (class {cls!r}) holds no images; the copy of Chars74K "
                "is incomplete. Re-extract or re-download it, or pass --on-error skip."))
