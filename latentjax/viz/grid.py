"""Image grids: NHWC float images in a known range -> one uint8 picture -> PNG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def to_uint8(images, drange=(-1.0, 1.0)) -> np.ndarray:
    """Map images from `drange` to [0, 255] (clipped, rounded) as uint8."""
    lo, hi = drange
    x = (np.asarray(images, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def image_grid(images, cols: int | None = None, pad: int = 0) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] row by row into [rows*H, cols*W, C] (cols ~ sqrt(N))."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"image_grid expects [N, H, W, C] images, got shape {images.shape}")
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad, c), images.dtype)
    for i, img in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, col * (w + pad): col * (w + pad) + w] = img
    return grid


def encode_png(image) -> bytes:
    """An [H, W, C] uint8 image (C = 1, 3 or 4) as PNG bytes."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or image.dtype != np.uint8:
        raise ValueError(f"PNG images must be [H, W, 1|3|4] uint8, got {image.shape} {image.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()

