"""Perceptual path length (Karras et al., StyleGAN, `metrics/perceptual_path_length.py`).

For pairs of latents, the perceptual distance between the images at interpolation points t and
t + epsilon, divided by epsilon^2: in 'z' the latents are interpolated spherically (slerp of the
normalised vectors), in 'w' linearly (lerp of mapped samples); t ~ U(0, 1) (`sampling='full'`) or
t = 0 ('end'). Images decode with constant noise, are optionally cropped to the face region
(`crop`: rows 3/8 to 7/8, columns 2/8 to 6/8, as StyleGAN's face metric), box-downsampled to 256 when
larger, and compared by `distance` (an LPIPS model from `latentjax.metrics.load_lpips`, the
reference's distance, or any jittable (x, y) -> [N] on images in [-1, 1]). The result is the mean
of the distances between their 1st ('lower') and 99th ('higher') percentiles. Defaults: 100,000
samples, epsilon 1e-4, 'w', 'end', no crop: StyleGAN2's `ppl2_wend`; `space='z', sampling='full',
crop=True` is StyleGAN's `ppl_zfull`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.latent import latent_space
from latentjax.progress import Progress

SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


def _normalize(v):
    return v / jnp.sqrt(jnp.sum(jnp.square(v), axis=-1, keepdims=True))


def slerp(a, b, t):
    """Spherical interpolation of the directions of a and b [N, D] at t [N, 1] (unit-norm result)."""
    a, b = _normalize(a), _normalize(b)
    d = jnp.sum(a * b, axis=-1, keepdims=True)
    p = t * jnp.arccos(d)
    c = _normalize(b - d * a)
    return _normalize(a * jnp.cos(p) + c * jnp.sin(p))


def prepare_images(images, crop: bool):
    """The reference's view of NHWC images: the face crop if asked, then a box downsample to 256."""
    if crop:
        c = images.shape[1] // 8
        images = images[:, 3 * c:7 * c, 2 * c:6 * c]
    if images.shape[1] > 256:
        f = images.shape[1] // 256
        n, h, w, ch = images.shape
        images = images.reshape(n, h // f, f, w // f, f, ch).mean(axis=(2, 4))
    return images


def path_distances(space, params, distance, key, batch: int, *, sampling: str = "end", epsilon: float = 1e-4,
                   crop: bool = False):
    """Distances [batch] / epsilon^2 for `batch` latent pairs of `space` ('z': slerp; other: lerp)."""
    k_lat, k_t = jax.random.split(key)
    lat = space.sample(k_lat, 2 * batch, params)
    lat0, lat1 = lat[0::2], lat[1::2]
    t = jax.random.uniform(k_t, (batch,)) if sampling == "full" else jnp.zeros((batch,))
    t = t.reshape((batch,) + (1,) * (lat0.ndim - 1))
    if space.name == "z":
        e0, e1 = slerp(lat0, lat1, t), slerp(lat0, lat1, t + epsilon)
    else:
        e0, e1 = lat0 + (lat1 - lat0) * t, lat0 + (lat1 - lat0) * (t + epsilon)
    images = prepare_images(space.decode(params, jnp.concatenate([e0, e1])), crop)
    return distance(images[:batch], images[batch:]) / epsilon ** 2


def _as_argument(distance) -> bool:
    """Whether `distance` is a pytree of arrays (an LPIPS model) that a jitted function can take as input."""
    leaves = jax.tree_util.tree_leaves(distance)
    return bool(leaves) and all(isinstance(x, (jax.Array, np.ndarray)) for x in leaves)


def filtered_mean(distances) -> float:
    """The mean of the distances between their 1st percentile ('lower') and 99th ('higher')."""
    distances = np.asarray(distances, np.float64)
    lo = np.percentile(distances, 1, method="lower")
    hi = np.percentile(distances, 99, method="higher")
    return float(np.mean(distances[(lo <= distances) & (distances <= hi)]))


def ppl(generator, *, distance, key, space: str = "w", sampling: str = "end", num_samples: int = 100_000,
        epsilon: float = 1e-4, crop: bool = False, batch_size: int = 32, progress: bool = True,
        **space_options) -> float:
    """The perceptual path length of `generator` (see the module docstring); `space_options` go to
    `latent_space` (e.g. `class_index`)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    if not callable(distance):
        raise ValueError(f"distance must be an LPIPS model (latentjax.metrics.load_lpips) or a function (x, y) -> [N], "
                         f"got {type(distance).__name__}")
    lat_space = latent_space(generator, space, **space_options)
    options = dict(sampling=sampling, epsilon=float(epsilon), crop=bool(crop))
    if _as_argument(distance):
        step = jax.jit(lambda p, d, k: path_distances(lat_space, p, d, k, batch_size, **options))
        run = lambda k: step(generator.params, distance, k)  # noqa: E731
    else:
        step = jax.jit(lambda p, k: path_distances(lat_space, p, distance, k, batch_size, **options))
        run = lambda k: step(generator.params, k)  # noqa: E731
    distances = []
    with Progress(num_samples, "path length", "pairs", enabled=None if progress else False) as bar:
        for i in range(-(-num_samples // batch_size)):
            distances.append(np.asarray(run(jax.random.fold_in(key, i))))
            bar.update(min(batch_size, num_samples - i * batch_size))
    return filtered_mean(np.concatenate(distances)[:num_samples])
