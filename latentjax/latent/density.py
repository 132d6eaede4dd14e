"""Densities of latent spaces: Gaussians in whitened coordinates, optionally truncated to a box."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """N(mean, basis diag(std^2) basis^T) over the last axis of a latent, optionally truncated.

    `basis` (d, d) holds the principal axes as orthonormal columns; None means the coordinate
    axes (a diagonal Gaussian). `bound` truncates every whitened coordinate to [-bound, bound]
    (density -inf outside). Leading axes (batch, `w+` layers) are independent copies.
    """

    mean: Any
    std: Any
    basis: Any = None
    bound: float | None = None

    @property
    def spread(self):
        """sqrt(E |x - mean|^2) of the untruncated Gaussian (per latent vector): the root of its total variance."""
        return jnp.sqrt(jnp.sum(jnp.square(self.std)))

    def whiten_delta(self, dx):
        """Whitened coordinates of a displacement (no mean subtracted)."""
        if self.basis is not None:
            dx = jnp.matmul(dx, self.basis, precision=HIGHEST)
        return dx / self.std

    def whiten(self, x):
        return self.whiten_delta(x - self.mean)

    def unwhiten_delta(self, du):
        """The displacement with whitened coordinates `du` (no mean added)."""
        dx = du * self.std
        if self.basis is not None:
            dx = jnp.matmul(dx, self.basis.T, precision=HIGHEST)
        return dx

    def unwhiten(self, u):
        return self.unwhiten_delta(u) + self.mean

    def log_prob(self, x, event_ndim: int = 1):
        """Log density summed over the last `event_ndim` axes."""
        u = self.whiten(x)
        per_coord = -0.5 * jnp.square(u) - jnp.log(self.std) - 0.5 * math.log(2 * math.pi)
        if self.bound is not None:
            mass = jax.scipy.special.ndtr(self.bound) - jax.scipy.special.ndtr(-self.bound)
            per_coord = per_coord - jnp.log(mass)
        axes = tuple(range(-event_ndim, 0))
        log_p = jnp.sum(per_coord, axis=axes)
        if self.bound is not None:
            log_p = jnp.where(jnp.all(jnp.abs(u) <= self.bound, axis=axes), log_p, -jnp.inf)
        return log_p


def standard_normal(dim: int, scale: float = 1.0, bound: float | None = None) -> Gaussian:
    return Gaussian(jnp.zeros((dim,), jnp.float32), jnp.full((dim,), scale, jnp.float32), bound=bound)
