"""Layers shared by several networks: StyleGAN's equalised-learning-rate dense layer and pixel norm."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.ops.bias_act import bias_act


def normalize_2nd_moment(x, eps: float = 1e-8):
    """x * rsqrt(mean(x^2) + eps) over the feature axis (StyleGAN's pixel norm of z). Where mean(x^2)
    overflows, the same on x divided by its largest magnitude (z = 1e30 gives the image of z = 1,
    not of z = 0); elsewhere the reference's formula, to the bit. The result does not depend on the
    divisor, so no gradient flows through it (the max's gradient, 0/0 where the compiled max and the
    compiled |x| disagree in the last bit, would otherwise leak NaN through the branch not taken)."""
    mean_square = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
    scale = jax.lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), jnp.finfo(jnp.float32).tiny))
    y = x / scale
    rescaled = y * jax.lax.rsqrt(jnp.mean(jnp.square(y), axis=-1, keepdims=True) + eps / jnp.square(scale))
    return jnp.where(jnp.isfinite(mean_square), x * jax.lax.rsqrt(mean_square + eps), rescaled)


def normal_init(scale: float = 1.0):
    return lambda key, shape: jax.random.normal(key, shape, jnp.float32) * scale


class FullyConnected(nn.Module):
    """Dense layer with equalised learning rate: stored weights are scaled by lr/sqrt(fan_in)."""

    features: int
    activation: str = "linear"
    lr_multiplier: float = 1.0
    bias_init: float = 0.0

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        weight = self.param("weight", normal_init(1.0 / self.lr_multiplier), (fan_in, self.features))
        bias = self.param("bias", lambda k, s: jnp.full(s, self.bias_init, jnp.float32), (self.features,))
        x = x @ (weight * (self.lr_multiplier / np.sqrt(fan_in)))
        return bias_act(x, bias * self.lr_multiplier, act=self.activation)
