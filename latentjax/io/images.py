"""Image files as the generators' arrays: float32 NHWC in [-1, 1]."""

from __future__ import annotations

import numpy as np
from PIL import Image


def load_target(path, resolution: int, channels: int) -> np.ndarray:
    """A PNG as [resolution, resolution, channels] float32 in [-1, 1]: centre-cropped to a square and
    resized with Lanczos when its size differs (as the NVIDIA projector prepares targets)."""
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        w, h = image.size
        s = min(w, h)
        if (w, h) != (resolution, resolution):
            image = image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            image = image.resize((resolution, resolution), Image.LANCZOS)
        x = np.asarray(image, np.float32).reshape(resolution, resolution, channels)
    return x / 127.5 - 1.0
