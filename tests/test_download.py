"""Downloads against a real HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
from test_mnist import TEST_N, TRAIN_N, write_mnist
from test_svhn import COUNTS, write_svhn

from datakit.errors import ChecksumMismatch, SourceNotFound, UnknownName
from datakit.sources._io import download
from datakit.sources._io.download import download_file, fetch, parse_checksum
from datakit.sources.mnist import ingest_mnist
from datakit.sources.svhn import ingest_svhn


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / "served"`` over HTTP on 127.0.0.1; yields (folder, base_url, requests)."""
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    httpd.shutdown()
    httpd.server_close()


def _md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


def test_download_verifies_and_renames(server, tmp_path):
    served, base, _ = server
    payload = bytes(range(256)) * 4000
    (served / "blob.bin").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    for checksum in ("sha256:" + sha, sha, _md5(served / "blob.bin")):
        dest = tmp_path / "got" / "blob.bin"
        assert download_file(base + "blob.bin", dest, checksum, size=len(payload)) == dest
        assert dest.read_bytes() == payload
        assert _leftovers(dest.parent) == []
        dest.unlink()


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    served, base, _ = server
    (served / "blob.bin").write_bytes(b"not what you expected")
    dest = tmp_path / "got" / "blob.bin"
    wrong = hashlib.md5(b"something else").hexdigest()
    with pytest.raises(ChecksumMismatch) as e:
        download_file(base + "blob.bin", dest, "md5:" + wrong)
    got = hashlib.md5(b"not what you expected").hexdigest()
    assert str(e.value) == (f"Downloaded blob.bin from {base}blob.bin has md5 {got}, expected "
                            f"{wrong}; nothing was kept. The download was corrupted or the server "
                            "sent another file: try again or fetch it by hand.")
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_wrong_size_and_error_page(server, tmp_path):
    served, base, _ = server
    (served / "page.html").write_bytes(b"<html>moved</html>")
    dest = tmp_path / "blob.tgz"
    with pytest.raises(ChecksumMismatch, match=r"has 18 bytes, expected 1000; nothing was kept"):
        download_file(base + "page.html", dest, None, size=1000)
    with pytest.raises(ChecksumMismatch, match=r"has only 18 bytes \(at least 5000 expected\), "
                                               r"probably an error page"):
        download_file(base + "page.html", dest, None, min_size=5000)
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_http_error_and_unreachable_server(server, tmp_path):
    _, base, _ = server
    with pytest.raises(SourceNotFound, match=r"Cannot download missing\.gz from .*missing\.gz "
                                             r"\(File not found\)"):
        download_file(base + "missing.gz", tmp_path / "missing.gz", None)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/x.gz"
    with pytest.raises(SourceNotFound, match=r"Cannot download x\.gz from http://127\.0\.0\.1"):
        download_file(dead, tmp_path / "x.gz", None)
    assert list(tmp_path.glob(".*part*")) == []


def test_parse_checksum():
    assert parse_checksum("MD5:ABCDEF" + "0" * 26) == ("md5", "abcdef" + "0" * 26)
    assert parse_checksum("f" * 64) == ("sha256", "f" * 64)
    assert parse_checksum(None) is None
    with pytest.raises(UnknownName, match=r"Unrecognised checksum 'crc:12'"):
        parse_checksum("crc:12")


def test_fetch_names(tmp_path):
    with pytest.raises(UnknownName) as e:
        fetch("cifar", tmp_path)
    assert str(e.value) == "No download is known for source 'cifar'; use one of: mnist, svhn, chars74k."
    with pytest.raises(UnknownName, match=r"chars74k has no official file named EnglishBad\.tgz; use "
                                          r"one of: EnglishImg\.tgz, EnglishHnd\.tgz, EnglishFnt\.tgz"):
        fetch("chars74k", tmp_path, files=["EnglishBad.tgz"])


def test_official_table():
    # The published MNIST md5s (also those of the copies in ../shared/data) and SVHN's.
    mnist = download.RESOURCES["mnist"]
    assert mnist["train-labels-idx1-ubyte.gz"].checksum == "md5:d53e105ee54ea40749a09fcbcd1e9432"
    assert download.RESOURCES["svhn"]["test_32x32.mat"].checksum == "md5:eb5a983be6a315427106f1b164d9cef3"
    for files in download.RESOURCES.values():
        for r in files.values():
            assert r.urls and all(u.endswith("/" + r.filename) for u in r.urls)
            assert r.checksum or r.min_size > 0  # every file gets some check


def _serve_as_official(monkeypatch, source: str, served: Path, urls=None) -> None:
    """Point the source's table at files we serve, with their real checksums."""
    table = {name: dataclasses.replace(r, checksum=_md5(served / name), size=None,
                                       urls=urls(name) if urls else r.urls)
             for name, r in download.RESOURCES[source].items() if (served / name).exists()}
    monkeypatch.setitem(download.RESOURCES, source, table)


def test_mnist_download_path(server, tmp_path, monkeypatch):
    served, base, requests = server
    write_mnist(served)
    _serve_as_official(monkeypatch, "mnist", served)
    monkeypatch.setenv("DATAKIT_DOWNLOAD_URL", base)
    m = ingest_mnist(tmp_path / "mnist", download=True, out=tmp_path / "out")
    assert len(m) == TRAIN_N + TEST_N
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(p.name for p in served.iterdir())
    assert len(requests) == 4
    # Already there and verified: no second download.
    ingest_mnist(tmp_path / "mnist", download=True, split="test", out=tmp_path / "out")
    assert len(requests) == 4


def test_mnist_download_with_wrong_checksum_keeps_nothing(server, tmp_path, monkeypatch):
    served, base, _ = server
    write_mnist(served)
    monkeypatch.setenv("DATAKIT_DOWNLOAD_URL", base)  # the real table: our files' md5s differ
    with pytest.raises(ChecksumMismatch, match=r"Downloaded train-images-idx3-ubyte\.gz from "):
        ingest_mnist(tmp_path / "mnist", download=True, out=tmp_path / "out")
    assert list((tmp_path / "mnist").iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_svhn_download_tries_the_next_mirror(server, tmp_path, monkeypatch):
    served, base, requests = server
    write_svhn(served, splits=("test",))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    _serve_as_official(monkeypatch, "svhn", served, urls=lambda name: (dead + name, base + name))
    monkeypatch.delenv("DATAKIT_DOWNLOAD_URL", raising=False)
    m = ingest_svhn(tmp_path / "svhn", split="test", download=True, out=tmp_path / "out")
    assert len(m) == COUNTS["test"] and requests == ["/test_32x32.mat"]


def test_all_mirrors_down(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setenv("DATAKIT_DOWNLOAD_URL", dead)
    with pytest.raises(SourceNotFound, match=r"Cannot download test_32x32\.mat from .* Check the "
                                             r"network, or download test_32x32\.mat by hand into "):
        fetch("svhn", tmp_path, files=["test_32x32.mat"])


def test_connection_cut_mid_body_keeps_nothing(tmp_path):
    class CutShort(_QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)  # then the connection closes

    httpd = http.server.HTTPServer(("127.0.0.1", 0), CutShort)
    thread = threading.Thread(target=httpd.handle_request, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/blob.bin"
    with pytest.raises(SourceNotFound,
                       match=r"Download of blob\.bin from .* stopped after 1000 of 100000 bytes"):
        download_file(url, tmp_path / "blob.bin", None)
    thread.join(5)
    httpd.server_close()
    assert list(tmp_path.iterdir()) == []
