"""Identity-consistent sequences: one identity image, a sequence of driver images (poses), one frame each.

The identity is embedded once; each frame maps (that identity embedding, the driver frame's
attribute embedding) to w, so identity can only drift as far as the mapping lets attributes leak
into it. Frames are made in batches over the "data" mesh axis by one compiled program
(`latentjax.sharding.batched_map`). Measures: `identity_drift` (identity-embedding cosine of every
frame to frame 0) and `jitter` (how much more a measured quantity moves between consecutive
frames than its driver does).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.identity.mapper import IdentityMapper
from latentjax.sharding import batched_map


def drive(mapper: IdentityMapper, identity_image, driver_images, batch_size: int = 64) -> np.ndarray:
    """Frames [T, H, W, C]: the identity of `identity_image` [H, W, C] with the attributes of each
    of `driver_images` [T, H, W, C] (NHWC in [-1, 1])."""
    identity_image, driver_images = np.asarray(identity_image, np.float32), np.asarray(driver_images, np.float32)
    if identity_image.ndim != 3 or driver_images.ndim != 4 or driver_images.shape[1:] != identity_image.shape:
        raise ValueError(f"drive needs one identity image [H, W, C] and driver images [T, H, W, C] of the same size, "
                         f"got {identity_image.shape} and {driver_images.shape}")
    embedding = mapper.encode_identity(jnp.asarray(identity_image)[None])
    return batched_map(functools.partial(_frames, mapper, mapper.params, mapper.space.generator.params, embedding),
                       driver_images, batch_size)


@functools.partial(jax.jit, static_argnums=0)
def _frames(mapper, params, generator_params, identity_embedding, drivers):
    identity = jnp.broadcast_to(identity_embedding, (drivers.shape[0], identity_embedding.shape[-1]))
    return mapper.decode(generator_params, mapper.to_w(params, identity, mapper.encode_attributes(drivers, params)))


def identity_drift(embed, frames) -> np.ndarray:
    """[T] cosine of each frame's identity embedding (`embed(images) -> [T, D]`) to frame 0's."""
    e = np.asarray(embed(jnp.asarray(frames)), np.float64)
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    return e @ e[0]


def jitter(measured, driver=None, period: float | None = None) -> float:
    """Mean |change between consecutive frames| of `measured` [T, ...], less the driver's own change
    where `driver` (same shape) is given: 0 when the frames move exactly as their driver. NaN rows
    (frames that could not be measured) leave out the steps they touch. `period`: the quantity is
    an angle of that period, and changes are taken the short way round."""
    measured = np.asarray(measured, np.float64)
    step = np.diff(measured, axis=0)
    if driver is not None:
        driver = np.asarray(driver, np.float64)
        if driver.shape != measured.shape:
            raise ValueError(f"jitter: measured {measured.shape} and driver {driver.shape} differ in shape")
        step = step - np.diff(driver, axis=0)
    if period is not None:
        step = (step + period / 2) % period - period / 2
    return float(np.nanmean(np.abs(step))) if np.isfinite(step).any() else float("nan")
