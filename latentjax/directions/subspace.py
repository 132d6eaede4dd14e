"""Channel subspaces of a feature layer (DP-LaSE's second stage, guanyuelee/DP-LaSE `maximum_subspace.py`).

A self-expressive matrix S [C, C] (its diagonal masked) rebuilds every channel of the features from
the other channels. `self_expressive_loss`, a pure function of S that a caller trains with optax
(as `latentjax.directions.dplase` does), penalises the rebuild's error in the features and, through
the rest of the generator, in the image, plus `weight_sparse` |S|^2; `self_expressive_losses` trains
K such matrices at once. `channel_groups` clusters the channels into groups as the reference does
(row thresholding, a low-rank affinity, spectral clustering with Yu & Shi's discretisation), in
numpy on the host with fixed seeds; `method="njw"` is this module's earlier clustering (k-means).
Details: docs/methods.md#latentjaxdirectionssubspace
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

HIGHEST = jax.lax.Precision.HIGHEST


def init_self_expressive(channels: int, value: float = 1e-4):
    """S [C, C]: `value` everywhere (the reference's init). The diagonal is masked out of every use
    in the loss, so training never changes it."""
    return jnp.full((channels, channels), value, jnp.float32)


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
    loss, terms = self_expressive_losses(S[None], features[None], post, weight_sparse)
    return loss, {name: value[0] for name, value in terms.items()}


def self_expressive_losses(S, features, post: Callable, weight_sparse: float = 0.1):
    """K matrices S [K, C, C], each with its own features [K, B, H, W, C]: (the sum of the K losses
    of `self_expressive_loss`, terms [K] each). `post` maps features [K * B, H, W, C] (k-major) to
    images [K * B, ...]. Each S_k's gradient is that of its own loss: the K problems are independent."""
    K, B = features.shape[:2]
    flat = lambda x: x.reshape((K * B,) + x.shape[2:])
    per_k = lambda x: jnp.mean(jnp.square(x).reshape(K, -1), axis=1)
    rebuilt = jnp.einsum("kbhwd,kcd->kbhwc", features, jax.vmap(off_diagonal)(S), precision=HIGHEST)
    terms = {"feature": per_k(features - rebuilt),
             "data": per_k(post(flat(features)) - post(flat(rebuilt))),
             "sparse": per_k(jax.vmap(off_diagonal)(S))}
    losses = terms["feature"] + terms["data"] + weight_sparse * terms["sparse"]
    return jnp.sum(losses), terms


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
    """Labels [C] in [0, num_groups) of a symmetric non-negative affinity [C, C] (the `njw` method).

    The `num_groups` leading eigenvectors of D^-1/2 A D^-1/2 (the trailing ones of the normalised
    Laplacian), each row scaled to unit length, clustered by `kmeans` with `seed`.
    """
    A = _check_affinity(affinity, num_groups)
    degree = A.sum(1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0.0)
    _, vectors = np.linalg.eigh(scale[:, None] * A * scale[None, :])
    return kmeans(_unit_rows(vectors[:, -num_groups:]), num_groups, seed)


def _check_affinity(affinity, num_groups: int) -> np.ndarray:
    A = np.asarray(affinity, np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"affinity must be a square matrix, got shape {A.shape}")
    if not (np.all(A >= 0) and np.allclose(A, A.T)):
        raise ValueError("affinity must be symmetric and non-negative")
    if not 1 <= num_groups <= A.shape[0]:
        raise ValueError(f"num_groups must be in [1, {A.shape[0]}] for {A.shape[0]} channels, got {num_groups}")
    return A


def _unit_rows(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


# --- the reference's clustering --------------------------------------------------------------------
def threshold_rows(S, threshold: float = 0.2) -> np.ndarray:
    """Each row of S [C, C] keeps its largest |entries| up to and including the one at which their
    running sum first exceeds `threshold` times the row's sum of |entries|; the rest become 0
    (the reference's `thrC(S.T, ρ).T`: per rebuilt channel). `threshold` >= 1 keeps everything;
    an all-zero row stays zero (where the reference would fail)."""
    S = np.asarray(S, np.float64)
    if threshold >= 1:
        return S.copy()
    magnitude = np.abs(S)
    order = np.argsort(-magnitude, axis=1, kind="stable")
    ranked = np.take_along_axis(magnitude, order, axis=1)
    running = np.cumsum(ranked, axis=1)
    before = np.concatenate([np.zeros((len(S), 1)), running[:, :-1]], axis=1)  # the running sum before each
    keep_ranked = before <= threshold * np.sum(ranked, axis=1, keepdims=True)
    keep = np.zeros_like(keep_ranked)
    np.put_along_axis(keep, order, keep_ranked, axis=1)
    return np.where(keep, S, 0.0)


def low_rank_affinity(C, num_groups: int, subspace_dim: int = 12, power: float = 3.0) -> np.ndarray:
    """The reference's `post_proC` affinity of a coefficient matrix C [n, n] (see the module doc):
    symmetrised, its top r = min(subspace_dim * num_groups + 1, n - 1) singular directions U with
    rows of U Σ^½ at unit length, Z = those rows' inner products (>= 0), (Z^power) / max, symmetric.
    The singular vectors come from a dense SVD (the reference: ARPACK `svds`); Z depends only on the
    rank-r part, which both give wherever σ_r > σ_{r+1}."""
    C = np.asarray(C, np.float64)
    n = C.shape[0]
    C = 0.5 * (C + C.T)
    rank = max(1, min(subspace_dim * num_groups + 1, n - 1))
    U, sigma, _ = np.linalg.svd(C)
    rows = _unit_rows(U[:, :rank] * np.sqrt(sigma[:rank]))
    Z = np.maximum(rows @ rows.T, 0.0)
    L = np.abs(Z ** power)
    top = L.max()
    L = L / top if top > 0 else L
    return 0.5 * (L + L.T)


def spectral_discretize(affinity, num_groups: int, seed: int = 0, max_iterations: int = 20) -> np.ndarray:
    """Labels [n] in [0, num_groups) of a symmetric non-negative affinity [n, n], as scikit-learn's
    `SpectralClustering(affinity='precomputed', assign_labels='discretize')` computes them (see the
    module doc, step 3). Some labels may be unused (the discretisation can leave a group empty)."""
    A = _check_affinity(affinity, num_groups).copy()
    np.fill_diagonal(A, 0.0)  # the Laplacian ignores self-affinity
    degree = A.sum(0)
    root = np.where(degree > 0, np.sqrt(np.where(degree > 0, degree, 1)), 1.0)
    normalised = A / root[:, None] / root[None, :]
    laplacian = np.eye(len(A)) - normalised  # isolated channels: a 1 on the diagonal, as scikit-learn sets
    _, vectors = np.linalg.eigh(laplacian)
    embedding = vectors[:, :num_groups] / root[:, None]  # the random-walk eigenvectors D^-1/2 v
    embedding = _unit_rows(embedding.T).T  # each eigenvector to unit length
    return _yu_shi(_unit_rows(embedding), num_groups, np.random.default_rng(seed), max_iterations)


def _yu_shi(rows, k: int, rng, max_iterations: int) -> np.ndarray:
    """Yu & Shi's discretisation of unit rows [n, k]: the rotation R and the one-hot labels X that
    maximise trace(Xᵀ rows R), by alternating, from R's columns = rows that are as orthogonal to
    the previous picks as possible (the first at random)."""
    n = len(rows)
    rotation = np.zeros((k, k))
    rotation[:, 0] = rows[rng.integers(n)]
    overlap = np.zeros(n)
    for j in range(1, k):
        overlap += np.abs(rows @ rotation[:, j - 1])
        rotation[:, j] = rows[np.argmin(overlap)]
    previous = 0.0
    for iteration in range(max_iterations + 1):
        labels = np.argmax(rows @ rotation, axis=1)
        one_hot = np.zeros((n, k))
        one_hot[np.arange(n), labels] = 1.0
        left, sigma, right_t = np.linalg.svd(one_hot.T @ rows)
        objective = 2.0 * (n - sigma.sum())  # the normalised cut of the relaxed problem
        if abs(objective - previous) < np.finfo(float).eps or iteration == max_iterations:
            break
        previous = objective
        rotation = right_t.T @ left.T
    return labels


CLUSTERINGS = ("reference", "njw")


def channel_groups(S, num_groups: int, seed: int = 0, method: str = "reference", threshold: float = 0.2,
                   subspace_dim: int = 12, power: float = 3.0) -> np.ndarray:
    """Boolean masks [num_groups, C] that partition the channels, largest group first (ties: in order
    of first channel; groups the clustering left empty come last, all False).

    `method`: "reference" (default) clusters S as DP-LaSE's reference does: relu, `threshold_rows`
    (`threshold`), `low_rank_affinity` (`subspace_dim`, `power`), `spectral_discretize` (`seed`);
    "njw" clusters |S| + |S|ᵀ with `spectral_clustering`, its diagonal ignored. The reference
    clusters relu(S) diagonal included (S's untrained initial value there, as here).
    """
    if method not in CLUSTERINGS:
        raise ValueError(f"method must be one of {list(CLUSTERINGS)}, got {method!r}")
    S = np.asarray(S, np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square matrix [C, C], got shape {S.shape}")
    if not 1 <= num_groups <= len(S):
        raise ValueError(f"num_groups must be in [1, {len(S)}] for {len(S)} channels, got {num_groups}")
    if num_groups == 1:
        labels = np.zeros(len(S), int)
    elif method == "njw":
        magnitude = np.abs(S * (1 - np.eye(len(S))))
        labels = spectral_clustering(magnitude + magnitude.T, num_groups, seed)
    else:
        kept = threshold_rows(np.maximum(S, 0.0), threshold)
        labels = spectral_discretize(low_rank_affinity(kept, num_groups, subspace_dim, power), num_groups, seed)
    sizes = np.bincount(labels, minlength=num_groups)
    first = np.array([np.flatnonzero(labels == j)[0] if sizes[j] else len(S) for j in range(num_groups)])
    order = np.lexsort((first, -sizes))
    return labels[None, :] == order[:, None]
