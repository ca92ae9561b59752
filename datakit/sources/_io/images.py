"""Turning image files of any size and mode into store pixels: decode, crop to ink, fit, pad.

Shared by the sources that read image files (Chars74K's PNG folders and archives). Every
image ends up ``size``×``size`` with its aspect ratio kept: it is scaled so that its longer
side fits, then centred on a canvas of its own border colour (the paper or background
around a glyph), so nothing is stretched and no black bars appear around light images.

Decoding is defensive: empty files, files that are not images, truncated files and
decompression bombs (a small file declaring a huge image) raise :class:`FormatError` or
:class:`UnsafeArchive` naming the file, before any large buffer is allocated.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageOps

from datakit.errors import FormatError, UnsafeArchive

#: The most pixels one image may declare. Chars74K's largest images are scans of
#: 1200×900; 40 MP leaves room for any honest photo and stops bombs before decoding.
MAX_IMAGE_PIXELS = 40_000_000

#: The most bytes one image file (or archive member) may declare.
MAX_FILE_BYTES = 64 * 1024 * 1024
ORIENTATION_TAG = 0x0112  # EXIF "Orientation": 1 = as stored; 2-8 = mirror and/or turn

# PIL's own bomb guard stays on as a second line of defence (it raises at twice its value).
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_IMAGE_PIXELS)


@dataclass(frozen=True)
class FitOptions:
    """How a decoded image is turned into store pixels."""

    size: int = 32
    channels: int = 1
    crop_ink: bool = False          # crop to the ink's bounding box first (scans on paper)
    ink_threshold: int = 48         # grey-level distance from the background that counts as ink
    ink_margin: float = 0.08        # margin around the ink box, as a share of its longer side


def decode_image(data: bytes, where: str, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode image bytes, refusing empty, unreadable, truncated and oversized images.

    Args:
        data: the file's bytes.
        where: the file name (or ``archive:member``) used in error messages.
        max_pixels: the largest width×height accepted; checked from the header, before decoding.
    """
    if len(data) == 0:
        raise FormatError(f"{where} is empty (0 bytes); it is not an image. "
                          "Remove it, replace it, or pass --on-error skip.")
    if len(data) > MAX_FILE_BYTES:
        raise UnsafeArchive(f"{where} is {len(data):,} bytes, more than the {MAX_FILE_BYTES:,}-byte "
                            "limit for one image; refusing to decode it.")
    try:
        # PIL only warns between its limit and twice it; the explicit check below refuses.
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"an image of {int(found.group(1)):,} pixels" if found else "a huge image"
        raise UnsafeArchive(f"{where} declares {size}, more than the {max_pixels:,}-pixel limit: "
                            "a decompression bomb or not a character image. Refusing to decode it.") from e
    except Exception as e:  # PIL raises UnidentifiedImageError, SyntaxError, struct.error...
        raise FormatError(f"{where} is not a readable image ({_reason(e)}). "
                          "Remove or replace it, or pass --on-error skip.") from e
    w, h = im.size
    if w <= 0 or h <= 0:
        raise FormatError(f"{where} declares an empty image ({w}x{h}). Remove or replace it.")
    if w * h > max_pixels:
        raise UnsafeArchive(
            f"{where} declares a {w}x{h} image ({w * h:,} pixels), more than the {max_pixels:,}-pixel "
            "limit: a decompression bomb or not a character image. Refusing to decode it.")
    try:
        im.load()
        # a camera's JPEG stores its pixels as the sensor saw them and says how to turn them
        # (EXIF orientation); decode the image as it is meant to be seen
        if im.getexif().get(ORIENTATION_TAG, 1) != 1:
            im = ImageOps.exif_transpose(im)
    except Exception as e:
        raise FormatError(f"{where} is truncated or corrupt ({_reason(e)}). "
                          "Remove or replace it, or pass --on-error skip.") from e
    return im


def _reason(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", text)


def normalise_mode(im: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to ``L`` (channels=1) or ``RGB`` (channels=3).

    Transparent images are composited over white (a glyph on an empty page); 16-bit and
    float greys are scaled to 8 bits rather than clipped.
    """
    target = "L" if channels == 1 else "RGB"
    if im.mode == target:
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a * (255.0 / top), 0, 255).astype(np.uint8), "L")
    elif im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return im.convert(target)


def border_colour(a: np.ndarray) -> tuple[int, ...]:
    """The median colour of an image's outermost ring of pixels (H×W or H×W×C uint8)."""
    if a.ndim == 2:
        a = a[..., None]
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]], axis=0)
    return tuple(int(v) for v in np.median(ring, axis=0))


def ink_box(im: Image.Image, *, threshold: int = 48, margin: float = 0.08) -> tuple[int, int, int, int]:
    """Bounding box of the ink (pixels far from the border colour), with a margin.

    Returns the whole image when nothing stands out from the background.
    """
    grey = im.convert("L")
    w, h = grey.size
    # The page colour from the four edge strips only: no copy of a whole 1200×900 scan.
    ring = np.concatenate([np.frombuffer(grey.crop(box).tobytes(), np.uint8) for box in
                           ((0, 0, w, 1), (0, h - 1, w, h), (0, 0, 1, h), (w - 1, 0, w, h))])
    bg = int(np.median(ring))
    diff = ImageChops.difference(grey, Image.new("L", grey.size, bg))
    box = diff.point(lambda v: 255 if v > threshold else 0).getbbox()
    if box is None:
        return (0, 0, im.width, im.height)
    left, top, right, bottom = box
    pad = int(round(margin * max(right - left, bottom - top))) + 1
    return (max(0, left - pad), max(0, top - pad), min(im.width, right + pad), min(im.height, bottom + pad))


def fit_square(im: Image.Image, opts: FitOptions) -> np.ndarray:
    """Scale ``im`` so its longer side is ``opts.size`` and pad it to a square of its border colour.

    Returns uint8 size×size×channels.
    """
    im = normalise_mode(im, opts.channels)
    if opts.crop_ink:
        box = ink_box(im, threshold=opts.ink_threshold, margin=opts.ink_margin)
        if box != (0, 0, im.width, im.height):
            im = im.crop(box)
    size = opts.size
    w, h = im.size
    scale = size / max(w, h)
    nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    if (nw, nh) != (w, h):
        if w % nw == 0 and h % nh == 0 and w // nw == h // nh:
            im = im.reduce(w // nw)  # exact area average, the fast path for 128 -> 32 etc.
        else:
            # BOX is an area average when shrinking (no aliasing); BILINEAR when enlarging.
            im = im.resize((nw, nh), Image.BOX if scale < 1 else Image.BILINEAR)
    # frombuffer(tobytes()) is about twice as fast as asarray() on small images.
    a = np.frombuffer(im.tobytes(), np.uint8).reshape((nh, nw) + ((3,) if im.mode == "RGB" else ()))
    if (nw, nh) == (size, size):
        out = a
    else:
        fill = np.asarray(border_colour(a), dtype=np.uint8)  # (C,) colour of the background
        out = np.empty((size, size) + a.shape[2:], dtype=np.uint8)
        out[...] = fill if a.ndim == 3 else fill[0]
        top, left = (size - nh) // 2, (size - nw) // 2
        out[top:top + nh, left:left + nw] = a
    if out.ndim == 2:
        out = out[..., None]
    return out
