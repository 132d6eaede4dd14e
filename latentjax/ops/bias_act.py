"""Bias, activation, gain and clamp in one function, with the reference's default gains.

XLA fuses these element-wise steps by itself, so unlike the CUDA reference there is a single
path here: it is its own reference.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Activation(NamedTuple):
    func: Callable
    default_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, alpha: x, 1.0),
    "relu": Activation(lambda x, alpha: jax.nn.relu(x), float(np.sqrt(2))),
    "lrelu": Activation(lambda x, alpha: jnp.where(x >= 0, x, x * alpha), float(np.sqrt(2))),
    "tanh": Activation(lambda x, alpha: jnp.tanh(x), 1.0),
    "sigmoid": Activation(lambda x, alpha: jax.nn.sigmoid(x), 1.0),
    "elu": Activation(lambda x, alpha: jax.nn.elu(x), 1.0),
    "selu": Activation(lambda x, alpha: jax.nn.selu(x), 1.0),
    "softplus": Activation(lambda x, alpha: jax.nn.softplus(x), 1.0),
    "swish": Activation(lambda x, alpha: jax.nn.sigmoid(x) * x, float(np.sqrt(2))),
}
LRELU_SLOPE = 0.2


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return name


def bias_act(x, b=None, act: str = "linear", alpha: float = LRELU_SLOPE, gain: float | None = None,
             clamp: float | None = None):
    """act(x + b) * gain, then clamp to [-clamp, clamp]; `b` broadcasts over the last axis.

    `gain=None` uses the activation's default gain (sqrt(2) for ReLU-like ones), as the reference.
    """
    activation = ACTIVATIONS[check_activation(act)]
    if b is not None:
        x = x + b.astype(x.dtype)
    x = activation.func(x, alpha)
    g = activation.default_gain if gain is None else gain
    if g != 1:
        x = x * jnp.asarray(g, x.dtype)
    if clamp is not None:
        x = jnp.clip(x, -clamp, clamp)
    return x
