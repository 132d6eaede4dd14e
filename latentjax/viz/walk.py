"""Pictures of walks: decode edited latents, tile them (rows = directions, columns = steps), animate them."""

from __future__ import annotations

import io
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from latentjax.progress import Progress
from latentjax.viz.grid import image_grid, to_uint8


def render(space, params, latents, batch_size: int = 8, drange=(-1.0, 1.0), progress: bool = True) -> np.ndarray:
    """Latents [..., *space.shape] -> uint8 images [..., H, W, C], decoded in jitted batches."""
    latents = np.asarray(latents)
    lead = latents.shape[:latents.ndim - len(space.shape)]
    flat = latents.reshape((-1,) + space.shape)
    decode = jax.jit(space.decode)
    images = []
    with Progress(len(flat), "rendering", unit="img", enabled=None if progress else False) as bar:
        for lo in range(0, len(flat), batch_size):
            batch = flat[lo: lo + batch_size]
            # pad the last batch so that every call has the same shape (one compilation)
            padded = np.concatenate([batch, np.repeat(batch[-1:], batch_size - len(batch), axis=0)])
            images.append(to_uint8(decode(params, padded)[: len(batch)], drange))
            bar.update(len(batch))
    images = np.concatenate(images)
    return images.reshape(lead + images.shape[1:])


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


def save_gif(path, frames, duration_ms: int = 100, bounce: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_gif(frames, duration_ms, bounce))
    return path


def walk_images(space, params, vectors, layers, seeds, kind: str = "linear", num_steps: int = 7,
                distance: float = 3.0, batch_size: int = 8, progress: bool = True) -> np.ndarray:
    """uint8 images [seeds, K, num_steps, H, W, C]: each seed's latent walked along each direction.

    `kind` names a walk in `latentjax.walks.WALKS`; steps run evenly over [-distance, distance]
    (an odd count, so that the centre is the original); `layers` is None or [K, num_layers].
    """
    from latentjax.walks import WALKS, sweep

    if kind not in WALKS:
        raise ValueError(f"unknown walk kind {kind!r}; expected one of {sorted(WALKS)}")
    if num_steps < 1 or num_steps % 2 == 0:
        raise ValueError(f"num_steps must be odd (the centre column is the original), got {num_steps}")
    steps = np.linspace(-distance, distance, num_steps, dtype=np.float32)
    edit = jax.jit(lambda latent: sweep(WALKS[kind], space, latent, vectors, steps, layers))
    latents = np.stack([np.asarray(edit(space.sample(jax.random.key(seed), 1)[0])) for seed in seeds])
    return render(space, params, latents, batch_size, progress=progress)
