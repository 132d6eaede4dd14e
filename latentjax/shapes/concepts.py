"""Exact concept masks of the shapes world, for unit dissection (`latentjax.metrics.dissection`).

From the factors of a batch, per pixel: the object (anti-aliased coverage above one half) and the
background; the object of each shape class; the object of each hue bin (`hue_bins` equal bins of
the hue circle); the object's edge band (object pixels next to background, and background pixels
next to the object: a 3x3 dilation minus a 3x3 erosion). Image-level labels cover the whole
image, as Network Dissection counts scene labels: each shape class, each hue bin, and the object
centre's column and row in `position_bins` equal bins of the centre range. For generated images
the factors come from reading the images back (`latentjax.shapes.readout`) and rendering them
again; only valid samples have masks.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.shapes.reading import dilate, erode
from latentjax.shapes.world import SHAPES, check_factors, render


def concept_names(hue_bins: int = 6, position_bins: int = 3) -> tuple[str, ...]:
    """The concepts `concept_masks` returns, in its channel order."""
    pixel = (["object", "background", "edge"] + [f"object:{s}" for s in SHAPES]
             + [f"object:hue{b}" for b in range(hue_bins)])
    image = ([f"image:{s}" for s in SHAPES] + [f"image:hue{b}" for b in range(hue_bins)]
             + [f"image:x{b}" for b in range(position_bins)] + [f"image:y{b}" for b in range(position_bins)])
    return tuple(pixel + image)


def _bins(values, count: int):
    return jnp.clip(jnp.floor(values * count).astype(jnp.int32), 0, count - 1)


def concept_masks(factors: Mapping[str, jax.Array], resolution: int, *, hue_bins: int = 6,
                  position_bins: int = 3) -> jax.Array:
    """Boolean masks [n, resolution, resolution, C] of the concepts `concept_names` lists."""
    for name, value in (("hue_bins", hue_bins), ("position_bins", position_bins)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    factors = check_factors(factors)
    drawn = render(factors, resolution)
    obj = drawn.object_mask > 0.5
    n = obj.shape[0]
    edge = dilate(obj) & ~erode(obj)
    shape = jax.nn.one_hot(factors["shape"], len(SHAPES), dtype=jnp.bool_)            # [n, S]
    hue = jax.nn.one_hot(_bins(factors["hue"], hue_bins), hue_bins, dtype=jnp.bool_)  # [n, B]
    x = jax.nn.one_hot(_bins(factors["x"], position_bins), position_bins, dtype=jnp.bool_)
    y = jax.nn.one_hot(_bins(factors["y"], position_bins), position_bins, dtype=jnp.bool_)
    labels = jnp.concatenate([shape, hue], axis=1)
    pixel = jnp.concatenate([obj[..., None], ~obj[..., None], edge[..., None],
                             obj[..., None] & labels[:, None, None, :]], axis=-1)
    image = jnp.broadcast_to(jnp.concatenate([shape, hue, x, y], axis=1)[:, None, None, :],
                             (n, resolution, resolution, labels.shape[1] + 2 * position_bins))
    return jnp.concatenate([pixel, image], axis=-1)
