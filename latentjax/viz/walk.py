"""Pictures of walks: tile decoded walks (rows = directions, columns = steps) and animate them."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from latentjax.viz.grid import image_grid


def walk_grid(images, pad: int = 2) -> np.ndarray:
    """uint8 images [K, S, H, W, C] -> one grid, a row per direction and a column per step."""
    images = np.asarray(images)
    if images.ndim != 5:
        raise ValueError(f"walk_grid expects [directions, steps, H, W, C] images, got shape {images.shape}")
    return image_grid(images.reshape((-1,) + images.shape[2:]), cols=images.shape[1], pad=pad)


def encode_gif(frames, duration_ms: int = 100, bounce: bool = True) -> bytes:
    """uint8 frames [T, H, W, C] -> an animated GIF that loops (forth and back if `bounce`)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"encode_gif expects uint8 frames [T, H, W, 1|3], got {frames.shape} {frames.dtype}")
    if bounce and len(frames) > 2:
        frames = np.concatenate([frames, frames[-2:0:-1]])
    pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()

