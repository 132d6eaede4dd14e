"""Streaming statistics of samples drawn inside a jitted, sharded step: moments, PCA, a fitted Gaussian.

Batches are sharded over the "data" mesh axis and folded into a fixed-size state (a covariance,
or an incremental PCA in high dimensions), so no more than one batch of samples ever exists.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from latentjax.latent.density import HIGHEST, Gaussian
from latentjax.progress import Progress
from latentjax.sharding import DATA_AXIS, data_mesh

EXACT_PCA_MAX_DIM = 4096  # up to this dimension PCA accumulates the full covariance (exact, fast)


class Moments(NamedTuple):
    """Count, mean and scatter (sum of outer products of centred samples) of the data seen so far."""

    count: Any  # ()
    mean: Any  # (D,)
    scatter: Any  # (D, D)


def moments_init(dim: int) -> Moments:
    return Moments(jnp.zeros((), jnp.float32), jnp.zeros((dim,), jnp.float32), jnp.zeros((dim, dim), jnp.float32))


def moments_update(state: Moments, x) -> Moments:
    """Fold a batch x [B, D] in (Chan et al.'s pairwise merge: stable however far the means lie)."""
    x = x.astype(jnp.float32)
    n_batch = x.shape[0]
    total = state.count + n_batch
    batch_mean = jnp.mean(x, axis=0)
    centred = x - batch_mean
    delta = batch_mean - state.mean
    scatter = (state.scatter + jnp.matmul(centred.T, centred, precision=HIGHEST)
               + jnp.outer(delta, delta) * (state.count * n_batch / total))
    return Moments(total, state.mean + delta * (n_batch / total), scatter)


class PCAState(NamedTuple):
    """Incremental PCA (Ross et al. 2008, as sklearn's IncrementalPCA): a fixed-size summary."""

    count: Any  # () samples seen
    mean: Any  # (D,)
    components: Any  # (k, D) principal axes, rows
    singular_values: Any  # (k,) of the centred data seen so far

    @property
    def variance(self):
        return jnp.square(self.singular_values) / jnp.maximum(self.count - 1, 1)


def pca_init(dim: int, num_components: int) -> PCAState:
    if not 0 < num_components <= dim:
        raise ValueError(f"num_components must be in [1, {dim}] for {dim}-dimensional data, got {num_components}")
    return PCAState(jnp.zeros((), jnp.float32), jnp.zeros((dim,), jnp.float32),
                    jnp.zeros((num_components, dim), jnp.float32), jnp.zeros((num_components,), jnp.float32))


def pca_update(state: PCAState, x) -> PCAState:
    """Fold a batch x [B, D] into the state. Exact when num_components = D."""
    x = x.astype(jnp.float32)
    n_batch = x.shape[0]
    total = state.count + n_batch
    batch_mean = jnp.mean(x, axis=0)
    mean = state.mean + (batch_mean - state.mean) * (n_batch / total)
    # The old summary, the centred batch, and one row for the shift between their means.
    correction = jnp.sqrt(state.count * n_batch / total) * (state.mean - batch_mean)
    stacked = jnp.concatenate([state.singular_values[:, None] * state.components, x - batch_mean,
                               correction[None]], axis=0)
    _, s, vt = jnp.linalg.svd(stacked, full_matrices=False)
    k = state.components.shape[0]
    return PCAState(total, mean, vt[:k], s[:k])


def stream(step: Callable, state, batch_fn: Callable, params, num_samples: int, batch_size: int, key,
           desc: str = "", progress: bool = True):
    """Fold `state = step(state, batch_fn(params, fold_in(key, i), batch_size))` over batches i = 0, 1, ...

    Each batch is drawn inside one jitted step and sharded over all devices along a "data" mesh
    axis (the batch size is rounded up to a multiple of the device count, the sample count up to
    whole batches); `state` stays replicated. Returns (state, samples used).
    """
    mesh = data_mesh()
    batch_size = -(-batch_size // mesh.size) * mesh.size
    num_batches = max(1, -(-num_samples // batch_size))
    sharded, replicated = NamedSharding(mesh, PartitionSpec(DATA_AXIS)), NamedSharding(mesh, PartitionSpec())

    @functools.partial(jax.jit, donate_argnums=0, out_shardings=replicated)
    def run(state, params, i):
        batch = batch_fn(params, jax.random.fold_in(key, i), batch_size)
        return step(state, jax.lax.with_sharding_constraint(batch, sharded))

    state, params = jax.device_put((state, params), replicated)
    with Progress(num_batches * batch_size, desc, unit="samples", enabled=None if progress else False) as bar:
        for i in range(num_batches):
            state = run(state, params, i)
            bar.update(batch_size)
    return state, num_batches * batch_size


class PCA(NamedTuple):
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) unit rows, by decreasing variance
    variance: np.ndarray  # (k,)
    samples: int  # how many samples it saw


def streaming_pca(batch_fn: Callable, params, dim: int, num_components: int, num_samples: int, batch_size: int,
                  key, desc: str = "PCA", progress: bool = True) -> PCA:
    """PCA of `batch_fn(params, key, n)` samples [n, dim], streamed (see `stream`).

    Exact (covariance, then one eigendecomposition) up to EXACT_PCA_MAX_DIM dimensions;
    incremental PCA keeping `num_components` beyond that.
    """
    if not 0 < num_components <= dim:
        raise ValueError(f"num_components must be in [1, {dim}] for {dim}-dimensional data, got {num_components}")
    if dim > EXACT_PCA_MAX_DIM:
        state, used = stream(pca_update, pca_init(dim, num_components), batch_fn, params, num_samples, batch_size,
                             key, desc, progress)
        return PCA(np.asarray(state.mean), np.asarray(state.components), np.asarray(state.variance), used)
    state, used = stream(moments_update, moments_init(dim), batch_fn, params, num_samples, batch_size, key, desc,
                         progress)
    values, vectors = np.linalg.eigh(np.asarray(state.scatter, np.float64) / max(used - 1, 1))
    order = np.argsort(values)[::-1][:num_components]
    return PCA(np.asarray(state.mean), vectors[:, order].T, np.maximum(values[order], 0), used)


def fit_gaussian(batch_fn: Callable, params, dim: int, num_samples: int, batch_size: int, key,
                 desc: str = "fitting Gaussian", progress: bool = True) -> Gaussian:
    """Full-covariance Gaussian of `batch_fn(params, key, n)` samples [n, dim], streamed."""
    pca = streaming_pca(batch_fn, params, dim, dim, num_samples, batch_size, key, desc, progress)
    # Floor tiny variances so that whitening stays finite on (near-)degenerate axes.
    variance = np.maximum(pca.variance, 1e-10 * pca.variance.max() + 1e-30)
    return Gaussian(jnp.asarray(pca.mean, jnp.float32), jnp.asarray(np.sqrt(variance), jnp.float32),
                    basis=jnp.asarray(pca.components.T, jnp.float32))
