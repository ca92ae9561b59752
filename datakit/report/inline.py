"""Turn figures and pixel arrays into inline ``data:`` URIs for self-contained HTML pages."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def png_data_uri(png_bytes: bytes) -> str:
    """``data:image/png;base64,...`` for raw PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def shown_size(uri: str, scale: float = 0.5) -> tuple[int, int] | None:
    """(width, height) in CSS pixels to show a PNG data URI at: its pixels times ``scale``
    (figures are drawn at 2× and shown at half). None when it is not a PNG URI."""
    prefix = "data:image/png;base64,"
    if not uri or not uri.startswith(prefix):
        return None
    head = base64.b64decode(uri[len(prefix):len(prefix) + 32])
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return max(1, round(w * scale)), max(1, round(h * scale))


def figure_data_uri(fig, dpi: int = 192) -> str:
    """Render a matplotlib figure to an inline PNG URI and close it (frees its memory)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    # a 64-colour palette: plots have few colours, and it makes the PNG 3-4× smaller
    buf.seek(0)
    with Image.open(buf) as im:
        small = im.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return png_data_uri(out.getvalue())


def image_grid(images: np.ndarray, ncols: int, pad: int = 1, fill: int = 128) -> np.ndarray:
    """Tile N×H×W×C uint8 images into one H'×W'×C grid, ``ncols`` per row, ``pad`` pixels apart."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def array_data_uri(image: np.ndarray, scale: int = 1) -> str:
    """An H×W×C (C=1 or 3) uint8 array as an inline PNG URI, optionally upscaled (nearest)."""
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    im = Image.fromarray(arr)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return png_data_uri(buf.getvalue())


def grid_data_uri(images: np.ndarray, ncols: int, scale: int = 2) -> str:
    """Tile images into a grid and return it as an inline PNG URI."""
    return array_data_uri(image_grid(images, ncols), scale=scale)
