"""Channel subspaces of a feature layer (DP-LaSE's second stage, guanyuelee/DP-LaSE `maximum_subspace.py`).

A self-expressive matrix S [C, C] with a zero diagonal rebuilds every channel of the features
f [B, H, W, C] from the other channels: (S f)[..., c] = sum_d S[c, d] f[..., d]. It is trained to

    |f - S f|^2 + |G_post(f) - G_post(S f)|^2 + weight_sparse |S|^2     (each term a mean)

with G_post the generator after the layer, so that S links the channels that can stand in for one
another, in the features and in the image. Channels that express each other form a subspace:
spectral clustering of the affinity |S| + |S|ᵀ (normalised-Laplacian eigenvectors, rows scaled to
unit length, then k-means; Ng, Jordan & Weiss 2001) splits them into groups. The reference
thresholds and factorises S first and clusters with scikit-learn; here the affinity goes to the
clustering as it is, and everything on the host is numpy with a fixed seed.

`self_expressive_loss` is a pure function of S; a caller trains S with optax (DP-LaSE does it in
its train step, `latentjax.directions.dplase`). The diagonal is masked out of every use of S, so it
gets no gradient: initialised at 0 it stays exactly 0 under Adam.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

HIGHEST = jax.lax.Precision.HIGHEST


def init_self_expressive(channels: int, value: float = 1e-4):
    """S [C, C]: `value` everywhere off the diagonal (the reference's init), 0 on it."""
    return value * (1 - jnp.eye(channels, dtype=jnp.float32))


def off_diagonal(S):
    """S with its diagonal zeroed: a channel may not express itself."""
    return S * (1 - jnp.eye(S.shape[0], dtype=S.dtype))


def reconstruct(S, features):
    """(S f)[..., c] = sum_{d != c} S[c, d] f[..., d] for channels-last features."""
    return jnp.einsum("...d,cd->...c", features, off_diagonal(S), precision=HIGHEST)


def self_expressive_loss(S, features, post: Callable, weight_sparse: float = 0.1):
    """(loss, terms) for features [B, H, W, C] and `post`: features -> images (the generator after
    the layer). terms: `feature` mean (f - S f)^2, `data` mean (post(f) - post(S f))^2, `sparse`
    mean S^2 (off the diagonal); loss = feature + data + weight_sparse * sparse."""
    rebuilt = reconstruct(S, features)
    terms = {"feature": jnp.mean(jnp.square(features - rebuilt)),
             "data": jnp.mean(jnp.square(post(features) - post(rebuilt))),
             "sparse": jnp.mean(jnp.square(off_diagonal(S)))}
    return terms["feature"] + terms["data"] + weight_sparse * terms["sparse"], terms


# --- clustering (host side, numpy) ---------------------------------------------------------------
def kmeans(points, k: int, seed: int = 0, restarts: int = 10, iterations: int = 100) -> np.ndarray:
    """Labels [N] in [0, k) of points [N, D]: Lloyd's algorithm from k-means++ seeds, the best of
    `restarts` runs (least within-cluster sum of squares). Every cluster gets at least one point
    (an empty one takes the point farthest from its centre), so k <= N is required."""
    points = np.asarray(points, np.float64)
    n = len(points)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] for {n} points, got {k}")
    rng = np.random.default_rng(seed)
    best_labels, best_cost = None, np.inf
    for _ in range(restarts):
        centres = _kmeans_plus_plus(points, k, rng)
        for _ in range(iterations):
            labels = _fill_empty(points, centres, _sq_dist(points, centres).argmin(1), k)
            new = np.stack([points[labels == j].mean(0) for j in range(k)])
            converged = np.allclose(new, centres, rtol=0, atol=1e-12)
            centres = new
            if converged:
                break
        labels = _fill_empty(points, centres, _sq_dist(points, centres).argmin(1), k)
        cost = float(np.sum(np.square(points - centres[labels])))
        if cost < best_cost:
            best_labels, best_cost = labels, cost
    return best_labels


def _sq_dist(points, centres):
    return np.sum(np.square(points[:, None, :] - centres[None, :, :]), axis=-1)


def _kmeans_plus_plus(points, k, rng):
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = _sq_dist(points, np.stack(centres)).min(1)
        p = d2 / d2.sum() if d2.sum() > 0 else None  # all points on the centres: pick uniformly
        centres.append(points[rng.choice(len(points), p=p)])
    return np.stack(centres)


def _fill_empty(points, centres, labels, k):
    """Move, into each empty cluster, the point farthest from its own centre among clusters of 2+."""
    labels = labels.copy()
    for j in range(k):
        if np.any(labels == j):
            continue
        counts = np.bincount(labels, minlength=k)
        movable = counts[labels] > 1
        far = np.sum(np.square(points - centres[labels]), axis=1)
        labels[np.flatnonzero(movable)[np.argmax(far[movable])]] = j
    return labels


def spectral_clustering(affinity, num_groups: int, seed: int = 0) -> np.ndarray:
    """Labels [C] in [0, num_groups) of a symmetric non-negative affinity [C, C].

    The `num_groups` leading eigenvectors of D^-1/2 A D^-1/2 (the trailing ones of the normalised
    Laplacian), each row scaled to unit length, clustered by `kmeans` with `seed`.
    """
    A = np.asarray(affinity, np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"affinity must be a square matrix, got shape {A.shape}")
    if not (np.all(A >= 0) and np.allclose(A, A.T)):
        raise ValueError("affinity must be symmetric and non-negative")
    if not 1 <= num_groups <= A.shape[0]:
        raise ValueError(f"num_groups must be in [1, {A.shape[0]}] for {A.shape[0]} channels, got {num_groups}")
    degree = A.sum(1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0.0)
    _, vectors = np.linalg.eigh(scale[:, None] * A * scale[None, :])
    embedding = vectors[:, -num_groups:]
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    return kmeans(embedding / np.where(norms > 0, norms, 1), num_groups, seed)


def channel_groups(S, num_groups: int, seed: int = 0) -> np.ndarray:
    """Boolean masks [num_groups, C] that partition the channels: spectral clustering of
    |S| + |S|ᵀ (diagonal ignored), largest group first (ties: in order of first channel)."""
    S = np.abs(np.asarray(off_diagonal(jnp.asarray(S)), np.float64))
    labels = spectral_clustering(S + S.T, num_groups, seed)
    first = np.array([np.flatnonzero(labels == j)[0] for j in range(num_groups)])
    order = np.lexsort((first, -np.bincount(labels, minlength=num_groups)))
    return labels[None, :] == order[:, None]
