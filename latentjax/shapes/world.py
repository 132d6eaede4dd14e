"""A procedural world of single coloured shapes whose factors of variation are known exactly.

Each image is one anti-aliased circle, square or triangle on a flat grey background, drawn by a
jittable renderer from its factors: shape, x, y, scale, rotation, hue, background (a dict of [n]
arrays; `shape` int32, the rest float32 in [0, 1)). Because the factors are known, directions
found in a generator trained on it can be scored against the truth. The factor conventions and
the anti-aliasing are in docs/shapes.md.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Iterator, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SHAPES = ("circle", "square", "triangle")
FACTOR_NAMES = ("shape", "x", "y", "scale", "rotation", "hue", "background")
PERIODIC_FACTORS = ("rotation", "hue")  # factors on a circle: 0 and 1 are the same image

CENTER_RANGE = (0.30, 0.70)   # shape centre, fraction of the image side
RADIUS_RANGE = (0.13, 0.25)   # circumradius, fraction of the image side
GREY_RANGE = (0.15, 0.85)     # background grey level in [0, 1] pixel units
SATURATION = 0.8              # fixed so that hue alone sets the object colour, and every
VALUE = 0.9                   # object colour is at least 0.5 (in [0, 1] RGB) away from any grey
SYMMETRY_ORDER = (0, 4, 3)    # rotational symmetry of each shape (0: continuous, the circle)
MIN_RESOLUTION = 8


class Render(NamedTuple):
    """A rendered batch: images in [-1, 1] and soft coverage masks that sum to 1 per pixel."""

    images: jax.Array           # [n, H, W, 3] float32
    object_mask: jax.Array      # [n, H, W] float32, anti-aliased coverage of the shape
    background_mask: jax.Array  # [n, H, W] float32, 1 - object_mask


def sample_factors(key: jax.Array, n: int, ranges: Mapping[str, tuple[float, float]] | None = None
                   ) -> dict[str, jax.Array]:
    """`n` independent factor vectors: uniform shape index, every other factor uniform on [0, 1),
    or on [lo, hi) for the factors in `ranges` (e.g. {'scale': (0.0, 0.6)}: a world with a factor
    range held out, for tests of generalisation to it). The same key gives the same draw with or
    without ranges, moved into them."""
    n = _check_count(n, "n")
    bounds = check_ranges(ranges)
    shape_key, value_key = jax.random.split(key)
    values = jax.random.uniform(value_key, (len(FACTOR_NAMES) - 1, n), jnp.float32)
    out = {"shape": jax.random.randint(shape_key, (n,), 0, len(SHAPES), dtype=jnp.int32)}
    for name, value in zip(FACTOR_NAMES[1:], values):
        lo, hi = bounds.get(name, (0.0, 1.0))
        out[name] = lo + (hi - lo) * value
    return out


def check_ranges(ranges: Mapping[str, tuple[float, float]] | None) -> dict[str, tuple[float, float]]:
    """Factor ranges {name: (lo, hi)} with 0 <= lo < hi <= 1 for factors other than 'shape', or a
    ValueError naming the bad entry."""
    if ranges is None:
        return {}
    if not isinstance(ranges, Mapping):
        raise ValueError(f"ranges must be a dict {{factor: (lo, hi)}}, got {type(ranges).__name__}")
    out = {}
    for name, bounds in ranges.items():
        if name not in FACTOR_NAMES[1:]:
            raise ValueError(f"ranges: {name!r} is not a continuous factor; expected names from {FACTOR_NAMES[1:]}")
        try:
            lo, hi = (float(b) for b in bounds)
        except (TypeError, ValueError):
            raise ValueError(f"ranges[{name!r}] must be a pair (lo, hi), got {bounds!r}") from None
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"ranges[{name!r}] must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
        out[name] = (lo, hi)
    return out


def render(factors: Mapping[str, jax.Array], resolution: int) -> Render:
    """Draw each factor vector as a `resolution` x `resolution` image; see the module docstring.

    Factor names, shapes and dtypes are always checked; values (ranges, shape index) only when
    they are concrete, i.e. not under `jit`.
    """
    resolution = _check_resolution(resolution)
    return _render(check_factors(factors), resolution)


def sample(key: jax.Array, n: int, resolution: int) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`n` random images [n, H, W, 3] in [-1, 1] and the factors they were drawn from."""
    return _sample(key, _check_count(n, "n"), _check_resolution(resolution))


def stream(key: jax.Array, batch_size: int, resolution: int) -> Iterator[tuple[jax.Array, dict[str, jax.Array]]]:
    """Endless batches from `sample`, batch i drawn with `jax.random.fold_in(key, i)`."""
    batch_size, resolution = _check_count(batch_size, "batch_size"), _check_resolution(resolution)
    return (_sample(jax.random.fold_in(key, step), batch_size, resolution) for step in itertools.count())


def check_factors(factors: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The factors as arrays of the documented dtypes, or a ValueError naming the bad factor."""
    if not isinstance(factors, Mapping):
        raise ValueError(f"factors must be a dict of {FACTOR_NAMES}, got {type(factors).__name__}")
    missing = [name for name in FACTOR_NAMES if name not in factors]
    unknown = sorted(set(factors) - set(FACTOR_NAMES))
    if missing or unknown:
        raise ValueError(f"factors must have exactly the keys {FACTOR_NAMES}; missing {missing}, unknown {unknown}")
    out, n = {}, None
    for name in FACTOR_NAMES:
        value = factors[name]
        if not isinstance(value, jax.core.Tracer):
            value = np.asarray(value)
        if value.ndim != 1:
            raise ValueError(f"factor {name!r} must be a 1-D array [n], got shape {tuple(value.shape)}")
        if n is None:
            n = value.shape[0]
        elif value.shape[0] != n:
            raise ValueError(f"factor {name!r} has {value.shape[0]} values but 'shape' has {n}")
        integer = jnp.issubdtype(value.dtype, jnp.integer)
        if name == "shape" and not integer:
            raise ValueError(f"factor 'shape' must be an integer index into {SHAPES}, got dtype {value.dtype}")
        if name != "shape" and not (integer or jnp.issubdtype(value.dtype, jnp.floating)):
            raise ValueError(f"factor {name!r} must be real numbers, got dtype {value.dtype}")
        if not isinstance(value, jax.core.Tracer):
            _check_values(name, value)
        out[name] = jnp.asarray(value, jnp.int32 if name == "shape" else jnp.float32)
    return out


def _check_values(name: str, value: np.ndarray) -> None:
    if name == "shape":
        bad = (value < 0) | (value >= len(SHAPES))
        expected = f"an index in 0..{len(SHAPES) - 1} {SHAPES}"
    else:
        bad = ~np.isfinite(value) | (value < 0) | (value > 1)
        expected = "in [0, 1]"
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"factor {name!r} must be {expected}; value {value[i]} at index {i} "
                         f"({int(bad.sum())} bad values)")


def _check_count(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{what} must be a non-negative int, got {n!r}")
    return int(n)


def _check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < MIN_RESOLUTION:
        raise ValueError(f"resolution must be an int >= {MIN_RESOLUTION}, got {resolution!r}")
    return int(resolution)


def hsv_to_rgb(hue: jax.Array, saturation: float = SATURATION, value: float = VALUE) -> jax.Array:
    """[..., 3] RGB in [0, 1] of HSV colours (hue in [0, 1), periodic)."""
    k = (jnp.asarray([5.0, 3.0, 1.0]) + 6.0 * hue[..., None]) % 6.0
    return value - value * saturation * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def grey_level(background: jax.Array) -> jax.Array:
    """Background factor in [0, 1] -> grey level in [0, 1] pixel units."""
    return GREY_RANGE[0] + (GREY_RANGE[1] - GREY_RANGE[0]) * background


def centre_pixels(position: jax.Array, resolution: int) -> jax.Array:
    """x or y factor in [0, 1] -> centre coordinate in pixels (pixel i spans [i, i + 1))."""
    return resolution * (CENTER_RANGE[0] + (CENTER_RANGE[1] - CENTER_RANGE[0]) * position)


def radius_pixels(scale: jax.Array, resolution: int) -> jax.Array:
    """scale factor in [0, 1] -> circumradius in pixels."""
    return resolution * (RADIUS_RANGE[0] + (RADIUS_RANGE[1] - RADIUS_RANGE[0]) * scale)


def _polygon_sdf(px: jax.Array, py: jax.Array, order: int, radius: jax.Array) -> jax.Array:
    """Exact signed distance to the regular `order`-gon of circumradius `radius` centred at 0
    (y up), in canonical pose: square axis-aligned (first vertex at 45 deg), triangle vertex up.

    Inside, it is the largest signed distance to the edge lines (all negative); outside, the
    distance to the nearest edge segment. Both are exact for convex polygons.
    """
    first = math.pi / 4 if order == 4 else math.pi / 2
    angles = first + 2 * math.pi * np.arange(order) / order
    vx, vy = np.cos(angles), np.sin(angles)  # unit-circumradius vertices, counter-clockwise
    inside, outside = -jnp.inf, jnp.inf
    for i in range(order):
        ax, ay = radius * vx[i], radius * vy[i]
        ex, ey = radius * (vx[(i + 1) % order] - vx[i]), radius * (vy[(i + 1) % order] - vy[i])
        length = jnp.sqrt(ex * ex + ey * ey)
        inside = jnp.maximum(inside, ((px - ax) * ey - (py - ay) * ex) / length)  # outward normal (ey, -ex)
        t = jnp.clip(((px - ax) * ex + (py - ay) * ey) / (length * length), 0.0, 1.0)
        outside = jnp.minimum(outside, jnp.hypot(px - ax - t * ex, py - ay - t * ey))
    return jnp.where(inside > 0, outside, inside)


@functools.partial(jax.jit, static_argnums=1)
def _render(factors: dict[str, jax.Array], resolution: int) -> Render:
    coords = jnp.arange(resolution, dtype=jnp.float32) + 0.5  # pixel centres
    col = lambda v: v[:, None, None]  # noqa: E731  [n] -> [n, 1, 1] to broadcast over pixels
    dx = coords[None, None, :] - col(centre_pixels(factors["x"], resolution))
    dy = col(centre_pixels(factors["y"], resolution)) - coords[None, :, None]  # y up
    shape, radius = col(factors["shape"]), col(radius_pixels(factors["scale"], resolution))
    period = 2 * jnp.pi / jnp.asarray(SYMMETRY_ORDER[1:], jnp.float32)[jnp.maximum(shape - 1, 0)]
    angle = factors["rotation"][:, None, None] * period
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    px, py = cos * dx + sin * dy, cos * dy - sin * dx  # rotate the sample point by -angle
    sdf = jnp.select([shape == 0, shape == 1],
                     [jnp.hypot(dx, dy) - radius, _polygon_sdf(px, py, 4, radius)],
                     _polygon_sdf(px, py, 3, radius))
    coverage = jnp.clip(0.5 - sdf, 0.0, 1.0)
    colour = hsv_to_rgb(factors["hue"])[:, None, None, :]
    grey = grey_level(factors["background"])[:, None, None, None]
    rgb = coverage[..., None] * colour + (1.0 - coverage[..., None]) * grey
    return Render(2.0 * rgb - 1.0, coverage, 1.0 - coverage)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _sample(key: jax.Array, n: int, resolution: int) -> tuple[jax.Array, dict[str, jax.Array]]:
    factors = sample_factors(key, n)
    return _render(factors, resolution).images, factors
