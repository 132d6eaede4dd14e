"""GANSpace (Härkönen et al., NeurIPS 2020): principal components of samples, as directions.

Latent mode (`layer=None` on `w`, `w+`, `s`): PCA of the space's own samples (the reference's
`--use_w`). Feature mode (`layer` set, or any `z` space): PCA of the activations at `layer`, each
component mapped back to a latent direction by the reference's least-squares regression; in the `z`
space of a style-based generator the default layer is the mapped `w` (`MAPPED_W`). Scores are the
components' standard deviations, as the reference's (its edits step sigma * scores[k]). Samples are
drawn and reduced in jitted steps sharded over all devices (`latentjax.latent.stream`), so 10^6
samples never exist at once.
Details: docs/methods.md#latentjaxdirectionsganspace
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, configure
from latentjax.directions.base import Directions, canonical_signs
from latentjax.latent import as_space, layer_mask, stream, streaming_pca

MAPPED_W = "w"  # the feature "layer" of a style-based z space that is its mapped w (first w+ layer)
MIN_REGRESSION_SAMPLES = 10_000  # the reference regresses on max(10^4, N) samples


@dataclasses.dataclass(frozen=True)
class GANSpaceConfig(ConfigMixin):
    k: int = 10  # number of directions returned
    num_samples: int = 100_000  # samples for the PCA (the reference uses 3e5 to 1e6)
    batch_size: int = 1000
    num_components: int = 80  # components the incremental PCA keeps (capped at the data dimension)
    layer: str | None = None  # feature layer; None: the latent samples (z spaces: `default_layer`)
    regression_samples: int = 0  # feature mode: regression samples; 0: max(10^4, num_samples) (the reference)
    layers: str | tuple[int, ...] = "all"  # w+ layers each direction edits (GANSpace's E(v, j-k))


def ganspace(source, config: GANSpaceConfig | dict | None = None, key=None, progress: bool = True,
             **overrides) -> Directions:
    """Directions of a generator or LatentSpace (default space: the family's editing space)."""
    config = configure(GANSpaceConfig, config, overrides)
    if config.regression_samples < 0:
        raise ValueError(f"regression_samples must be >= 0 (0: max(10^4, num_samples)), got {config.regression_samples}")
    space = as_space(source)
    G = space.generator
    key = jax.random.key(0) if key is None else key
    layer = config.layer or (default_layer(space) if space.name == "z" else None)
    if layer == MAPPED_W and not (G.style_based and space.name == "z"):
        raise ValueError(f"layer {MAPPED_W!r} (the mapped w) exists only in the 'z' space of a style-based generator")

    def feature_batch(params, k, n):
        x = space.sample(k, n, params)
        if layer == MAPPED_W:
            return space.to_ws(params, x)[:, 0], space.pool(x)
        return jnp.reshape(space.features(params, x, [layer])[layer], (n, -1)), space.pool(x)

    if layer is None:
        batch_fn = lambda params, k, n: space.pool(space.sample(k, n, params))
    else:
        batch_fn = lambda params, k, n: feature_batch(params, k, n)[0]
    dim = jax.eval_shape(lambda params, k: batch_fn(params, k, 1), G.params, key).shape[1]
    num_components = min(config.num_components, dim)
    if config.k > num_components:
        raise ValueError(f"k={config.k} exceeds the {num_components} principal components kept")
    pca = streaming_pca(batch_fn, G.params, dim, num_components, config.num_samples, config.batch_size,
                        jax.random.fold_in(key, 0), "GANSpace PCA", progress)
    settings = {**config.to_dict(), "layer": layer, "num_samples_used": pca.samples}
    if layer is None:
        vectors = pca.components[: config.k]
    else:
        vectors, settings["regression_samples_used"] = _regress(space, pca, feature_batch, layer, config, key,
                                                                progress)
    return Directions(canonical_signs(vectors), np.sqrt(pca.variance[: config.k]), space.spec, "ganspace", settings,
                      layer_mask(space, config.layers, config.k))


def default_layer(space) -> str:
    """The layer a `z`-space PCA runs on: the mapped w for style-based generators, else the first layer."""
    return MAPPED_W if space.generator.style_based else space.generator.layer_names[0]


def _regress(space, pca, feature_batch, layer, config, key, progress):
    """Latent directions of the feature PCs: rows of M = argmin |A M - Z|² (normal equations, streamed)."""

    def batch_fn(inputs, k, n):  # the PCA arrays travel as arguments, not as compiled-in constants
        params, components, mean, std = inputs
        features, z = feature_batch(params, k, n)
        return jnp.matmul(features - mean, components.T, precision=jax.lax.Precision.HIGHEST) / std, z

    def step(state, batch):
        coords, z = batch
        gram, cross = state
        hi = jax.lax.Precision.HIGHEST
        return gram + jnp.matmul(coords.T, coords, precision=hi), cross + jnp.matmul(coords.T, z, precision=hi)

    q = int(np.sum(pca.variance > 1e-6 * pca.variance[0]))  # components that carry variance
    if config.k > q:
        raise ValueError(f"layer {layer!r} has only {q} principal components with "
                         f"non-negligible variance, fewer than k={config.k}")
    init = (jnp.zeros((q, q)), jnp.zeros((q, space.direction_dim)))
    inputs = (space.generator.params,) + tuple(jnp.asarray(a, jnp.float32) for a in
                                               (pca.components[:q], pca.mean, np.sqrt(pca.variance[:q])))
    samples = config.regression_samples or max(MIN_REGRESSION_SAMPLES, config.num_samples)
    (gram, cross), used = stream(step, init, batch_fn, inputs, samples, config.batch_size,
                                 jax.random.fold_in(key, 1), "GANSpace regression", progress)
    solution = np.linalg.solve(np.asarray(gram, np.float64), np.asarray(cross, np.float64))[: config.k]
    return solution / np.linalg.norm(solution, axis=1, keepdims=True), used
