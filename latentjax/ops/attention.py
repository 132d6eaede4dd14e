"""SAGAN self-attention on NHWC feature maps, as BigGAN uses it.

Queries come from every position, keys and values from a 2x2 max-pooled grid (4x fewer), so
the attention matrix is [H*W, H*W/4] per image. Positions are flattened row-major, which is
the reference's NCHW `view(N, C, H*W)` order. There is a single path: it is its own reference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def max_pool_2x2(x):
    """2x2 max pooling with stride 2 on NHWC `x` (H and W even)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def self_attention(x, theta, phi, g, o, gamma, compute_dtype=jnp.float32):
    """x + gamma * o(softmax(theta(x) . pool(phi(x))^T) . pool(g(x))) for x [N, H, W, C].

    theta, phi: [C, C//8]; g: [C, C//2]; o: [C//2, C] (1x1 convolutions without bias, as
    (in, out) matrices). The logits and the softmax are float32; the four projections and the
    weighted sum of values run in `compute_dtype`.
    """
    n, h, w, c = x.shape
    xc = x.astype(compute_dtype)
    query = (xc @ theta.astype(compute_dtype)).reshape(n, h * w, -1)
    key = max_pool_2x2(xc @ phi.astype(compute_dtype)).reshape(n, h * w // 4, -1)
    value = max_pool_2x2(xc @ g.astype(compute_dtype)).reshape(n, h * w // 4, -1)
    logits = jnp.einsum("nqc,nkc->nqk", query, key, preferred_element_type=jnp.float32)
    attn = jax.nn.softmax(logits, axis=-1).astype(compute_dtype)
    out = jnp.einsum("nqk,nkc->nqc", attn, value).reshape(n, h, w, -1) @ o.astype(compute_dtype)
    return x + gamma * out.astype(jnp.float32)
