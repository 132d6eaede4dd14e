"""Per-image reconstruction metrics on NHWC batches: PSNR, SSIM, MS-SSIM, LPIPS and identity similarity.

Every function compares image pairs x[i], y[i] and returns one number per pair, shape [N].
Images are float NHWC in a known range (`data_range` is its width: 2.0 for [-1, 1]).
`check_float_images` is the one convention for images given to a metric or an inversion: any
finite float dtype (bfloat16 included), nominally in [-1, 1] as generators produce them (their
own samples may overshoot a little); values far outside give a warning, not a refusal.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


FAR_OUTSIDE = 2.0  # |value| beyond which an image is probably in another convention (e.g. [0, 255])


def check_float_images(x, name: str) -> None:
    """A ValueError unless `x` holds float values, finite where they are known (outside jit); a warning
    when they reach beyond +-FAR_OUTSIDE, far from the [-1, 1] convention."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be float images (nominally in [-1, 1]), got dtype {x.dtype} "
                         "(uint8 images map by x / 127.5 - 1)")
    if isinstance(x, jax.core.Tracer):  # values are only known outside jit
        return
    values = np.asarray(x, np.float32)  # numpy, not jnp: inside a jit trace jnp would stage even constants
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} hold {int(np.sum(~np.isfinite(values)))} non-finite values (NaN or infinity)")
    lo, hi = float(values.min()), float(values.max())
    if lo < -FAR_OUTSIDE or hi > FAR_OUTSIDE:
        warnings.warn(f"{name} reach [{lo:.4g}, {hi:.4g}], far outside the generators' nominal [-1, 1]; "
                      "uint8 images map by x / 127.5 - 1", stacklevel=3)


def _check_pair(x, y, fn: str) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"{fn}: expected two image batches [N, H, W, C] of the same shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")


@jax.jit
def psnr(x, y, data_range: float = 2.0):
    """Peak signal-to-noise ratio in dB per pair: 10 log10(data_range^2 / mean squared error)."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    _check_pair(x, y, "psnr")
    mse = jnp.mean(jnp.square(x - y), axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range ** 2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The normalised 1-D Gaussian of SSIM's separable window (its outer product is the 2-D window)."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


def _filter_valid(x, g):
    """Separable 'valid' filtering of [N, H, W, C] by the 1-D window g along H, then W."""
    k = len(g)
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    x = sum(g[i] * x[:, i:i + h] for i in range(k))
    return sum(g[i] * x[:, :, i:i + w] for i in range(k))


def _ssim_and_cs(x, y, g, c1, c2):
    """Per image and channel [N, C]: SSIM and its contrast-structure term, averaged over valid positions."""
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x ** 2
    var_y = _filter_valid(y * y, g) - mu_y ** 2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    return jnp.mean(luminance * cs, axis=(1, 2)), jnp.mean(cs, axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("window", "sigma"))
def ssim(x, y, data_range: float = 2.0, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03):
    """Structural similarity (Wang et al. 2004) per pair, averaged over positions and channels.

    The standard form: an 11x11 Gaussian window of sigma 1.5 over 'valid' positions only,
    C1 = (k1 L)^2, C2 = (k2 L)^2 with L = data_range, population (not sample) covariances; the
    same numbers as scikit-image's `structural_similarity(..., gaussian_weights=True,
    use_sample_covariance=False)`.
    """
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    _check_pair(x, y, "ssim")
    if min(x.shape[1:3]) < window:
        raise ValueError(f"ssim: images of {x.shape[1]}x{x.shape[2]} are smaller than the {window}x{window} window")
    per_channel, _ = _ssim_and_cs(x, y, gaussian_window(window, sigma), (k1 * data_range) ** 2, (k2 * data_range) ** 2)
    return jnp.mean(per_channel, axis=-1)


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, five scales


def ms_ssim_weights(num_scales: int) -> tuple[float, ...]:
    """The first `num_scales` MS-SSIM weights, renormalised to sum 1: for images too small for five
    scales (a 32x32 image holds two 11x11 windows' scales)."""
    if not 1 <= num_scales <= len(MS_SSIM_WEIGHTS):
        raise ValueError(f"num_scales must be in [1, {len(MS_SSIM_WEIGHTS)}], got {num_scales}")
    head = MS_SSIM_WEIGHTS[:num_scales]
    return tuple(w / sum(head) for w in head)


@functools.partial(jax.jit, static_argnames=("weights", "window", "sigma"))
def ms_ssim(x, y, data_range: float = 2.0, weights: tuple[float, ...] = MS_SSIM_WEIGHTS, window: int = 11,
            sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
    """Multi-scale SSIM (Wang et al. 2003) per pair, as TensorFlow's `ssim_multiscale` computes it: per
    channel, the product over scales of relu(contrast-structure)^weight (the last scale: relu(SSIM)),
    images halved by 2x2 average pooling between scales; then averaged over channels. One scale per
    weight; the smallest scale must hold the window."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    _check_pair(x, y, "ms_ssim")
    smallest = -(-min(x.shape[1:3]) // 2 ** (len(weights) - 1))
    if smallest < window:
        raise ValueError(f"ms_ssim: {len(weights)} scales of {x.shape[1]}x{x.shape[2]} images end at {smallest} "
                         f"pixels, smaller than the {window}x{window} window; pass fewer weights (ms_ssim_weights)")
    g, c1, c2 = gaussian_window(window, sigma), (k1 * data_range) ** 2, (k2 * data_range) ** 2
    product = 1.0
    for i, weight in enumerate(weights):
        full, cs = _ssim_and_cs(x, y, g, c1, c2)
        last = i == len(weights) - 1
        product = product * jax.nn.relu(full if last else cs) ** weight
        if not last:
            x, y = (_halve(v) for v in (x, y))
    return jnp.mean(product, axis=-1)


def _halve(x):
    """2x2 average pooling of [N, H, W, C]; an odd last row or column is first repeated, as TensorFlow pads."""
    n, h, w, c = x.shape
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    return x.reshape(n, -(-h // 2), 2, -(-w // 2), 2, c).mean(axis=(2, 4))


def centre_weights(height: int, width: int, sigma: float) -> np.ndarray:
    """An inverse-Gaussian pixel weighting [H, W], max + min - gauss, normalised to sum 1: the centre
    counts least (Nitzan et al.'s weighted L1, sigma 80 * resolution / 256)."""
    if not (height >= 1 and width >= 1 and sigma > 0):
        raise ValueError(f"centre_weights needs a size >= 1 and sigma > 0, got {height}x{width}, sigma {sigma}")
    r2 = ((np.arange(height) - (height - 1) / 2)[:, None] ** 2 + (np.arange(width) - (width - 1) / 2)[None] ** 2)
    gauss = np.exp(-r2 / (2 * sigma ** 2))
    mask = gauss.max() + gauss.min() - gauss
    return (mask / mask.sum()).astype(np.float32)


def identity_similarity(embed: Callable, x, y):
    """Cosine similarity of `embed(x)` and `embed(y)` per pair.

    `embed` maps an image batch [N, H, W, C] to embeddings [N, D], e.g. a face-recognition
    network; it is the caller's, because identity models are not part of latentjax.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    _check_pair(x, y, "identity_similarity")
    ex, ey = jnp.asarray(embed(x), jnp.float32), jnp.asarray(embed(y), jnp.float32)
    if ex.ndim != 2 or ex.shape != ey.shape or ex.shape[0] != x.shape[0]:
        raise ValueError(f"identity_similarity: embed must return [N, D] embeddings for N = {x.shape[0]}, "
                         f"got {tuple(ex.shape)} and {tuple(ey.shape)}")
    unit = lambda e: e / jnp.linalg.norm(e, axis=-1, keepdims=True)
    return jnp.sum(unit(ex) * unit(ey), axis=-1)


def image_metrics(x, y, *, lpips=None, embed: Callable | None = None, data_range: float = 2.0) -> dict:
    """{'psnr', 'ssim'[, 'lpips'][, 'identity']}: per-pair numbers for images in [-1, 1].

    Both batches are clipped to [-1, 1] first, as saving them as pictures would; LPIPS needs RGB
    images of at least 16x16, SSIM at least 11x11 (smaller images leave that metric out).
    """
    x = jnp.clip(jnp.asarray(x, jnp.float32), -1.0, 1.0)
    y = jnp.clip(jnp.asarray(y, jnp.float32), -1.0, 1.0)
    out = {"psnr": psnr(x, y, data_range)}
    if min(x.shape[1:3]) >= 11:
        out["ssim"] = ssim(x, y, data_range)
    if lpips is not None:
        out["lpips"] = _lpips_distance(lpips, rgb(x), rgb(y))
    if embed is not None:
        out["identity"] = identity_similarity(embed, x, y)
    return out


_lpips_distance = jax.jit(lambda model, x, y: model(x, y))


def rgb(images):
    """Grayscale [N, H, W, 1] repeated to 3 channels (RGB images unchanged), for RGB-only networks."""
    return jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
