"""Embedded source ``fonts``: the 62 Chars74K classes rendered from the machine's fonts.

A synthetic stand-in for Chars74K's ``Fnt`` subset that needs no download: each image is
one character in one font, dark ink on a light page, tight-fitted to the frame the way
Fnt's glyphs are. The fonts are matplotlib's bundled TrueType files (DejaVu Sans/Serif/Mono,
STIX General, Computer Modern roman/bold/sans/typewriter/italic) plus any TrueType or
OpenType fonts in the system font folders; math, symbol and fallback fonts (whose letters
are not letters) and fonts lacking a glyph for a class are left out for that class.

Every image gets a seeded jitter of font, glyph size, position, rotation, stroke weight
(PIL's ``stroke_width``) and ink/page grey levels. The same seed gives the same images,
and a class's images do not depend on which other classes are rendered.

There is no official split: within each class every fifth image (index 4, 9, 14, ...) is
``test`` and the rest ``train``, so the audit's judge has held-out data.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datakit._core.progress import progress
from datakit.errors import DatakitError, SourceNotFound
from datakit.manifest.model import CHARS62, Manifest
from datakit.sources.chars74k import class_vocabulary
from datakit.sources.common import ErrorPolicy, finish

DATASET = "fonts"
SUBSET = "fonts"
DOMAIN = "synthetic"

SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
# Fonts whose code points for 0-9/A-Z/a-z hold other shapes (math, symbols, fallback boxes).
NOT_TEXT_FONTS = re.compile(r"(?i)(cmex|cmsy|cmmi|lastresort|math|symbol|dingbat|emoji|wingding|"
                            r"webding|icon|braille|ornament)")


@dataclass(frozen=True)
class Jitter:
    """Ranges of the seeded per-image variation."""

    fill: tuple[float, float] = (0.70, 0.95)     # glyph's longer side / frame side
    rotation: float = 10.0                       # degrees, uniform in ±rotation
    shift: float = 0.08                          # of the frame side, bounded by the free room
    strokes: tuple[int, ...] = (0, 0, 0, 1, 2)   # stroke widths (at 64 px rendering) to draw from
    page: tuple[int, int] = (225, 255)           # light background grey
    ink: tuple[int, int] = (0, 40)               # dark glyph grey


@dataclass(frozen=True)
class FontsConfig:
    """The settings of one ``fonts`` ingest (saved in the manifest's sidecar)."""

    size: int = 32
    per_class: int = 100
    classes: str = "all"
    seed: int = 0
    source: str = "fonts"


def bundled_fonts() -> list[Path]:
    """matplotlib's bundled TrueType fonts (DejaVu, STIX, Computer Modern), sorted."""
    import matplotlib
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(folder.glob("*.ttf"))


def system_fonts() -> list[Path]:
    """TrueType/OpenType files in the usual system font folders, sorted."""
    found: list[Path] = []
    for d in SYSTEM_FONT_DIRS:
        root = Path(os.path.expanduser(d))
        if root.is_dir():
            found += sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    return found


def available_fonts() -> list[Path]:
    """The text fonts on this machine: bundled first, then system ones; one file per name."""
    seen: set[str] = set()
    fonts = []
    for p in bundled_fonts() + system_fonts():
        if p.name in seen or NOT_TEXT_FONTS.search(p.name):
            continue
        seen.add(p.name)
        fonts.append(p)
    return fonts


@lru_cache(maxsize=4096)
def _font(path: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px)


@lru_cache(maxsize=None)
def _has_glyph(path: str, char: str) -> bool:
    # A missing character renders nothing, or the font's "notdef" box (private-use U+E000
    # is missing from all text fonts, so it shows what that box looks like).
    font = _font(path, 40)
    mask = font.getmask(char)
    if mask.getbbox() is None:
        return False
    notdef = font.getmask("\ue000")
    return not (mask.size == notdef.size and bytes(mask) == bytes(notdef))


@lru_cache(maxsize=8192)
def _glyph_mask(path: str, char: str, px: int, stroke: int) -> Image.Image:
    """The character's ink as an ``L`` mask (255 = ink), cropped to its bounding box."""
    font = _font(path, px)
    canvas = Image.new("L", (3 * px, 3 * px), 0)
    ImageDraw.Draw(canvas).text((1.5 * px, 1.5 * px), char, font=font, fill=255, anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
    return canvas.crop(canvas.getbbox())


def render_glyph(path: str, char: str, size: int, *, fill: float, angle: float, dx: float, dy: float,
                 stroke: int, page: int, ink: int) -> np.ndarray:
    """One character as uint8 size×size: rendered at twice the size, rotated, fitted, placed."""
    px = 2 * size
    mask = _glyph_mask(path, char, px, stroke * max(1, px // 64))
    if angle:
        mask = mask.rotate(angle, resample=Image.BILINEAR, expand=True)
        mask = mask.crop(mask.getbbox())
    w, h = mask.size
    scale = fill * size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    mask = mask.resize((nw, nh), Image.BOX if scale < 1 else Image.BILINEAR)
    # Shift by dx, dy (shares of the frame side) but never out of the frame.
    left = int(round((size - nw) / 2 + np.clip(dx * size, -(size - nw) / 2, (size - nw) / 2)))
    top = int(round((size - nh) / 2 + np.clip(dy * size, -(size - nh) / 2, (size - nh) / 2)))
    alpha = np.zeros((size, size), np.float32)
    alpha[top:top + nh, left:left + nw] = np.asarray(mask, np.float32) / 255.0
    return np.round(page + (ink - page) * alpha).astype(np.uint8)


def ingest_fonts(*, size: int = 32, per_class: int = 100, classes: str = "all", seed: int = 0,
                 out: str | os.PathLike | None = None, name: str | None = None,
                 font_files: Sequence[str | os.PathLike] | None = None,
                 jitter: Jitter = Jitter()) -> Manifest:
    """Render ``per_class`` images of each selected Chars74K class into a manifest.

    Args:
        size: side of the square store images (1 channel).
        per_class: images per class; every fifth of them is ``test``.
        classes: ``digits``, ``upper``, ``lower`` or ``all``; labels index this vocabulary.
        seed: seed of the jitter; the same seed gives the same images.
        out: output folder or ``.parquet`` path (default ``data_manifests/``).
        name: manifest name (default ``fonts`` or ``fonts-<classes>``).
        font_files: fonts to draw from (default: :func:`available_fonts`).
        jitter: ranges of the per-image variation.
    """
    vocab = class_vocabulary(classes)
    if not isinstance(size, int) or not 8 <= size <= 512:
        raise DatakitError(f"Unsupported --size {size!r} for fonts; use a whole number from 8 to 512.")
    if not isinstance(per_class, int) or per_class < 1:
        raise DatakitError(f"--per-class must be a positive whole number, got {per_class!r}.")
    fonts = [str(p) for p in (available_fonts() if font_files is None else font_files)]
    for f in fonts:
        if not Path(f).is_file():
            raise SourceNotFound(f"Font file {f} does not exist; pass existing .ttf/.otf files.")
    records, images = [], np.empty((per_class * len(vocab), size, size, 1), np.uint8)
    used: set[str] = set()
    bar = progress(total=len(images), desc="rendering", unit="img")
    for label, char in enumerate(vocab):
        usable = [f for f in fonts if _usable(f, char)]
        if not usable:
            raise SourceNotFound(f"No font among the {len(fonts)} given has a glyph for {char!r}; "
                                 "install a text font (e.g. DejaVu) or pass other font files.")
        # One generator per class: a class's images do not depend on the other classes.
        rng = np.random.default_rng([seed, CHARS62.index(char)])
        picks = rng.integers(0, len(usable), per_class)
        fills = rng.uniform(*jitter.fill, per_class)
        angles = rng.uniform(-jitter.rotation, jitter.rotation, per_class)
        shifts = rng.uniform(-jitter.shift, jitter.shift, (per_class, 2))
        strokes = rng.choice(jitter.strokes, per_class)
        pages = rng.integers(jitter.page[0], jitter.page[1] + 1, per_class)
        inks = rng.integers(jitter.ink[0], jitter.ink[1] + 1, per_class)
        for i in range(per_class):
            font = usable[picks[i]]
            used.add(font)
            row = label * per_class + i
            images[row, :, :, 0] = render_glyph(
                font, char, size, fill=fills[i], angle=angles[i], dx=shifts[i, 0], dy=shifts[i, 1],
                stroke=int(strokes[i]), page=int(pages[i]), ink=int(inks[i]))
            records.append({
                "id": f"fonts/{char}/{i:05d}", "dataset": DATASET, "subset": SUBSET,
                "split": "test" if i % 5 == 4 else "train", "domain": DOMAIN, "label": label,
                "class_name": char, "source": f"{Path(font).name}:{char}"
                f" (rotation {angles[i]:+.1f}, stroke {int(strokes[i])})",
                "orig_width": size, "orig_height": size, "orig_mode": "L",
            })
        bar.update(per_class)
    bar.close()
    config = FontsConfig(size=size, per_class=per_class, classes=classes, seed=seed)
    inputs = [{"path": f, "sha256": _file_sha256(f)} for f in sorted(used)]
    default = "fonts" if classes == "all" else f"fonts-{classes}"
    return finish(out, name or default, records, images, classes=vocab, inputs=inputs,
                  policy=ErrorPolicy(), config={**asdict(config), "jitter": asdict(jitter)})


def _usable(font: str, char: str) -> bool:
    try:
        return _has_glyph(font, char)
    except OSError as e:  # not a font file PIL can read
        raise SourceNotFound(f"Font file {font} cannot be read ({e}); pass .ttf/.otf files.") from e


@lru_cache(maxsize=None)
def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
