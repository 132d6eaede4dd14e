"""Read the factors of `latentjax.shapes.world` back from an image, and say whether it is a clean render.

The read-out is analytic (no trained weights): background grey from the border, object pixels by
colour distance, coverage by projection onto (colour - grey), then moments of the coverage give
position, area, shape (3- and 4-fold symmetry moments) and rotation. `rerender_error` renders the
estimate and compares it with the image per object pixel; `is_valid` also requires one object.
The steps and thresholds are described in docs/shapes.md.
"""

from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.metrics.scorer import Scorer
from latentjax.shapes import world

VALID_TOL = 0.01         # rerender error below which an image counts as a clean render
NOISE_FLOOR = 0.05       # per-value differences ([-1, 1] units, ~6/255) that rerender_error ignores
SHAPE_THRESHOLD = 0.35   # normalised symmetry moment below which a shape is read as a circle
MIN_CONTRAST = 0.1       # smallest colour distance ([0, 1] RGB) from the grey counted as object
_EPS = 1e-6

# Ideal moments, from integrating z^k over the shape: |c_4| = s^6 / 60 for a square of side s
# (area s^2), |c_3| = 3 sqrt(3) R^5 / 40 for an equilateral triangle of circumradius R
# (area 3 sqrt(3) R^2 / 4).
_TRIANGLE_AREA = 3 * math.sqrt(3) / 4
SQUARE_C4 = 1 / 60
TRIANGLE_C3 = 0.1 / _TRIANGLE_AREA ** 1.5
SHAPE_AREA = (math.pi, 2.0, _TRIANGLE_AREA)  # area / circumradius^2 per shape
# arg(c_k) at rotation 0: k times the angle of a vertex (square 45 deg, triangle 90 deg).
_SQUARE_PHASE, _TRIANGLE_PHASE = math.pi, 1.5 * math.pi


def readout(images: jax.Array, tol: float = VALID_TOL) -> dict[str, jax.Array]:
    """Factor estimates of images [n, H, W, 3] in [-1, 1] (H == W).

    Returns every name in `world.FACTOR_NAMES` ([n], shape int32) and `num_objects` (int32),
    `rerender_error` (float32) and `valid` (bool: one object and rerender_error < tol).
    """
    return _readout(_check_images(images), tol)


def readout_scorer(tol: float = VALID_TOL) -> Scorer:
    """The read-out as a `Scorer`: x, y, scale, rotation, hue, background in [0, 1), and one 0/1
    column per shape ('circle', 'square', 'triangle'); NaN rows for images that are not clean
    renders at `tol`. Rotation and hue are periodic (0 and 1 are the same image): a method that
    ranks by them ranks by the angle from 0. Not differentiable (thresholds and an argmax)."""
    continuous = tuple(n for n in world.FACTOR_NAMES if n != "shape")

    def apply(_, images):
        out = readout(images, tol)
        columns = [out[n].astype(jnp.float32) for n in continuous]
        columns += [(out["shape"] == k).astype(jnp.float32) for k in range(len(world.SHAPES))]
        scores = jnp.stack(columns, axis=-1)
        return jnp.where(out["valid"][:, None], scores, jnp.nan)

    return Scorer(apply, continuous + world.SHAPES)


def rerender(images: jax.Array, given: Mapping[str, jax.Array] | None = None) -> world.Render:
    """The render of each image's read-out factors: the clean image `rerender_error` compares it with.
    `given` ({factor name: [n]}) replaces those estimates; a given `shape` class also makes rotation
    and scale be read for that class. Jittable; no gradient flows through the read-out (thresholds and
    an argmax)."""
    images = _check_images(images)
    if given is not None and not isinstance(given, Mapping):
        raise TypeError(f"given must be a mapping {{factor name: [n] values}}, got {type(given).__name__}")
    given = dict(given or {})
    for name, values in given.items():
        if name not in world.FACTOR_NAMES:
            raise ValueError(f"given factor {name!r} is not one of {world.FACTOR_NAMES}")
        if jnp.shape(values) != images.shape[:1]:
            raise ValueError(f"given {name} must be [{images.shape[0]}], got shape {jnp.shape(values)}")
    estimates, _ = _estimate(images, given.get("shape"))
    factors = {name: given.get(name, estimates[name]) for name in world.FACTOR_NAMES}
    return world.render(jax.tree.map(jax.lax.stop_gradient, factors), images.shape[1])


def rerender_error(images: jax.Array) -> jax.Array:
    """[n] difference between each image and the render of its read-out, per object pixel
    (see the module docstring)."""
    return readout(images)["rerender_error"]


def is_valid(images: jax.Array, tol: float = VALID_TOL) -> jax.Array:
    """[n] bool: exactly one object, and re-rendering the read-out reproduces the image within `tol`."""
    return readout(images, tol)["valid"]


def factor_distance(name: str, a, b):
    """The distance between two values of factor `name` (elementwise, broadcasting): shape 0/1 (differs);
    periodic factors the circular distance (at most 0.5); the rest the absolute difference. NumPy in,
    NumPy out (in the inputs' precision); JAX arrays give JAX arrays."""
    xp = jnp if isinstance(a, jax.Array) or isinstance(b, jax.Array) else np
    a, b = xp.asarray(a), xp.asarray(b)
    if name == "shape":
        return (a != b).astype(xp.float32)
    if name in world.PERIODIC_FACTORS:
        d = xp.abs(a - b) % 1.0
        return xp.minimum(d, 1.0 - d)
    return xp.abs(a - b)


def factor_errors(estimates: Mapping[str, jax.Array], truth: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Per-sample `factor_distance` of estimates from the truth; rotation is NaN where the true shape is a circle."""
    errors = {name: factor_distance(name, estimates[name], truth[name]) for name in world.FACTOR_NAMES}
    errors["rotation"] = jnp.where(jnp.asarray(truth["shape"]) == 0, jnp.nan, errors["rotation"])
    return errors


def summarize_errors(errors: Mapping[str, jax.Array]) -> dict[str, float]:
    """Shape accuracy and the mean (NaN-skipping) error of every other factor."""
    out = {"shape_accuracy": 1.0 - float(jnp.mean(errors["shape"]))}
    out.update({f"{name}_mae": float(jnp.nanmean(errors[name])) for name in world.FACTOR_NAMES[1:]})
    return out


def rgb_to_hue(rgb: jax.Array) -> jax.Array:
    """HSV hue in [0, 1) of [..., 3] RGB colours (0 for greys); inverts `world.hsv_to_rgb`."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    top, bottom = jnp.max(rgb, axis=-1), jnp.min(rgb, axis=-1)
    spread = jnp.maximum(top - bottom, _EPS)
    sector = jnp.where(top == r, (g - b) / spread, jnp.where(top == g, (b - r) / spread + 2.0, (r - g) / spread + 4.0))
    return (sector / 6.0) % 1.0


def count_objects(mask: jax.Array) -> jax.Array:
    """[n] number of 8-connected components of boolean masks [n, H, W].

    Every mask pixel starts with its flat index as label and repeatedly takes the smallest label
    in its 3x3 neighbourhood until nothing changes (as many rounds as the longest path inside a
    component); each component ends up labelled by its first pixel.
    """
    n, h, w = mask.shape
    index = jnp.arange(h * w, dtype=jnp.int32).reshape(1, h, w)
    background = h * w

    def body(state):
        labels, _ = state
        smallest = jax.lax.reduce_window(labels, background, jax.lax.min, (1, 3, 3), (1, 1, 1), "SAME")
        new = jnp.where(mask, smallest, background)
        return new, jnp.any(new != labels)

    start = jnp.where(mask, index, background)
    labels, _ = jax.lax.while_loop(lambda state: state[1], body, (start, jnp.asarray(True)))
    return jnp.sum(mask & (labels == index), axis=(1, 2)).astype(jnp.int32)


def erode(mask: jax.Array) -> jax.Array:
    """Pixels of boolean masks [n, H, W] whose whole 3x3 neighbourhood is in the mask."""
    return jax.lax.reduce_window(mask, True, jax.lax.bitwise_and, (1, 3, 3), (1, 1, 1), "SAME")


def dilate(mask: jax.Array) -> jax.Array:
    """Pixels of boolean masks [n, H, W] with any mask pixel in their 3x3 neighbourhood."""
    return ~erode(~mask)


def _check_images(images) -> jax.Array:
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square RGB [n, H, W, 3] with H == W, got shape {images.shape}")
    if images.shape[1] < world.MIN_RESOLUTION:
        raise ValueError(f"images must be at least {world.MIN_RESOLUTION} pixels wide, got {images.shape[1]}")
    return images.astype(jnp.float32)


def _estimate(images: jax.Array, shape=None) -> tuple[dict[str, jax.Array], jax.Array]:
    """Factor estimates and num_objects, and the object-pixel masks [n, H, W]. `shape` [n] int, if
    given, replaces the shape estimate: rotation and scale are then read for that class."""
    res = images.shape[1]
    rgb = jnp.clip((images + 1.0) / 2.0, 0.0, 1.0)
    border = jnp.concatenate([rgb[:, 0], rgb[:, -1], rgb[:, 1:-1, 0], rgb[:, 1:-1, -1]], axis=1)
    grey = jnp.mean(jnp.median(border, axis=1), axis=-1)                      # [n]
    diff = rgb - grey[:, None, None, None]
    dist = jnp.linalg.norm(diff, axis=-1)                                      # [n, H, W]
    farthest = jnp.max(dist, axis=(1, 2), keepdims=True)
    objects = dist > jnp.maximum(0.5 * farthest, MIN_CONTRAST)
    interior = erode(objects)
    interior = jnp.where(jnp.any(interior, axis=(1, 2), keepdims=True), interior, objects)
    colour = jnp.sum(rgb * interior[..., None], axis=(1, 2)) / jnp.maximum(jnp.sum(interior, axis=(1, 2)), 1)[:, None]
    axis = colour - grey[:, None]                                              # [n, 3]
    contrast2 = jnp.maximum(jnp.sum(axis * axis, axis=-1), _EPS)[:, None, None]
    # coverage only next to object pixels, so that background noise adds no area
    alpha = jnp.clip(jnp.einsum("nhwc,nc->nhw", diff, axis) / contrast2, 0, 1) * dilate(objects)

    coords = jnp.arange(res, dtype=jnp.float32) + 0.5
    area = jnp.maximum(jnp.sum(alpha, axis=(1, 2)), _EPS)
    cx = jnp.sum(alpha * coords[None, None, :], axis=(1, 2)) / area
    cy = jnp.sum(alpha * coords[None, :, None], axis=(1, 2)) / area
    z = (coords[None, None, :] - cx[:, None, None]) - 1j * (coords[None, :, None] - cy[:, None, None])
    c3 = jnp.sum(alpha * z ** 3, axis=(1, 2))
    c4 = jnp.sum(alpha * z ** 4, axis=(1, 2))
    triangle_score = jnp.abs(c3) / area ** 2.5 / TRIANGLE_C3
    square_score = jnp.abs(c4) / area ** 3 / SQUARE_C4
    if shape is None:
        shape = jnp.argmax(jnp.stack([jnp.full_like(area, SHAPE_THRESHOLD), square_score, triangle_score]), axis=0)
    shape = jnp.asarray(shape).astype(jnp.int32)

    turns = jnp.select([shape == 1, shape == 2], [jnp.angle(c4) - _SQUARE_PHASE, jnp.angle(c3) - _TRIANGLE_PHASE], 0.0)
    rotation = (turns / (2 * jnp.pi)) % 1.0
    radius = jnp.sqrt(area / jnp.asarray(SHAPE_AREA, jnp.float32)[shape]) / res
    unit = lambda v, lo, hi: jnp.clip((v - lo) / (hi - lo), 0.0, 1.0)  # noqa: E731
    estimates = {
        "shape": shape,
        "x": unit(cx / res, *world.CENTER_RANGE),
        "y": unit(cy / res, *world.CENTER_RANGE),
        "scale": unit(radius, *world.RADIUS_RANGE),
        "rotation": rotation.astype(jnp.float32),
        "hue": rgb_to_hue(colour),
        "background": unit(grey, *world.GREY_RANGE),
        "num_objects": count_objects(objects),
    }
    return estimates, objects


def render_error(images: jax.Array, factors: Mapping[str, jax.Array]) -> jax.Array:
    """[n] the difference `rerender_error` measures, between images and the renders of any `factors`
    (e.g. factors fitted to the images by gradient, to ask whether an image is off or only its
    read-out is). Differentiable in the continuous factors. Jittable."""
    images = _check_images(images)
    return _render_error(images, world.render(factors, images.shape[1]), _estimate(images)[1])


def _render_error(images: jax.Array, rendered: world.Render, objects: jax.Array) -> jax.Array:
    region = dilate(objects | (rendered.object_mask > 0))
    total = jnp.sum(jnp.maximum(jnp.abs(rendered.images - images) - NOISE_FLOOR, 0), axis=(1, 2, 3))
    return total / (3 * jnp.maximum(jnp.sum(region, axis=(1, 2)), 1))


@jax.jit
def _readout(images: jax.Array, tol) -> dict[str, jax.Array]:
    out, objects = _estimate(images)
    rerendered = world.render({name: out[name] for name in world.FACTOR_NAMES}, images.shape[1])
    out["rerender_error"] = _render_error(images, rerendered, objects)
    out["valid"] = (out["num_objects"] == 1) & (out["rerender_error"] < tol)
    return out

