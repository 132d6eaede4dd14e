"""Jacobian directions (LowRankGAN, Zhu et al., NeurIPS 2021): principal directions of JᵀJ.

J is the Jacobian of the image (channels averaged, as the reference) with respect to a direction's
coordinates at a latent, restricted to a region by a mask; M = JᵀJ / (pixels in the region). The
default mode, 'reference' (zhujiapeng/LowRankGAN `compute_directions.py`), splits M per latent by
robust PCA into low-rank plus sparse parts; the directions are the low-rank part's leading singular
vectors, with `protect` projected onto the null space of the protected region's low-rank part, and
every latent gives its own set (often 1 to 3). 'averaged' averages M over the latents and gives
exactly k orthonormal directions. J is computed in forward mode (`jax.linearize`, vmapped JVPs).
Details: docs/methods.md#latentjaxdirectionsjacobian
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, check_positive, configure
from latentjax.directions.base import Directions, canonical_signs, top_eigenvectors
from latentjax.directions.robust_pca import LAMBDA, robust_pca
from latentjax.latent import as_space, layer_mask
from latentjax.progress import track

HIGHEST = jax.lax.Precision.HIGHEST
MODES = ("reference", "averaged")


@dataclasses.dataclass(frozen=True)
class JacobianConfig(ConfigMixin):
    k: int | None = 10  # directions wanted ('reference': at most, see `jacobian`; None: all it finds)
    mode: str = "reference"  # 'reference' (per latent, robust PCA) or 'averaged' (mean M, eigenvalue threshold)
    num_samples: int = 5  # latents sampled (the reference: 5); `jacobian(latents=...)` replaces them
    chunk_size: int = 64  # tangents per vmapped JVP
    region: Any = None  # (top, bottom, left, right) as image fractions, or an [H, W] 0/1 mask; None: whole image
    protect: Any = None  # None, 'complement' (outside the region), or a box or mask like `region`
    num_relax: int = 0  # null space starts this many singular vectors before the rank (reference option)
    lam: float = LAMBDA  # 'reference': robust PCA's weight on the sparse part (the reference's 1 / --lamb)
    max_iter: int = 10_000  # 'reference': robust PCA iterations at most (the reference's --max_iter)
    null_tol: float = 1e-3  # 'averaged': protected eigenvalues above null_tol * largest count towards its rank
    layers: str | tuple[int, ...] = "all"  # w+ layers a direction edits

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"JacobianConfig.mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.k is None and self.mode == "averaged":
            raise ValueError("JacobianConfig.k must be a positive integer in mode 'averaged' (None: only 'reference')")
        check_positive(self, *(["k"] if self.k is not None else []), "num_samples", "chunk_size", "max_iter")
        check_positive(self, "num_relax", minimum=0, what=">= 0")
        check_positive(self, "lam", "null_tol", minimum=np.finfo(float).tiny)


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


class LowRank(NamedTuple):
    """One latent's LowRankGAN directions (`lowrank_directions`)."""
    vectors: np.ndarray  # [rank_f, D] unit rows, in the order of L_f's singular values
    scores: np.ndarray  # [rank_f] L_f's singular values
    rank_f: int  # rank of the region's low-rank part
    rank_b: int | None  # rank of the protected region's low-rank part (None: nothing protected)
    null_space_dim: int | None  # dimensions of the null space the directions were projected onto
    projected_norm: np.ndarray | None  # [rank_f] each principal direction's norm after the projection
    iterations: tuple[int, ...]  # robust PCA iterations (region, protected region)


def lowrank_directions(region_gram, protected_gram=None, lam: float = LAMBDA, max_iter: int = 10_000,
                       num_relax: int = 0) -> LowRank:
    """The reference's directions from one latent's region M_f and protected M_b (both [D, D]).

    As `compute_directions.py`: L_f, L_b by robust PCA; F = the first rank(L_f) right singular
    vectors of L_f; without a protected region, F itself; else each row of F projected onto
    V_b[start:], V_b the right singular vectors of L_b and start = min(max(1, rank(L_b) - num_relax),
    D - 1), and normalised. Ranks are `np.linalg.matrix_rank`'s (its default tolerance, as the
    reference). Signs follow `canonical_signs` (the reference keeps LAPACK's).
    """
    region = robust_pca(region_gram, lam, max_iter)
    rank_f = int(np.linalg.matrix_rank(region.low_rank))
    singular, vh = np.linalg.svd(region.low_rank)[1:]
    principal, scores = vh[:rank_f], singular[:rank_f]
    if protected_gram is None:
        return LowRank(canonical_signs(principal), scores, rank_f, None, None, None, (region.iterations,))
    protected = robust_pca(protected_gram, lam, max_iter)
    rank_b = int(np.linalg.matrix_rank(protected.low_rank))
    dim = vh.shape[0]
    start = min(max(1, rank_b - num_relax), dim - 1)
    null = np.linalg.svd(protected.low_rank)[2][start:].T
    projected = (null @ (null.T @ principal.T)).T
    norms = np.linalg.norm(projected, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"a principal direction of the region lies in the protected region's row space (rank "
                         f"{rank_b}): it has no component in the null space; raise num_relax or change the regions")
    return LowRank(canonical_signs(projected / norms[:, None]), scores, rank_f, rank_b, dim - start, norms,
                   (region.iterations, protected.iterations))


def jacobian(source, config: JacobianConfig | dict | None = None, key=None, progress: bool = True,
             latents=None, **overrides) -> Directions:
    """Directions of a generator or LatentSpace (default space: the family's editing space).

    `latents` ([N, *space.shape], latents of the space) replace the `num_samples` sampled from
    `key`. Mode 'reference' (default): every latent's set from `lowrank_directions`, stacked in
    latent order (each set in its own order, scores = L_f's singular values, so scores descend
    within a set but not across sets), then the first `k` rows (k=None: all). The sets hold
    rank(L_f) directions each, often only 1 to 3: where all of them together hold fewer than `k`,
    the result has fewer rows and a warning says so (no padding); none at all is a ValueError.
    `settings` record per row `sample` (the latent's index), per latent `rank_f`, `rank_b`,
    `null_space_dim` and `rpca_iterations`, and with `protect` per row `projected_norm`.
    Mode 'averaged': k directions from the mean M (module docstring); `settings["null_space_dim"]`.
    """
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
    settings = config.to_dict()
    if latents is None:
        latents = space.sample(key, config.num_samples)
    else:
        latents = jnp.asarray(latents, jnp.float32)
        if latents.ndim != 1 + len(space.shape) or latents.shape[1:] != space.shape or len(latents) == 0:
            raise ValueError(f"latents must be an array [N, {', '.join(map(str, space.shape))}] of N >= 1 latents of "
                             f"the {space.name!r} space, got shape {latents.shape}")
        settings.update(num_samples=len(latents), latents="given")
    grams = jax.jit(lambda params, x: image_grams(space, params, x, masks, edit_layers, config.chunk_size))
    found = []  # per latent: its [region, protected] M ('averaged') or its LowRank ('reference')
    for i in track(range(len(latents)), desc="Jacobians", unit="samples", enabled=None if progress else False):
        m = [np.asarray(gram, np.float64) for gram in grams(G.params, latents[i])]
        found.append(m if config.mode == "averaged" else
                     lowrank_directions(*m, lam=config.lam, max_iter=config.max_iter, num_relax=config.num_relax))
    if config.mode == "averaged":
        vectors, scores = _averaged(found, config, settings)
        return Directions(vectors, scores, space.spec, "jacobian", settings,
                          layer_mask(space, config.layers, len(vectors)))
    rows = [(i, j) for i, f in enumerate(found) for j in range(f.rank_f)][:config.k]
    if not rows:
        raise ValueError(f"robust PCA found a rank-0 low-rank part of the region's JᵀJ for every one of the "
                         f"{len(found)} latents: no direction; use more latents, a larger lam, or mode='averaged'")
    if config.k is not None and len(rows) < config.k:
        warnings.warn(f"jacobian found {len(rows)} directions, fewer than k={config.k}: the region's low-rank parts "
                      f"have ranks {[f.rank_f for f in found]} over the {len(found)} latents; use more latents or "
                      f"mode='averaged' for exactly k", stacklevel=2)
    settings.update(sample=[i for i, _ in rows], rank_f=[f.rank_f for f in found],
                    rpca_iterations=[list(f.iterations) for f in found])
    if len(masks) > 1:
        settings.update(rank_b=[f.rank_b for f in found], null_space_dim=[f.null_space_dim for f in found],
                        projected_norm=[float(found[i].projected_norm[j]) for i, j in rows])
    vectors = np.stack([found[i].vectors[j] for i, j in rows])
    scores = np.array([found[i].scores[j] for i, j in rows])
    return Directions(vectors, scores, space.spec, "jacobian", settings, layer_mask(space, config.layers, len(rows)))


def _averaged(per_sample, config: JacobianConfig, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mode 'averaged': the k directions of the mean region M (within the protected null space)."""
    region_gram = np.mean([m[0] for m in per_sample], axis=0)
    if len(per_sample[0]) == 1:
        scores, vectors = top_eigenvectors(region_gram, config.k)
        return vectors, scores
    basis = null_space(np.mean([m[1] for m in per_sample], axis=0), config.null_tol, config.num_relax)
    settings["null_space_dim"] = basis.shape[1]
    if config.k > basis.shape[1]:
        raise ValueError(f"the protected region leaves a {basis.shape[1]}-dimensional null space, fewer than "
                         f"k={config.k} directions; raise null_tol or num_relax, or lower k")
    # the region's principal directions within the null space
    scores, coords = top_eigenvectors(basis.T @ region_gram @ basis, config.k)
    return canonical_signs(coords @ basis.T), scores
