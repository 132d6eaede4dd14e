"""StyleGAN2's modulated convolution with weight demodulation (NHWC, HWIO).

Each sample gets its own kernel w[kh, kw, i, o] * s[i], normalised per output channel by
rsqrt(sum_{kh,kw,i} (w * s)^2 + 1e-8). `impl='ref'` builds those per-sample kernels and runs
one convolution per sample, exactly as the reference's fused path. `impl='fast'` scales the
activations instead (x * s before a shared convolution, * demodulation after): the same
linear map, one batched convolution, and far cheaper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from latentjax.ops.conv2d_resample import conv2d_resample

DEMOD_EPS = 1e-8


def demodulation_coefficients(weight, styles):
    """rsqrt(sum_{kh,kw,i} (w * s)^2 + eps) as [N, O], computed in float32."""
    weight = weight.astype(jnp.float32)
    styles = styles.astype(jnp.float32)
    wsq = jnp.sum(jnp.square(weight), axis=(0, 1))  # [I, O]
    return jax.lax.rsqrt(jnp.square(styles) @ wsq + DEMOD_EPS)


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, padding: int = 0,
                     resample_filter=None, demodulate: bool = True, flip_weight: bool = True,
                     compute_dtype=jnp.float32, impl: str = "fast"):
    """x [N, H, W, I], weight [kh, kw, I, O], styles [N, I] -> [N, H', W', O] in float32.

    `noise` (broadcastable to the output) is added after demodulation. Convolutions run in
    `compute_dtype`; styles and demodulation coefficients stay float32.
    """
    n, _, _, in_channels = x.shape
    kh, kw, wi, _ = weight.shape
    if wi != in_channels or styles.shape != (n, in_channels):
        raise ValueError(f"modulated_conv2d: x {x.shape}, weight {weight.shape} and styles "
                         f"{styles.shape} disagree (expected x [N,H,W,I], weight [kh,kw,I,O], styles [N,I])")
    styles = styles.astype(jnp.float32)
    resample = dict(f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
    if impl == "fast":
        x = (x.astype(jnp.float32) * styles[:, None, None, :]).astype(compute_dtype)
        x = conv2d_resample(x, weight.astype(compute_dtype), **resample).astype(jnp.float32)
        if demodulate:
            x = x * demodulation_coefficients(weight, styles)[:, None, None, :]
    elif impl == "ref":
        w = weight.astype(jnp.float32)[None] * styles[:, None, None, :, None]  # [N, kh, kw, I, O]
        if demodulate:
            w = w * jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3), keepdims=True) + DEMOD_EPS)
        per_sample = lambda xi, wi: conv2d_resample(xi[None], wi, impl="ref", **resample)[0]
        x = jax.vmap(per_sample)(x.astype(compute_dtype), w.astype(compute_dtype)).astype(jnp.float32)
    else:
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    if noise is not None:
        x = x + noise
    return x
