"""Jacobian directions (LowRankGAN, Zhu et al., NeurIPS 2021): principal directions of JᵀJ.

J is the Jacobian of the image (channels averaged, as the reference) with respect to a direction's
coordinates at a sampled latent, restricted to a region by a mask; M = mean over samples of
JᵀJ / (pixels in the region). The directions are M's leading eigenvectors. With `protect`, they
are confined to the null space N of the protected region's M (the eigenvectors past its
numerical rank, less `num_relax`), so that an edit changes the region and leaves
the protected pixels (to first order) alone. The reference factorises both matrices with robust
PCA first and projects the region's principal directions onto that null space; here the rank
comes from an eigenvalue threshold (`null_tol`), and the directions are the region's principal
directions *within* the null space (the eigenvectors of NᵀMN, mapped back by N), which are
orthonormal where projected ones can coincide.

J is computed in forward mode: one `jax.linearize`, then the JVP vmapped over chunks of basis
tangents (D JVPs instead of H*W VJPs for reverse mode).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, configure
from latentjax.directions.base import Directions, canonical_signs, top_eigenvectors
from latentjax.latent import as_space, layer_mask
from latentjax.progress import track

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class JacobianConfig(ConfigMixin):
    k: int = 10  # number of directions
    num_samples: int = 5  # latents the Jacobian is averaged over (the reference: 5)
    chunk_size: int = 64  # tangents per vmapped JVP
    region: Any = None  # (top, bottom, left, right) as image fractions, or an [H, W] 0/1 mask; None: whole image
    protect: Any = None  # None, 'complement' (outside the region), or a box or mask like `region`
    null_tol: float = 1e-3  # protected eigenvalues above null_tol * largest count towards its rank
    num_relax: int = 0  # null space starts this many eigenvectors before the rank (reference option)
    layers: str | tuple[int, ...] = "all"  # w+ layers a direction edits


def forward_jacobian(fn, x, chunk_size: int = 64):
    """d fn(x) / dx by forward mode, shaped like `jax.jacrev`: fn(x).shape + x.shape."""
    y, jvp = jax.linearize(fn, x)
    dim = x.size
    chunks = -(-dim // chunk_size)
    tangents = jnp.eye(chunks * chunk_size, dim, dtype=x.dtype).reshape((chunks, chunk_size) + x.shape)
    columns = jax.lax.map(jax.vmap(jvp), tangents).reshape((chunks * chunk_size,) + y.shape)[:dim]
    return jnp.moveaxis(columns, 0, -1).reshape(y.shape + x.shape)


def region_mask(region, height: int, width: int) -> np.ndarray:
    """A [height, width] 0/1 mask from a box (top, bottom, left, right) as image fractions, or a mask itself."""
    if region is None:
        return np.ones((height, width), np.float32)
    if np.ndim(region) == 1 and len(region) == 4:
        top, bottom, left, right = (int(round(f * n)) for f, n in zip(region, (height, height, width, width)))
        mask = np.zeros((height, width), np.float32)
        mask[top:bottom, left:right] = 1
    else:
        mask = np.asarray(region, np.float32)
        if mask.shape != (height, width):
            raise ValueError(f"a region is a box (top, bottom, left, right) of image fractions or a "
                             f"[{height}, {width}] mask, got shape {mask.shape}")
    if not mask.any():
        raise ValueError(f"region {region!r} covers no pixel of a {height}x{width} image")
    return mask


def image_grams(space, params, latent, masks, layers=None, chunk_size: int = 64):
    """For each mask [H, W]: JᵀJ / sum(mask) over its pixels, J = d mean_c(image) / d direction."""
    def image(v):
        return jnp.mean(space.decode(params, (latent + space.embed(v, layers))[None])[0], axis=-1)

    jac = forward_jacobian(image, jnp.zeros((space.direction_dim,), jnp.float32), chunk_size)
    jac = jac.reshape(-1, space.direction_dim)
    return [jnp.matmul((jac * m.reshape(-1, 1)).T, jac, precision=HIGHEST) / jnp.sum(m) for m in masks]


def null_space(matrix: np.ndarray, tol: float, num_relax: int = 0) -> np.ndarray:
    """Orthonormal columns spanning the eigenvectors of a PSD matrix past its numerical rank."""
    values, vectors = np.linalg.eigh(np.asarray(matrix, np.float64))
    values, vectors = values[::-1], vectors[:, ::-1]
    rank = int(np.sum(values > tol * values[0]))
    start = min(max(1, rank - num_relax), len(values) - 1)
    return vectors[:, start:]


def jacobian(source, config: JacobianConfig | dict | None = None, key=None, progress: bool = True,
             **overrides) -> Directions:
    """Directions of a generator or LatentSpace (default space: the family's editing space)."""
    config = configure(JacobianConfig, config, overrides)
    space = as_space(source)
    G = space.generator
    key = jax.random.key(0) if key is None else key
    edit_layers = layer_mask(space, config.layers, 1)
    edit_layers = None if edit_layers is None else jnp.asarray(edit_layers[0])
    _, height, width, _ = jax.eval_shape(space.decode, G.params, jax.ShapeDtypeStruct((1,) + space.shape,
                                                                                      jnp.float32)).shape
    masks = [region_mask(config.region, height, width)]
    if isinstance(config.protect, str):
        if config.protect != "complement":
            raise ValueError(f"protect must be None, 'complement', a box or a mask, got {config.protect!r}")
        masks.append(1 - masks[0])
        if not masks[1].any():
            raise ValueError("protect='complement' of a region that covers the whole image is empty")
    elif config.protect is not None:
        masks.append(region_mask(config.protect, height, width))
    grams = jax.jit(lambda params, x: image_grams(space, params, x, masks, edit_layers, config.chunk_size))
    latents = space.sample(key, config.num_samples)
    totals = [np.zeros((space.direction_dim,) * 2) for _ in masks]
    for i in track(range(config.num_samples), desc="Jacobians", unit="samples", enabled=None if progress else False):
        totals = [t + np.asarray(m, np.float64) for t, m in zip(totals, grams(G.params, latents[i]))]
    region_gram = totals[0] / config.num_samples
    settings = config.to_dict()
    if config.protect is None:
        scores, vectors = top_eigenvectors(region_gram, config.k)
    else:
        basis = null_space(totals[1] / config.num_samples, config.null_tol, config.num_relax)
        settings["null_space_dim"] = basis.shape[1]
        if config.k > basis.shape[1]:
            raise ValueError(f"the protected region leaves a {basis.shape[1]}-dimensional null space, fewer than "
                             f"k={config.k} directions; raise null_tol or num_relax, or lower k")
        # the region's principal directions within the null space
        scores, coords = top_eigenvectors(basis.T @ region_gram @ basis, config.k)
        vectors = canonical_signs(coords @ basis.T)
    return Directions(vectors, scores, space.spec, "jacobian", settings, layer_mask(space, config.layers, config.k))
