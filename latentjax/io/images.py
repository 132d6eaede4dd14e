"""Image files as the generators' arrays: float32 NHWC in [-1, 1]."""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # PIL's modes of 16-bit (and 32-bit integer) images


def load_target(path, resolution: int, channels: int) -> np.ndarray:
    """An image file as [resolution, resolution, channels] float32 in [-1, 1]: centre-cropped to a square
    and resized with Lanczos when its size differs (as the NVIDIA projector prepares targets). 16-bit
    images keep their depth (0..65535 maps to [-1, 1]). A file that is not a readable image is a
    ValueError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            sixteen_bit = image.mode in SIXTEEN_BIT_MODES
            if sixteen_bit:  # 'F' keeps the values; converting to 'L' / 'RGB' would clip them to 255
                image, top = image.convert("F"), 65535.0
            else:
                image, top = image.convert("L" if channels == 1 else "RGB"), 255.0
            w, h = image.size
            s = min(w, h)
            if (w, h) != (resolution, resolution):
                image = image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                image = image.resize((resolution, resolution), Image.LANCZOS)
            x = np.asarray(image, np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:  # PIL reports damaged files as these
        raise ValueError(f"{path}: not a readable image ({e})") from None
    if sixteen_bit:
        x = np.repeat(x[..., None], channels, axis=-1)
    x = x.reshape(resolution, resolution, channels)
    return np.clip(x, 0.0, top) / (top / 2) - 1.0
