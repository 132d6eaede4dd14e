"""Walks: move a latent along a direction. Pure, jittable, vmappable over latents, directions and steps.

Each walk takes (space, latent [*shape], direction [direction_dim], step) for one latent and
returns the edited latent; `sweep` vmaps one over directions and steps. `layers` (a boolean mask
over `w+` layers) restricts an edit to those layers. The walks: `linear`, `iso_density`,
`density_preserving` (DP-LaSE's), `per_layer`, `conditional` and `boundary` (InterFaceGAN's).
`restricted_decode` decodes an edit applied to some channels of one layer only (through hooks).
Details: docs/methods.md#latentjaxwalks
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from latentjax.latent import parse_layers

_TINY = 1e-12
# Walks stop this far (relatively) inside a truncation box, so that a point on its face stays
# inside after the float32 round trip through the latent's scale.
BOX_MARGIN = 1e-6


def linear(space, latent, direction, step, layers=None):
    return latent + step * space.embed(direction, layers)


def iso_density(space, latent, direction, step, layers=None):
    """A great circle through the latent in the prior's whitened coordinates (for Gaussian z the sphere
    |z| = r, for `w` the same after whitening by the fitted Gaussian, for BigGAN the truncation
    shell), tangent to the direction's component along that sphere; `step` is the arc length in
    whitened units per unit of that component, so small steps match `linear` minus its radial part.
    With a `w+` layer mask only the chosen layers turn (the density is a product over layers). Where
    the circle would leave BigGAN's truncation box, the walk slides along the box's faces on the same
    sphere (`onto_sphere_in_box`), so the density stays constant and finite (there `step` no longer
    measures arc length)."""
    prior = space.prior
    u = prior.whiten(latent)
    # only the edited part (for w+ with a layer mask, the chosen layers) turns; the rest is untouched
    edited = space.embed(jnp.ones_like(direction), layers)
    moving = u * edited
    delta = prior.whiten_delta(space.embed(direction, layers))
    radius2 = jnp.sum(jnp.square(moving))
    tangent = delta - (jnp.sum(delta * moving) / jnp.maximum(radius2, _TINY)) * moving
    speed = jnp.sqrt(jnp.sum(jnp.square(tangent)))
    radius = jnp.sqrt(radius2)
    safe = speed > _TINY
    unit = tangent / jnp.where(safe, speed, 1.0)
    angle = jnp.where(safe, step * speed / jnp.maximum(radius, _TINY), 0.0)
    change = (jnp.cos(angle) - 1) * moving + jnp.sin(angle) * radius * unit
    if prior.bound is not None:
        change = onto_sphere_in_box(u + change, prior.bound * (1 - BOX_MARGIN)) - u
    # add the change (not unwhiten the result) so that untouched coordinates stay bit for bit
    return latent + prior.unwhiten_delta(change)


def onto_sphere_in_box(u, bound):
    """u itself if inside the box [-bound, bound]^d, else the point of the same sphere |v| = |u| that
    clips u's largest coordinates (in magnitude) to the faces and scales all others by one factor.

    Continuous in u. With the m largest |u_i| clipped, the factor is s_m = sqrt((|u|² - m bound²) /
    sum of the other u_i²); m is the least count for which s_m * (largest unclipped |u_i|) <= bound,
    which exists whenever the sphere meets the box (|u|² <= d bound²).
    """
    a = jnp.abs(u).reshape(-1)
    ordered = jnp.sort(a)[::-1]
    tails = jnp.cumsum(jnp.square(ordered)[::-1])[::-1]  # tails[m] = sum of ordered[m:]²
    clipped = jnp.arange(a.size)
    # (the floor keeps sqrt's gradient finite in the branches not taken)
    scales = jnp.sqrt(jnp.maximum(tails[0] - clipped * bound ** 2, _TINY) / jnp.maximum(tails, _TINY))
    scales = scales.at[0].set(1.0)  # exactly 1 (not 1 + rounding) when nothing is clipped
    scale = scales[jnp.argmax(scales * ordered <= bound)]
    return jnp.sign(u) * jnp.minimum(scale * jnp.abs(u), bound)


def density_preserving(space, latent, direction, step, layers=None):
    """DP-LaSE's density-preserving traverse of one latent in the whitened coordinates of `space.prior`.

    The direction's whitened edit is normalised to unit length, so `step` counts whitened units
    whatever the space (in a standard-normal z this is |z| (z + t d) / |z + t d| itself); |u|, hence
    the prior density, is kept. With a truncated prior (BigGAN) the point is then moved onto the
    box's faces on the same sphere (`onto_sphere_in_box`), so the density stays finite; gradients
    pass straight through that step (it is piecewise, with 0 * inf terms where no face is reached).
    """
    prior = space.prior
    u = jnp.reshape(prior.whiten(latent), (-1,))
    du = jnp.reshape(prior.whiten_delta(space.embed(direction, layers)), (-1,))
    du = du / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(du))), 1e-30)
    u_t = density_preserving_traverse(u, du, step)
    if prior.bound is not None:  # the projection's value, with gradients passed straight through it
        u_t = u_t + jax.lax.stop_gradient(onto_sphere_in_box(u_t, prior.bound * (1 - BOX_MARGIN)) - u_t)
    return prior.unwhiten(jnp.reshape(u_t, latent.shape))


def density_preserving_batch(space, latents, directions, steps):
    """`density_preserving` over latents [N, *shape], with directions [direction_dim] or [N, direction_dim]
    and steps a scalar or [N]."""
    axes = (0, 0 if jnp.ndim(directions) == 2 else None, 0 if jnp.ndim(steps) == 1 else None)
    return jax.vmap(lambda z, d, t: density_preserving(space, z, d, t), axes)(latents, directions, steps)


def density_preserving_traverse(z, d, t):
    """z_t = |z| (z + t d) / |z + t d| over the last axis: z [..., D], d [..., D], t [...] or scalar.

    For a standard-normal z the density depends on |z| only, so it is kept (to float32 rounding).
    """
    t = jnp.asarray(t, z.dtype)[..., None]
    moved = z + t * d
    radius = jnp.sqrt(jnp.sum(jnp.square(z), axis=-1, keepdims=True))
    length = jnp.sqrt(jnp.sum(jnp.square(moved), axis=-1, keepdims=True))
    return moved * (radius / jnp.maximum(length, 1e-30))


def per_layer(space, latent, direction, step, layers):
    """Edit only the `w+` layers in `layers` (a boolean mask, indices, or 'i-j' / 'i,j' text)."""
    if space.num_layers is None:
        raise ValueError(f"per-layer walks need the 'w+' space, not {space.name!r}")
    if isinstance(layers, (str, list, tuple, range)):
        layers = parse_layers(layers, space.num_layers)
    return linear(space, latent, direction, step, jnp.asarray(layers))


def conditional_direction(direction, conditions):
    """`direction` with its components along the rows of `conditions` [m, D] removed, renormalised."""
    basis, _ = jnp.linalg.qr(jnp.atleast_2d(conditions).T)
    hi = jax.lax.Precision.HIGHEST
    free = direction - jnp.matmul(basis, jnp.matmul(basis.T, direction, precision=hi), precision=hi)
    return free / jnp.linalg.norm(free)


def conditional(space, latent, direction, conditions, step, layers=None):
    return linear(space, latent, conditional_direction(direction, conditions), step, layers)


def boundary(space, latent, direction, step, layers=None):
    if len(space.shape) != 1:
        return linear(space, latent, direction, step, layers)
    return latent + (step - jnp.dot(latent, direction, precision=jax.lax.Precision.HIGHEST)) * direction


WALKS = {"linear": linear, "iso_density": iso_density, "density_preserving": density_preserving, "boundary": boundary}


def restricted_decode(space, params, latent, edited_latent, layer: str, mask):
    """Images of `latent` whose features at `layer` take the values of `edited_latent`'s on the
    channels in `mask` ([C] or [N, C] booleans) only; the layers after it see `latent` otherwise
    (StyleGAN2: the styles of `latent`)."""
    edited = space.features(params, edited_latent, [layer])[layer]
    mask = jnp.asarray(mask, bool)
    mask = mask[:, None, None, :] if mask.ndim == 2 else mask
    return space.decode(params, latent, hooks={layer: lambda original: jnp.where(mask, edited, original)})


def sweep(walk, space, latent, directions, steps, layers=None):
    """Latents [K, S, *shape]: `walk` from one latent along K directions [K, D] by S steps.

    `layers` is None or a [K, num_layers] mask (as `Directions.layers`).
    """
    along = lambda v, m: jax.vmap(lambda t: walk(space, latent, v, t, m))(steps)
    return jax.vmap(along, (0, None if layers is None else 0))(directions, layers)
