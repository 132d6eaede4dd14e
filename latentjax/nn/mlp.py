"""A multilayer perceptron with LeakyReLU between layers: the identity mapper's latent mapping and its
discriminator on w (Nitzan et al.'s `latent_mapping.py` and `discriminator.py`).

Keras's initialisers, as the reference builds them: Dense kernels Glorot-uniform, biases zero; the
last `scaled_layers` layers VarianceScaling(2 / (1 + slope²)) (fan-in, truncated normal), He's
init for a LeakyReLU of that slope. No activation after the last layer.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from latentjax.config import ConfigMixin


@dataclasses.dataclass(frozen=True)
class MLPConfig(ConfigMixin):
    in_features: int
    features: tuple[int, ...]  # each layer's width; the last is the output's
    negative_slope: float = 0.2
    scaled_layers: int = 0  # how many of the last layers take the VarianceScaling init

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(int(f) for f in self.features))
        if int(self.in_features) < 1 or not self.features or min(self.features) < 1:
            raise ValueError(f"an MLP needs in_features >= 1 and layer widths >= 1, got {self.in_features}, "
                             f"{self.features}")
        if not 0 <= self.scaled_layers <= len(self.features):
            raise ValueError(f"scaled_layers must be in [0, {len(self.features)}], got {self.scaled_layers}")


class MLPNetwork(nn.Module):
    config: MLPConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        scaled = nn.initializers.variance_scaling(2.0 / (1.0 + cfg.negative_slope ** 2), "fan_in", "truncated_normal")
        for i, width in enumerate(cfg.features):
            init = scaled if i >= len(cfg.features) - cfg.scaled_layers else nn.initializers.glorot_uniform()
            x = nn.Dense(width, kernel_init=init, name=f"dense{i}")(x)
            if i < len(cfg.features) - 1:
                x = nn.leaky_relu(x, cfg.negative_slope)
        return x


class MLP:
    """An MLP: a config, params and a pure `apply(params, x [N, in_features]) -> [N, features[-1]]`."""

    def __init__(self, config: MLPConfig, params):
        self.config = config
        self.params = params
        self._net = MLPNetwork(config)

    def __repr__(self):
        return f"MLP({self.config.in_features} -> {' -> '.join(map(str, self.config.features))})"

    @classmethod
    def init(cls, config: MLPConfig, key) -> "MLP":
        return cls(config, MLPNetwork(config).init(key, jnp.zeros((1, config.in_features), jnp.float32))["params"])

    def apply(self, params, x):
        if x.ndim != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"MLP input must be [N, {self.config.in_features}], got {tuple(x.shape)}")
        return self._net.apply({"params": params}, x.astype(jnp.float32))

    def abstract_params(self):
        return jax.eval_shape(lambda: MLP.init(self.config, jax.random.key(0)).params)
