"""The reference in docs/ builds as an mkdocs site with warnings as errors (a broken link or
anchor, a page left out of the nav), every page is in the nav, and every docs page the
README links exists (with its heading, when the link names one)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
MKDOCS_YML = (ROOT / "mkdocs.yml").read_text()

#: Markdown links from the README into docs/: (target path, anchor or "").
README_DOC_LINKS = [(m.group(1), m.group(2) or "")
                    for m in re.finditer(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", README)]


def _nav_pages() -> list[str]:
    """The .md files named in mkdocs.yml's ``nav:`` (the block up to the next top-level key)."""
    m = re.search(r"^nav:\s*\n((?:[ \t-].*\n?|\s*\n)*)", MKDOCS_YML, re.M)
    assert m, "mkdocs.yml has no nav"
    return re.findall(r"([\w./-]+\.md)\s*$", m.group(1), re.M)


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc gives a heading (its default slugify)."""
    text = re.sub(r"`", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings in code blocks
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is in the test extra: pip install -e '.[test]'")
def test_docs_site_builds_with_warnings_as_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                          "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNING -" not in out.stderr, out.stderr
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for page in _nav_pages():
        html = "index.html" if page == "index.md" else page[:-len(".md")] + "/index.html"
        assert html in built, f"{page} was not built"


def test_mkdocs_config_is_strict_with_the_builtin_theme():
    assert re.search(r"^strict:\s*true\s*$", MKDOCS_YML, re.M)
    assert re.search(r"^theme:\s*\n\s+name:\s*mkdocs\s*$", MKDOCS_YML, re.M)
    for key in ("omitted_files", "absolute_links", "unrecognized_links", "anchors"):
        assert re.search(rf"^\s+{key}:\s*warn\s*$", MKDOCS_YML, re.M), f"validation.{key} is not warn"


def test_every_docs_page_is_in_the_nav():
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    nav = _nav_pages()
    assert sorted(set(nav)) == pages, f"in docs/ but not in the nav: {sorted(set(pages) - set(nav))}; " \
                                      f"in the nav but not in docs/: {sorted(set(nav) - set(pages))}"
    assert len(nav) == len(set(nav)), "a page is in the nav twice"
    assert nav[0] == "index.md"


def test_readme_links_every_reference_page_and_each_link_exists():
    assert README_DOC_LINKS, "the README links no docs/ page"
    for target, anchor in README_DOC_LINKS:
        page = ROOT / target
        assert page.is_file(), f"README links {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(page), f"README links {target}#{anchor}: no such heading"
    linked = {t for t, _ in README_DOC_LINKS}
    unlinked = sorted(p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md")
                      if p.name != "index.md" and p.relative_to(ROOT).as_posix() not in linked)
    assert not unlinked, f"the README links no reference page {unlinked}"


def test_anchor_slugs_match_mkdocs():
    """The anchor check above slugs headings as mkdocs does (checked on a built heading)."""
    assert _slug("Executors: `--jobs` and Ray") == "executors-jobs-and-ray"
    assert "executors-jobs-and-ray" in _anchors(DOCS / "studies.md")
