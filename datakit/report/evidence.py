"""Pictures a reader checks the numbers against: per-class generated vs held-out sprites, the
nearest training image beside a flagged class's samples, labelled grids over time, and the
training animation, each inline and small.

Every picture is stored at 1× and shown at 2× (``image-rendering: pixelated``): the page
says how large to draw it (``width``/``height`` below), so the bytes stay those of 1×.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from datakit.report.inline import image_grid, png_data_uri

#: Generated and held-out images per class in the side-by-side sprite.
PER_CLASS_IMAGES = 32
#: Columns of each half of the sprite (32 images: 4 rows of 8).
SPRITE_COLUMNS = 8
#: Samples of a flagged class shown beside their nearest training image.
NEAREST_SAMPLES = 8
#: Grids over time shown per run (evenly spaced, first and last included).
GRIDS_OVER_TIME = 5
#: Samples of each class (the first columns of its row) shown in a grid over time: the final
#: samples are in the per-class sprites (32 a class) and every sample in the animation, so
#: four a class show the progress at half the bytes of the trainer's eight.
OVER_TIME_COLUMNS = 4
#: Grey levels (per channel) of the pictures of samples: five bits for generated samples (each
#: pixel moves by at most 4 of 255), six for held-out real ones (at most 2), which cannot be
#: told apart at 2× and make their PNGs 30-40% smaller (noisy 8-bit samples compress badly).
#: The memorisation evidence (samples above their nearest training images) stays lossless.
GENERATED_LEVELS = 32
REAL_LEVELS = 64
#: The inline animation is re-encoded (fewer frames, smaller) until it is below this size.
MAX_GIF_BYTES = 150_000
#: Pixel pictures are shown at this many CSS pixels per image pixel.
SHOW_SCALE = 2


@dataclass
class Picture:
    """An inline image and the CSS size to show it at."""

    uri: str
    width: int
    height: int


#: A sample picture is stored as JPEG (this quality, no chroma subsampling) instead of PNG
#: when that is at most half the bytes: natural-scene crops (GoodImg) compress badly as PNG
#: and made study pages of 4 arms × 3 seeds weigh over 10 MB; clean digits stay PNG.
JPEG_QUALITY = 90


def fewer_levels(arr: np.ndarray, levels: int) -> np.ndarray:
    """``arr`` (uint8) rounded to ``levels`` evenly spaced values from 0 to 255 (black and
    white stay exact)."""
    step = 255 / (levels - 1)
    return (np.round(np.asarray(arr, dtype=np.float32) / step) * step).round().astype(np.uint8)


def _png(arr: np.ndarray, scale: int = SHOW_SCALE, lossless: bool = False) -> Picture:
    arr = np.asarray(arr, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    im = Image.fromarray(arr)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    uri = png_data_uri(buf.getvalue())
    if not lossless:
        jpeg = io.BytesIO()
        im.save(jpeg, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        if 2 * jpeg.tell() <= buf.tell():
            uri = "data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode("ascii")
    return Picture(uri, im.width * scale, im.height * scale)


def class_sprite(generated: np.ndarray, real: np.ndarray | None) -> Picture:
    """One PNG per class: generated samples (left) and held-out real ones (right), 8 a row."""
    left = image_grid(fewer_levels(generated[:PER_CLASS_IMAGES], GENERATED_LEVELS), SPRITE_COLUMNS)
    if real is None or len(real) == 0:
        return _png(left)
    right = image_grid(fewer_levels(real[:PER_CLASS_IMAGES], REAL_LEVELS), SPRITE_COLUMNS)
    h = max(left.shape[0], right.shape[0])
    gap = np.full((h, 6, left.shape[2]), 255, dtype=np.uint8)
    pad = (lambda a: np.concatenate([a, np.full((h - a.shape[0], a.shape[1], a.shape[2]), 255,
                                                dtype=np.uint8)]) if a.shape[0] < h else a)
    return _png(np.concatenate([pad(left), gap, pad(right)], axis=1))


def nearest_training(generated: np.ndarray, train: np.ndarray, k: int = NEAREST_SAMPLES
                     ) -> tuple[Picture, list[float]] | None:
    """The ``k`` generated samples closest to a training image (pixel space, root mean square
    difference in 0–255 grey levels), each above its nearest training image. Returns the
    two-row picture and the distances, closest first."""
    if len(generated) == 0 or len(train) == 0:
        return None
    g = generated.reshape(len(generated), -1).astype(np.float32)
    t = train.reshape(len(train), -1).astype(np.float32)
    d2 = (g ** 2).sum(1)[:, None] - 2 * g @ t.T + (t ** 2).sum(1)[None, :]
    nn = d2.argmin(1)
    dist = np.sqrt(np.maximum(d2[np.arange(len(g)), nn], 0) / g.shape[1])
    order = np.argsort(dist)[:k]
    pairs = np.concatenate([generated[order], train[nn[order]]])
    return _png(image_grid(pairs, len(order)), lossless=True), [float(x) for x in dist[order]]


def labelled_grid(path: Path, class_names: Sequence[str] | None,
                  columns: int = OVER_TIME_COLUMNS) -> Picture:
    """A samples/step_*.png grid with its class names written left of its rows (one row per
    class in conditional runs; no labels when the rows do not match the classes), cut to
    the first ``columns`` samples of each row."""
    with Image.open(path) as im:
        im = im.convert("L") if im.mode in ("L", "LA", "P", "1") or _is_grey(im) else im.convert("RGB")
    im = Image.fromarray(fewer_levels(np.asarray(im), GENERATED_LEVELS))
    rows = len(class_names or [])
    if rows and im.height // rows >= 6:
        im = _first_columns(im, rows, columns)
        margin = 8 + 6 * max(len(str(n)) for n in class_names)
        canvas = Image.new(im.mode, (im.width + margin, im.height), 255 if im.mode == "L" else (255,) * 3)
        canvas.paste(im, (margin, 0))
        draw = ImageDraw.Draw(canvas)
        step = im.height / rows
        for i, name in enumerate(class_names):
            draw.text((2, int(i * step + step / 2 - 5)), str(name), fill=0 if im.mode == "L" else (0,) * 3)
        im = canvas
    return _png(np.asarray(im))


def _first_columns(im: Image.Image, rows: int, columns: int) -> Image.Image:
    """The first ``columns`` cells of each row of a trainer's grid (square images 1 px apart,
    as ``image_grid`` tiles them); the grid as it is when its cells are not square."""
    cell = (im.height - 1) / rows
    if cell != int(cell) or (im.width - 1) % int(cell) or (im.width - 1) // int(cell) <= columns:
        return im
    return im.crop((0, 0, 1 + columns * int(cell), im.height))


def _is_grey(im: Image.Image) -> bool:
    arr = np.asarray(im.convert("RGB"))
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())


def over_time(files: Sequence[Path], shown: int = GRIDS_OVER_TIME) -> list[Path]:
    """``shown`` grids evenly spaced over training, first and last included."""
    if not files:
        return []
    idx = np.unique(np.linspace(0, len(files) - 1, min(shown, len(files))).round().astype(int))
    return [files[i] for i in idx]


def inline_gif(path: Path, max_bytes: int = MAX_GIF_BYTES) -> Picture | None:
    """training.gif as a data URI: as written when small enough, else re-encoded with the
    generated samples' grey levels, then with every other frame and a smaller size until it
    fits. None when it cannot be read."""
    raw = path.read_bytes()
    try:
        with Image.open(path) as im:
            frames = []
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                frames.append(Image.fromarray(fewer_levels(np.asarray(im.convert("L")),
                                                           GENERATED_LEVELS)))
            duration = im.info.get("duration", 250)
    except OSError:
        return None
    w, h = frames[0].size
    data, keep, scale = raw, 1, 1.0
    while len(data) > max_bytes and (keep == 1 or len(frames[::keep // 2]) > 1):
        size = (max(8, int(w * scale)), max(8, int(h * scale)))
        shown = [f.resize(size, Image.NEAREST) for f in frames[::keep]]
        if frames[-1] is not frames[::keep][-1]:
            shown.append(frames[-1].resize(size, Image.NEAREST))
        buf = io.BytesIO()
        shown[0].save(buf, format="GIF", save_all=True, append_images=shown[1:],
                      duration=duration * keep, loop=0)
        data = buf.getvalue()
        keep, scale = keep * 2, max(0.25, scale / 1.5)
    uri = "data:image/gif;base64," + base64.b64encode(data).decode("ascii")
    # shown at the grid's own width (at most 480 px), whatever it was re-encoded at
    show_w = min(480, w * SHOW_SCALE if w < 256 else w)
    return Picture(uri, show_w, int(show_w * h / w))
