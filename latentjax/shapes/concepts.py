"""Exact concept masks of the shapes world, for unit dissection (`latentjax.metrics.dissection`).

From the factors of a batch, per pixel: the object (anti-aliased coverage above one half) and the
background; the object of each shape class; the object of each hue bin (`hue_bins` equal bins of
the hue circle); the object's edge band (object pixels next to background, and background pixels
next to the object: a 3x3 dilation minus a 3x3 erosion). Image-level labels cover the whole
image, as Network Dissection counts scene labels: each shape class, each hue bin, and the object
centre's column and row in `position_bins` equal bins of the centre range. For generated images
(`generator_probe`) the factors come from reading the images back (`latentjax.shapes.readout`) and
rendering them again; only valid samples count.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from latentjax.sharding import data_sharding
from latentjax.shapes.reading import dilate, erode, readout
from latentjax.shapes.world import FACTOR_NAMES, SHAPES, check_factors, check_ranges, render, sample_factors


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


def _as_factors(read: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Read-out factors as renderable ones: the shape index clipped to the classes, the rest to [0, 1)."""
    out = {"shape": jnp.clip(read["shape"], 0, len(SHAPES) - 1).astype(jnp.int32)}
    for name in FACTOR_NAMES[1:]:
        out[name] = jnp.clip(read[name], 0.0, 1.0 - 1e-6).astype(jnp.float32)
    return out


def _replayable(batch, params, key, num_samples: int, batch_size: int) -> Callable[[], Iterator]:
    """A probe: each call iterates `batch(params, fold_in(key, i))` over the batches covering `num_samples`."""
    num_batches = -(-num_samples // batch_size)
    return lambda: (batch(params, jax.random.fold_in(key, i)) for i in range(num_batches))


def generator_probe(space, params, layer: str, key, *, num_samples: int, batch_size: int, valid_tol: float,
                    hue_bins: int = 6, position_bins: int = 3, rotation=None,
                    mesh: Mesh | None = None) -> Callable[[], Iterator[tuple[jax.Array, jax.Array, jax.Array]]]:
    """A probe for `latentjax.metrics.dissection.dissect` on a shapes generator: batches of
    (activations of `layer` [n, h, w, U], concept masks of the images' read-out rendered again
    [n, H, W, C], valid [n]: the samples whose read-out re-renders them within `valid_tol`), batch i
    drawn from `fold_in(key, i)`, the same on every call. `rotation` [U, U] (orthogonal) rotates
    the layer's basis, for Network Dissection's axis-alignment test. Each batch is computed split over
    `mesh`'s "data" axis (default: every device); `batch_size` is rounded up to a multiple of it."""
    resolution = space.generator.img_resolution
    batch_size, sharding = data_sharding(batch_size, mesh)

    @functools.partial(jax.jit, out_shardings=sharding)
    def batch(params, k):
        features = space.features(params, space.sample(k, batch_size, params), [layer, "img"])
        read = readout(features["img"], valid_tol)
        masks = concept_masks(_as_factors(read), resolution, hue_bins=hue_bins, position_bins=position_bins)
        activations = features[layer] if rotation is None else features[layer] @ rotation
        return activations, masks, read["valid"]

    return _replayable(batch, params, key, num_samples, batch_size)


def world_probe(features, params, layer: str, key, *, resolution: int, num_samples: int, batch_size: int,
                hue_bins: int = 6, position_bins: int = 3, rotation=None, ranges=None,
                mesh: Mesh | None = None) -> Callable[[], Iterator[tuple[jax.Array, jax.Array]]]:
    """A probe for `latentjax.metrics.dissection.dissect` on a network that looks at the world:
    batches of (activations of `layer` [n, h, w, U] under `features(params, images, [layer])`,
    exact concept masks [n, resolution, resolution, C]) of true renders (factors in `ranges`),
    batch i drawn from `fold_in(key, i)`, the same on every call; `rotation` and `mesh` as `generator_probe`."""
    check_ranges(ranges)
    batch_size, sharding = data_sharding(batch_size, mesh)

    @functools.partial(jax.jit, out_shardings=sharding)
    def batch(params, k):
        factors = sample_factors(k, batch_size, ranges)
        activations = features(params, render(factors, resolution).images, [layer])[layer]
        masks = concept_masks(factors, resolution, hue_bins=hue_bins, position_bins=position_bins)
        return (activations if rotation is None else activations @ rotation), masks

    return _replayable(batch, params, key, num_samples, batch_size)
