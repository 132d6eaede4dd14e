"""A fixed, random, non-linear map from a Gaussian latent to the world's factors that keeps their prior exactly.

It seeds a generator's latent organisation for the supervised warm start (`latentjax.tasks.distill`):
the generator first learns `render(decode(z))`, then is fine-tuned adversarially.

How it keeps the prior: u = Q^T z for an orthonormal Q [z_dim, 7] is standard normal in 7 dims
for z ~ N(0, I). A mixing round picks one coordinate u_k and rotates the other six, in three pairs,
by angles that are smooth functions of u_k; given u_k the six are an isotropic Gaussian, so the
rotations leave the joint law N(0, I_7) unchanged, while the factors become non-linear functions
of z. Rounds take different u_k, so from two rounds on every factor is mixed (no linear direction
of z moves one factor alone). Each coordinate then goes through the normal CDF: the continuous
factors are exactly U(0, 1), and `shape` is the third of the range u_0 falls in (each class 1/3).
Everything is drawn from one seed, so a config stores only the seed.

The normal CDF lays the periodic factors (hue, rotation: 0 and 1 are the same image) on a line,
their two ends in opposite tails of the latent space, so that no continuous path joins red to red
(`quality.wrap_paths` measures it on a generator). `periodic="circle"` reads each periodic factor
instead as the angle of its coordinate and one more, unmixed, of its own: the angle of an isotropic
Gaussian pair is exactly U(0, 1) turns, and the ends meet.

`stretch` ({factor: K}) scales a continuous factor's coordinate by K before the CDF, so that the
decoder asks for that factor's ends more often than the prior (K > 1). A generator that regresses
renders draws a factor it cannot place exactly narrower than asked (regression to the mean);
asking wider is how a warm start counters that, to draw closer to the prior's law (measured in the README).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from latentjax.config import check_number
from latentjax.shapes import reading, world

NUM_FACTORS = len(world.FACTOR_NAMES)
MAX_ANGLE = math.pi / 4  # the largest rotation of a mixing round: factors far from linear in z, yet smooth


PERIODIC = ("line", "circle")  # how the periodic factors are laid out in the latent space


class FactorDecoder(NamedTuple):
    """Arrays of one decoder; `decode_factors(decoder, z)` applies it."""

    # [z_dim, 7] orthonormal columns, one per factor in `world.FACTOR_NAMES`, then (periodic="circle")
    # one per factor of `world.PERIODIC_FACTORS`, the second coordinate of its angle
    projection: np.ndarray
    conditioners: np.ndarray  # [rounds] int: the coordinate u_k that sets a round's angles
    pairs: np.ndarray        # [rounds, 3, 2] int: the pairs (u_i, u_j) a round rotates
    frequencies: np.ndarray  # [rounds, 3] of each angle's sine in u_k
    phases: np.ndarray       # [rounds, 3]
    stretch: np.ndarray      # [7] each factor coordinate's scale before the normal CDF (1: the prior's law)


def factor_decoder(seed: int, z_dim: int, rounds: int = 2, periodic: str = "line",
                   stretch: Mapping[str, float] | None = None) -> FactorDecoder:
    """The decoder drawn from `seed` for latents of `z_dim` dimensions (>= 7; 9 for `periodic="circle"`),
    with `rounds` mixing rounds and the continuous factors' coordinates scaled by `stretch` ({name: K > 0},
    1 where absent). The same seed gives the same mixing whatever `periodic` and `stretch`."""
    if periodic not in PERIODIC:
        raise ValueError(f"periodic must be one of {PERIODIC}, got {periodic!r}")
    scales = _stretch_scales(stretch, periodic)
    columns = NUM_FACTORS + (len(world.PERIODIC_FACTORS) if periodic == "circle" else 0)
    if isinstance(z_dim, bool) or not isinstance(z_dim, (int, np.integer)) or z_dim < columns:
        raise ValueError(f"z_dim must be an int >= {columns} (one dimension per factor"
                         f"{', two per periodic one' if periodic == 'circle' else ''}), got {z_dim!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError(f"rounds must be a non-negative int, got {rounds!r}")
    rng = np.random.default_rng(seed)
    projection = np.linalg.qr(rng.standard_normal((z_dim, z_dim)))[0][:, :columns]
    conditioners = np.resize(rng.permutation(NUM_FACTORS), rounds)
    pairs = np.array([rng.permutation([i for i in range(NUM_FACTORS) if i != k]) for k in conditioners])
    return FactorDecoder(projection.astype(np.float32), conditioners.astype(np.int32),
                         pairs.reshape(rounds, 3, 2).astype(np.int32),
                         rng.uniform(0.5, 1.5, (rounds, 3)).astype(np.float32),
                         rng.uniform(0.0, 2 * math.pi, (rounds, 3)).astype(np.float32), scales)


def _stretch_scales(stretch: Mapping[str, float] | None, periodic: str) -> np.ndarray:
    """[7] coordinate scales from `stretch`, checked: continuous factors only (shape's thirds and a
    periodic factor's angle under `periodic="circle"` do not stretch), each a finite K > 0."""
    if stretch is not None and not isinstance(stretch, Mapping):
        raise TypeError(f"stretch must be a mapping {{factor name: K}}, got {type(stretch).__name__}")
    fixed = ("shape", *(world.PERIODIC_FACTORS if periodic == "circle" else ()))
    scales = np.ones(NUM_FACTORS, np.float32)
    for name, value in dict(stretch or {}).items():
        if name not in world.FACTOR_NAMES:
            raise ValueError(f"stretch names {name!r}, not a factor of {world.FACTOR_NAMES}")
        check_number(f"stretch[{name!r}]", value, positive=True)
        if name in fixed and value != 1:
            stretchable = [n for n in world.FACTOR_NAMES if n not in fixed]
            raise ValueError(f"stretch[{name!r}] = {value}: with periodic={periodic!r} only {stretchable} stretch")
        scales[world.FACTOR_NAMES.index(name)] = value
    return scales


def decoder_from(spec, z_dim: int) -> FactorDecoder:
    """The decoder a config's or a generator's metadata names: `spec` is {"seed": int, "rounds": int}
    and optionally "periodic" ("line" where absent, the layout of the decoders made before it) and
    "stretch" ({factor: K}; none where absent)."""
    stretch = spec.get("stretch")
    return factor_decoder(int(spec["seed"]), z_dim, int(spec["rounds"]), str(spec.get("periodic", "line")),
                          None if stretch is None else dict(stretch))


def spec_of(metadata: dict) -> dict | None:
    """The seeding decoder's spec that a generator's metadata names, its own or that of the generator it
    was warm-started from (`init_metadata`, followed back), or None."""
    while metadata:
        if "seeding" in metadata:
            return metadata["seeding"]
        metadata = metadata.get("init_metadata")
    return None


def decode_factors(decoder: FactorDecoder, z: jax.Array) -> dict[str, jax.Array]:
    """The factors ([n] each, `world.sample_factors`'s dtypes, and its law for factors not stretched)
    of latents z [n, z_dim]."""
    u = mixed_coordinates(decoder, z)
    p = [jnp.clip(norm.cdf(k * v), 0.0, 1.0 - 1e-6)  # [0, 1): the renderer's range
         for k, v in zip(decoder.stretch.tolist(), u[:NUM_FACTORS])]
    factors = {"shape": jnp.floor(len(world.SHAPES) * p[0]).astype(jnp.int32)}
    factors.update(zip(world.FACTOR_NAMES[1:], p[1:]))
    for name, partner in zip(world.PERIODIC_FACTORS, u[NUM_FACTORS:]):  # periodic="circle"
        turns = jnp.arctan2(partner, u[world.FACTOR_NAMES.index(name)]) / (2 * jnp.pi)
        factors[name] = jnp.clip(turns % 1.0, 0.0, 1.0 - 1e-6)
    return factors


def shape_margin(decoder: FactorDecoder, z: jax.Array) -> jax.Array:
    """[n] distance of each latent's shape coordinate (standard normal) from the nearest boundary
    between two shape classes: where a continuous generator must switch from one shape to another,
    and where it draws morphs that are no clean render (measured in the README)."""
    shape_coordinate = mixed_coordinates(decoder, z)[0]
    return jnp.min(jnp.abs(shape_coordinate[:, None] - shape_boundaries()), axis=-1)


def shape_boundaries() -> np.ndarray:
    """[len(world.SHAPES) - 1] values of the shape coordinate at which `decode_factors` changes shape
    (constants, so that functions of them work under `jit`)."""
    return np.array([NormalDist().inv_cdf(k / len(world.SHAPES)) for k in range(1, len(world.SHAPES))], np.float32)


def boundary_latents(decoder: FactorDecoder, key: jax.Array, n: int, z_dim: int, oversample: int) -> jax.Array:
    """[n, z_dim] latents concentrated at the shape boundaries: of `n * oversample` draws from the
    prior, the n with the smallest `shape_margin` (their margins are roughly below the prior's
    1 / oversample quantile). Used to give the few latents near a boundary more of a batch."""
    check_oversample(oversample)
    z = jax.random.normal(key, (n * oversample, z_dim))
    _, nearest = jax.lax.top_k(-shape_margin(decoder, z), n)
    return z[nearest]


def check_oversample(oversample, name: str = "oversample") -> None:
    """A ValueError naming `name` unless `oversample` (of `boundary_latents`) is an int >= 1."""
    if isinstance(oversample, bool) or not isinstance(oversample, (int, np.integer)) or oversample < 1:
        raise ValueError(f"{name} must be an int >= 1, got {oversample!r}")


def mixed_coordinates(decoder: FactorDecoder, z: jax.Array) -> list[jax.Array]:
    """The standard-normal coordinates [n] each of latents z: the seven after the mixing rounds, in
    `world.FACTOR_NAMES`' order, then the periodic factors' second coordinates (periodic="circle")."""
    if z.ndim != 2 or z.shape[1] != decoder.projection.shape[0]:
        raise ValueError(f"z must be [n, {decoder.projection.shape[0]}], got shape {tuple(z.shape)}")
    return _mixing_rounds(decoder, list(jnp.moveaxis(z.astype(jnp.float32) @ decoder.projection, -1, 0)))


def _mixing_rounds(decoder: FactorDecoder, u: list[jax.Array], inverse: bool = False) -> list[jax.Array]:
    """The mixing rounds applied to coordinates u, or (`inverse`) undone: each round rotates pairs by
    angles of a coordinate it leaves alone, so the rounds are undone backwards with opposite angles."""
    u = list(u)
    rounds = list(zip(decoder.conditioners.tolist(), decoder.pairs.tolist(), decoder.frequencies, decoder.phases))
    for k, pairs, frequencies, phases in (reversed(rounds) if inverse else rounds):
        for (i, j), frequency, phase in zip(pairs, frequencies, phases):
            angle = MAX_ANGLE * jnp.sin(frequency * u[k] + phase) * (-1.0 if inverse else 1.0)
            cos, sin = jnp.cos(angle), jnp.sin(angle)
            u[i], u[j] = cos * u[i] - sin * u[j], sin * u[i] + cos * u[j]
    return u


def with_coordinates(decoder: FactorDecoder, z: jax.Array, mixed: list[jax.Array]) -> jax.Array:
    """Latents z [n, z_dim] changed only as far as needed for their `mixed_coordinates` to become
    `mixed`: the mixing is undone and the change of the projected coordinates added back along the
    projection, so the part of z the decoder ignores stays as it was."""
    unmixed = jnp.stack(_mixing_rounds(decoder, mixed, inverse=True), axis=-1)
    projection = jnp.asarray(decoder.projection)
    return z + (unmixed - z.astype(jnp.float32) @ projection) @ projection.T


def sharpen_boundaries(decoder: FactorDecoder, z: jax.Array, width: float, band: float) -> jax.Array:
    """Latents z [n, z_dim] moved along the shape coordinate away from the decoder's shape boundaries:
    a `shape_margin` m below `width` becomes m * band / width, and the margins from `width` to the
    largest the middle class has (half the distance between two boundaries) are squeezed linearly
    into what is left above `band`. The shape and every other factor decode as before; only the
    share of latents within `band` of a boundary shrinks from about that of `band` to that of
    `width`. Fed to a generator seeded by this decoder, it asks what that generator's valid share
    would be if it switched shapes `band / width` times faster (measured in the README)."""
    u = mixed_coordinates(decoder, z)
    shape_coordinate = u[0] + jnp.sum(boundary_shifts(u[0], width, band), axis=-1)
    return with_coordinates(decoder, z, [shape_coordinate, *u[1:]])


def boundary_shifts(shape_coordinate: jax.Array, width: float, band: float) -> jax.Array:
    """[n, len(shape_boundaries())] how far `sharpen_boundaries` moves each shape coordinate [n], in the
    column of the boundary it moves it away from (the others are zero)."""
    boundaries, reach = shape_boundaries(), _sharpening_reach(width, band)
    offset = shape_coordinate[:, None] - boundaries
    margin = jnp.abs(offset)
    squeezed = jnp.where(margin < width, margin * (band / width),
                         band + (margin - width) * ((reach - band) / (reach - width)))
    return jnp.where(margin < reach, jnp.sign(offset) * (squeezed - margin), 0.0)


def shift_kinks(width: float, band: float) -> np.ndarray:
    """[len(shape_boundaries()), 5] the shape coordinates at which each boundary's `boundary_shifts` bends:
    it is linear between them and zero outside the outer two."""
    reach = _sharpening_reach(width, band)
    return shape_boundaries()[:, None] + np.array([-reach, -width, 0.0, width, reach], np.float32)


def _sharpening_reach(width: float, band: float) -> float:
    """Half the distance between two shape boundaries (the middle class's largest margin), after
    checking that 0 < width < band < it."""
    boundaries = shape_boundaries()
    reach = float(boundaries[1] - boundaries[0]) / 2
    if not 0.0 < float(width) < float(band) < reach:
        raise ValueError(f"need 0 < width < band < {reach:.4f} (half the distance between two shape boundaries), "
                         f"got width={width!r}, band={band!r}")
    return reach


def render_targets(decoder: FactorDecoder, z: jax.Array, resolution: int, object_weight: float
                   ) -> tuple[jax.Array, jax.Array]:
    """What a warm-started generator should draw for latents z: the renders [n, H, W, 3] of their
    decoded factors, and per-pixel loss weights [n, H, W], `1 + object_weight` on the object and the
    pixels next to it and 1 elsewhere, normalised to mean 1 (most pixels are background, and a blurred
    object costs little in a plain mean)."""
    target = world.render(decode_factors(decoder, z), resolution)
    return target.images, object_weights(target.object_mask, object_weight)


def projection_targets(images: jax.Array, object_weight: float, given: Mapping[str, jax.Array] | None = None
                       ) -> tuple[jax.Array, jax.Array]:
    """The re-renders of images' own read-out (`reading.rerender`, no gradient) and `render_targets`'
    weights for them: a target every image can reach, which pulls a blurred drawing towards the clean
    render nearest it (what the read-out's validity test measures) rather than towards a decoder's
    factors the generator only approximates. `given` factors ({name: [n]}) are taken as they are
    instead of read. Pass at least the intended `shape` and `scale`: read from a blurred image, a
    square or triangle reads as a circle and every object a little smaller than it is, and a
    generator trained on its own read-out drifts to small circles (measured in the README)."""
    target = reading.rerender(jax.lax.stop_gradient(jnp.clip(images, -1.0, 1.0)), given)
    return target.images, object_weights(target.object_mask, object_weight)


def object_weights(object_mask: jax.Array, object_weight: float) -> jax.Array:
    """Per-pixel loss weights [n, H, W]: `1 + object_weight` on the object and the pixels next to it,
    1 elsewhere, normalised to mean 1."""
    near_object = jax.lax.reduce_window(object_mask, 0.0, jax.lax.max, (1, 3, 3), (1, 1, 1), "SAME") > 0
    weight = 1.0 + object_weight * near_object.astype(jnp.float32)
    return weight / jnp.mean(weight)


def pixel_loss(images: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted mean over pixels of squared plus absolute error (channels averaged)."""
    error = images - targets
    return jnp.mean(weights * jnp.mean(jnp.square(error) + jnp.abs(error), axis=-1))
