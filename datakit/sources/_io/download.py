"""Fetching the official dataset files, with their published checksums verified.

A small declarative table (:data:`RESOURCES`) names, per source, each official file, the
URLs it is served from (tried in order) and its published checksum. :func:`fetch` is what
the sources call when the user passes ``--download``; :func:`download_file` is the one
place that touches the network: it streams to a temporary file beside the destination,
verifies size and checksum, and renames atomically, so a failed or corrupt download never
leaves a file that looks complete.

Tests point ``base_url`` at a local HTTP server; nothing here needs the real internet
except a real ``--download``.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from datakit._core.atomic import temp_path
from datakit._core.progress import log, progress
from datakit.errors import ChecksumMismatch, SourceNotFound, UnknownName

CHUNK = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "datakit (+https://pypi.org/project/datakit)"


@dataclass(frozen=True)
class Resource:
    """One official file: its name, where it is served, and how to recognise it.

    ``checksum`` is ``"md5:<hex>"`` or ``"sha256:<hex>"`` as published by the dataset's
    authors, or ``None`` when they publish none; then only ``size`` (exact, when known)
    and ``min_size`` (a floor that an HTML error page cannot pass) are checked.
    """

    filename: str
    urls: tuple[str, ...]
    checksum: str | None = None
    size: int | None = None
    min_size: int = 0


MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
CHARS74K_URLS = ("https://info-ee.surrey.ac.uk/CVSSP/demos/chars74k/",
                 "http://www.ee.surrey.ac.uk/CVSSP/demos/chars74k/")


def _mirrored(bases: tuple[str, ...], filename: str) -> tuple[str, ...]:
    return tuple(base + filename for base in bases)


#: The official files per source. MNIST md5s are the published ones (they match the
#: copies in ../shared/data); SVHN md5s are those torchvision verifies (checked against
#: pytorch/vision's svhn.py: the test file's is ...b164d9cef3).
RESOURCES: dict[str, dict[str, Resource]] = {
    "mnist": {r.filename: r for r in (
        Resource("train-images-idx3-ubyte.gz", _mirrored(MNIST_MIRRORS, "train-images-idx3-ubyte.gz"),
                 "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873", size=9_912_422),
        Resource("train-labels-idx1-ubyte.gz", _mirrored(MNIST_MIRRORS, "train-labels-idx1-ubyte.gz"),
                 "md5:d53e105ee54ea40749a09fcbcd1e9432", size=28_881),
        Resource("t10k-images-idx3-ubyte.gz", _mirrored(MNIST_MIRRORS, "t10k-images-idx3-ubyte.gz"),
                 "md5:9fb629c4189551a2d022fa330f9573f3", size=1_648_877),
        Resource("t10k-labels-idx1-ubyte.gz", _mirrored(MNIST_MIRRORS, "t10k-labels-idx1-ubyte.gz"),
                 "md5:ec29112dd5afa0611ce80d1b7f02629c", size=4_542),
    )},
    "svhn": {r.filename: r for r in (
        Resource("train_32x32.mat", (SVHN_URL + "train_32x32.mat",),
                 "md5:e26dedcc434d2e4c54c9b2d4a06d8373"),
        Resource("test_32x32.mat", (SVHN_URL + "test_32x32.mat",),
                 "md5:eb5a983be6a315427106f1b164d9cef3"),
        Resource("extra_32x32.mat", (SVHN_URL + "extra_32x32.mat",),
                 "md5:a93ce644f1a588dc4d68dda5feec44a7"),
    )},
    # Chars74K publishes no checksums and no exact byte sizes (its page lists sizes in
    # MB only), so a download is accepted when it is at least min_size bytes; the
    # chars74k source then opens it as a tar archive, which catches truncation.
    "chars74k": {r.filename: r for r in (
        Resource("EnglishImg.tgz", _mirrored(CHARS74K_URLS, "EnglishImg.tgz"), min_size=50 << 20),
        Resource("EnglishHnd.tgz", _mirrored(CHARS74K_URLS, "EnglishHnd.tgz"), min_size=5 << 20),
        Resource("EnglishFnt.tgz", _mirrored(CHARS74K_URLS, "EnglishFnt.tgz"), min_size=20 << 20),
    )},
}


def parse_checksum(checksum: str | None) -> tuple[str, str] | None:
    """Split ``"md5:<hex>"`` / ``"sha256:<hex>"`` (or a bare hex digest, told apart by its
    length) into ``(algorithm, hexdigest)``; ``None`` stays ``None``."""
    if checksum is None:
        return None
    algo, _, digest = checksum.lower().rpartition(":")
    digest = digest.strip()
    lengths = {"md5": 32, "sha256": 64}
    if not algo:
        algo = {32: "md5", 64: "sha256"}.get(len(digest), "")
    if lengths.get(algo) != len(digest) or any(c not in "0123456789abcdef" for c in digest):
        raise UnknownName(f"Unrecognised checksum {checksum!r}; write it as md5:<hex> or sha256:<hex>.")
    return algo, digest


def file_checksum(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file on disk with ``algorithm`` (md5 or sha256), streamed."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def is_intact(path: str | os.PathLike, resource: Resource) -> bool:
    """Whether ``path`` exists and passes ``resource``'s checksum and size checks."""
    p = Path(path)
    if not p.is_file():
        return False
    size = p.stat().st_size
    if (resource.size is not None and size != resource.size) or size < resource.min_size:
        return False
    expected = parse_checksum(resource.checksum)
    return expected is None or file_checksum(p, expected[0]) == expected[1]


def download_file(url: str, dest: str | os.PathLike, checksum: str | None = None, *,
                  size: int | None = None, min_size: int = 0) -> Path:
    """Download ``url`` to ``dest``, verifying it, and return ``dest``.

    The body is streamed into a temporary file in ``dest``'s folder and hashed on the way;
    only when its size and checksum are right is it renamed to ``dest`` (atomically).

    Raises:
        ChecksumMismatch: the bytes received are not the expected ones (nothing is kept).
        SourceNotFound: the server cannot be reached, answers with an error, or the
            connection breaks before the whole file has arrived.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = parse_checksum(checksum)
    h = hashlib.new(expected[0]) if expected else None
    received = 0
    try:
        # the file appears at dest only when every check below passed (_core.atomic)
        with temp_path(dest) as tmp:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, \
                    open(tmp, "wb") as out:
                declared = response.headers.get("Content-Length")
                total = int(declared) if declared and declared.isdigit() else size
                with progress(total=total, desc=f"download {dest.name}", unit="B",
                              unit_scale=True) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        if h is not None:
                            h.update(block)
                        received += len(block)
                        bar.update(len(block))
                        if size is not None and received > size:  # don't stream an endless body
                            break
            if declared and declared.isdigit() and received != int(declared):  # connection cut
                raise SourceNotFound(
                    f"Download of {dest.name} from {url} stopped after {received} of {declared} "
                    "bytes; nothing was kept. Try again.")
            if size is not None and received != size:
                raise ChecksumMismatch(
                    f"Downloaded {dest.name} from {url} has {received} bytes, expected {size}; "
                    "nothing was kept. The server may have changed the file: try another mirror.")
            if received < min_size:
                raise ChecksumMismatch(
                    f"Downloaded {dest.name} from {url} has only {received} bytes (at least "
                    f"{min_size} expected), probably an error page; nothing was kept.")
            if expected is not None and h.hexdigest() != expected[1]:
                raise ChecksumMismatch(
                    f"Downloaded {dest.name} from {url} has {expected[0]} {h.hexdigest()}, "
                    f"expected {expected[1]}; nothing was kept. The download was corrupted or "
                    "the server sent another file: try again or fetch it by hand.")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        # URLError/HTTPError: unreachable or an HTTP error status; HTTPException: the
        # connection broke mid-body; ValueError: not a URL urllib can open.
        reason = getattr(e, "reason", None) or e
        raise SourceNotFound(f"Cannot download {dest.name} from {url} ({reason}).") from e
    return dest


def fetch(source: str, root: str | os.PathLike, files: list[str] | None = None,
          base_url: str | None = None) -> list[Path]:
    """Make sure ``source``'s official files are in ``root``, downloading what is missing.

    Files already present and intact (right checksum/size) are not downloaded again.

    Args:
        source: a key of :data:`RESOURCES` (``mnist``, ``svhn``, ``chars74k``).
        root: the folder to download into (created if needed).
        files: which file names to fetch (default: all of the source's files).
        base_url: serve every file from ``base_url + filename`` instead of the official
            URLs (a mirror, or a local server in tests). Defaults to the environment
            variable ``DATAKIT_DOWNLOAD_URL`` when set (e.g. an institute's mirror).

    Returns:
        The paths of the requested files, in the order asked.
    """
    if source not in RESOURCES:
        raise UnknownName(f"No download is known for source {source!r}; use one of: "
                          f"{', '.join(RESOURCES)}.")
    table = RESOURCES[source]
    names = list(table) if files is None else list(files)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UnknownName(f"{source} has no official file named {', '.join(unknown)}; "
                          f"use one of: {', '.join(table)}.")
    base_url = base_url or os.environ.get("DATAKIT_DOWNLOAD_URL") or None
    root = Path(root)
    paths = []
    for name in names:
        resource = table[name]
        dest = root / name
        paths.append(dest)
        if is_intact(dest, resource):
            log(f"{dest} is already present and verified; not downloading it again.")
            continue
        urls = (base_url.rstrip("/") + "/" + name,) if base_url else resource.urls
        failures = []
        for url in urls:
            log(f"Downloading {url} -> {dest}")
            try:
                download_file(url, dest, resource.checksum, size=resource.size,
                              min_size=resource.min_size)
                break
            except SourceNotFound as e:  # unreachable mirror: try the next one
                failures.append(str(e))
        else:
            raise SourceNotFound(
                " ".join(failures) + f" Check the network, or download {name} by hand "
                f"into {root}.")
    return paths
