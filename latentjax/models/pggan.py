"""Progressive GAN (PGGAN) generator as Flax modules and a pure-functional `PGGAN` wrapper.

The architecture is facebookresearch/pytorch_GAN_zoo's `GNet`, the network behind its torch.hub
`PGAN` models: pixel-normalised [z, c], a dense layer to 4x4, conv pairs per scale, toRGB with
the alpha blend of the previous scale. Weights are stored unscaled (equalised learning rate at
run time). The layer formulas and the params tree are in docs/networks.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import coerce_fields
from latentjax.ops.layers import normalize_2nd_moment
from latentjax.ops.conv2d_resample import conv2d
from latentjax.models.base import NOISE_MODES, Generator, check_compute_dtype, check_single_input, select_layers
from latentjax.models.taps import Hooks, check_hooks, tap

OUTPUT_ACTIVATIONS = ("linear", "tanh")


@dataclasses.dataclass(frozen=True)
class PGGANConfig:
    """Everything that defines the architecture; serialisable to JSON, hashable for `jit`.

    `channels[i]` is the width of the scale at resolution 4 * 2**i (the reference's
    `depthScale0` followed by `depthOtherScales`). `alpha` blends the previous scale's image
    into the output (the reference's progressive-growing factor; 0 = no blending).
    """

    z_dim: int
    channels: tuple[int, ...]
    c_dim: int = 0
    img_channels: int = 3
    leaky_relu_slope: float = 0.2
    pixel_norm: bool = True
    equalized_lr: bool = True
    alpha: float = 0.0
    output_activation: str = "linear"

    def __post_init__(self):
        if self.z_dim <= 0:
            raise ValueError(f"z_dim must be positive, got {self.z_dim}")
        if self.c_dim < 0:
            raise ValueError(f"c_dim must be >= 0, got {self.c_dim}")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ValueError(f"channels must list at least one positive width, got {self.channels}")
        if self.img_channels <= 0:
            raise ValueError(f"img_channels must be positive, got {self.img_channels}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not (isinstance(self.leaky_relu_slope, (int, float, np.integer, np.floating))
                and np.isfinite(self.leaky_relu_slope)):
            raise ValueError(f"leaky_relu_slope must be a finite number, got {self.leaky_relu_slope!r}")
        if self.alpha > 0 and len(self.channels) < 2:
            raise ValueError("alpha > 0 blends with the previous scale, so it needs at least two scales")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {self.output_activation!r}")

    @property
    def latent_dim(self) -> int:
        """Width of the network input [z, c]."""
        return self.z_dim + self.c_dim

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        return tuple(4 * 2 ** i for i in range(len(self.channels)))

    @property
    def img_resolution(self) -> int:
        return self.block_resolutions[-1]

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the intermediate features `PGGAN.features` returns, in compute order."""
        names = ["b4.fc"]
        for res in self.block_resolutions:
            if res > 4:
                names.append(f"b{res}.conv0")
            names += [f"b{res}", f"b{res}.img"]
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PGGANConfig":
        return cls(**coerce_fields(cls, d, "PGGAN config"))


def _he_constant(fan_in: int, equalized: bool) -> float:
    return float(np.sqrt(2.0 / fan_in)) if equalized else 1.0


def _init_std(shape, equalized: bool) -> float:
    """Std of freshly drawn weights: N(0, 1) under equalised lr (the reference's init), else He-normal."""
    return 1.0 if equalized else float(np.sqrt(2.0 / np.prod(shape[:-1])))


def _weight_init(equalized: bool):
    return lambda key, shape: jax.random.normal(key, shape, jnp.float32) * _init_std(shape, equalized)


class EqualizedDense(nn.Module):
    """(x @ W + b) * c, with c the He constant when `equalized` (bias included)."""

    features: int
    equalized: bool

    @nn.compact
    def __call__(self, x, compute_dtype=jnp.float32):
        fan_in = x.shape[-1]
        weight = self.param("weight", _weight_init(self.equalized), (fan_in, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        y = jnp.matmul(x.astype(compute_dtype), weight.astype(compute_dtype), preferred_element_type=jnp.float32)
        return (y + bias) * _he_constant(fan_in, self.equalized)


class EqualizedConv(nn.Module):
    """Same-padded k x k convolution, (conv(x, W) + b) * c, with c as in `EqualizedDense`."""

    features: int
    kernel_size: int
    equalized: bool

    @nn.compact
    def __call__(self, x, compute_dtype=jnp.float32):
        k = self.kernel_size
        fan_in = x.shape[-1] * k * k
        weight = self.param("weight", _weight_init(self.equalized), (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        y = conv2d(x.astype(compute_dtype), weight, padding=(k // 2, k // 2)).astype(jnp.float32)
        return (y + bias) * _he_constant(fan_in, self.equalized)


def upsample_nearest(x, factor: int = 2):
    """Nearest-neighbour upsampling of NHWC images (the reference's `Upscale2d`)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class PGGANScale(nn.Module):
    """One resolution: (dense to 4x4 + conv) or (upsample + two convs), and its toRGB."""

    resolution: int
    config: PGGANConfig

    @nn.compact
    def __call__(self, x, compute_dtype=jnp.float32, hooks=None):
        cfg = self.config
        width = cfg.channels[cfg.block_resolutions.index(self.resolution)]
        norm = normalize_2nd_moment if cfg.pixel_norm else (lambda v: v)

        def conv(v, name):
            v = EqualizedConv(width, 3, cfg.equalized_lr, name=name)(v, compute_dtype)
            return norm(nn.leaky_relu(v, cfg.leaky_relu_slope))

        name = f"b{self.resolution}"
        features = {}
        if self.resolution == 4:
            x = EqualizedDense(16 * width, cfg.equalized_lr, name="fc")(x, compute_dtype)
            x = nn.leaky_relu(x, cfg.leaky_relu_slope)
            x = norm(x.reshape(x.shape[0], width, 4, 4).transpose(0, 2, 3, 1))  # channel-major view, to NHWC
            x = tap(features, hooks, f"{name}.fc", x)
            x = conv(x, "conv")
        else:
            x = conv(upsample_nearest(x), "conv0")
            x = tap(features, hooks, f"{name}.conv0", x)
            x = conv(x, "conv1")
        x = tap(features, hooks, name, x)
        tap(features, hooks, f"{name}.img",
            EqualizedConv(cfg.img_channels, 1, cfg.equalized_lr, name="torgb")(x, compute_dtype))
        return x, features


class PGGANGenerator(nn.Module):
    """Raw latent [N, z_dim + c_dim] -> image [N, H, W, C] and the per-scale features."""

    config: PGGANConfig

    @nn.compact
    def __call__(self, latent, compute_dtype=jnp.float32, hooks=None):
        cfg = self.config
        x = normalize_2nd_moment(latent) if cfg.pixel_norm else latent
        features = {}
        for res in cfg.block_resolutions:
            x, scale_features = PGGANScale(res, cfg, name=f"b{res}")(x, compute_dtype, hooks)
            features.update(scale_features)
        resolutions = cfg.block_resolutions
        img = features[f"b{resolutions[-1]}.img"]
        if cfg.alpha > 0:
            previous = upsample_nearest(features[f"b{resolutions[-2]}.img"])
            img = cfg.alpha * previous + (1.0 - cfg.alpha) * img
        if cfg.output_activation == "tanh":
            img = jnp.tanh(img)
        return img, features


class PGGAN(Generator):
    """A Progressive GAN generator: a config, a params pytree, and pure functions of (params, inputs).

    Inputs are the raw noise z [N, z_dim] (normalised inside the network, as the reference
    does) and, for class-conditional models, the category vector c [N, c_dim] that the
    reference concatenates after z. Images are NHWC in the source model's value range.
    There is no truncation: the reference defines none, and scaling z would be undone by
    the network's own normalisation, so `truncation_psi` must stay 1.
    """

    family = "pggan"

    def __init__(self, config: PGGANConfig, params, metadata: dict | None = None):
        super().__init__(config, params, metadata)
        self._network = PGGANGenerator(config)

    def __repr__(self):
        cfg = self.config
        return (f"PGGAN({cfg.img_resolution}x{cfg.img_resolution}x{cfg.img_channels}, z_dim={cfg.z_dim}, "
                f"c_dim={cfg.c_dim}, channels={list(cfg.channels)}, alpha={cfg.alpha})")

    # --- construction -------------------------------------------------------------------
    @classmethod
    def init(cls, config: PGGANConfig, key) -> "PGGAN":
        """A generator with freshly drawn weights (the modules' initialisers' distributions, zero biases).

        All weights come from one normal draw, split by leaf: one RNG call compiles far faster
        than one per parameter.
        """
        leaves, treedef = jax.tree_util.tree_flatten_with_path(cls._abstract(config))
        is_weight = [path[-1].key == "weight" for path, _ in leaves]
        sizes = [int(np.prod(leaf.shape)) if weight else 0 for (_, leaf), weight in zip(leaves, is_weight)]

        @jax.jit
        def init_params(key):
            flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
            offsets = np.cumsum([0] + sizes)
            return jax.tree.unflatten(treedef, [
                flat[start: start + size].reshape(leaf.shape) * _init_std(leaf.shape, config.equalized_lr)
                if weight else jnp.zeros(leaf.shape, jnp.float32)
                for (_, leaf), weight, start, size in zip(leaves, is_weight, offsets, sizes)])

        return cls(config, init_params(key))

    @staticmethod
    def _abstract(config: PGGANConfig):
        latent = jax.ShapeDtypeStruct((1, config.latent_dim), jnp.float32)
        return jax.eval_shape(PGGANGenerator(config).init, jax.random.key(0), latent)["params"]

    def abstract_params(self):
        """Shapes and dtypes of the params tree (no computation), e.g. for restoring checkpoints."""
        return self._abstract(self.config)

    # --- pure functions -----------------------------------------------------------------
    def features(self, params, z, c=None, layers: Sequence[str] | None = None, compute_dtype=jnp.float32,
                 hooks: Hooks | None = None):
        """Intermediate activations by name (see `layer_names`), NHWC float32, plus 'img'.

        'b{res}.img' is the raw output of that scale's toRGB layer (before blending and the
        output activation); 'img' is what `generate` returns. `hooks`: see `latentjax.models.taps`.
        """
        check_hooks(hooks, self.layer_names)
        compute_dtype = check_compute_dtype(compute_dtype)
        img, features = self._network.apply({"params": params}, self._latent(z, c), compute_dtype, hooks)
        features["img"] = img
        return select_layers(features, layers)

    def generate(self, params, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const", key=None,
                 compute_dtype=jnp.float32, hooks: Hooks | None = None):
        """The whole model: z (and c) -> image [N, H, W, C] (`hooks`: see `latentjax.models.taps`).

        `truncation_psi` must be 1 and `truncation_cutoff` None (PGGAN has no truncation);
        `noise_mode` and `key` exist for the interface shared with StyleGAN2 and change
        nothing, since PGGAN has no noise inputs.
        """
        _check_no_truncation(truncation_psi, truncation_cutoff)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        check_hooks(hooks, self.layer_names)
        compute_dtype = check_compute_dtype(compute_dtype)
        return self._network.apply({"params": params}, self._latent(z, c), compute_dtype, hooks)[0]

    def input_weight(self, params, layers=None):
        """The first (dense) layer's effective weight on the noise part of the input, [out_features, z_dim].

        He-scaled as the network applies it; rows follow the reference's (C, 4, 4) order.
        """
        check_single_input(layers)
        weight = params["b4"]["fc"]["weight"]  # (latent_dim, 16 * C0)
        return weight[: self.config.z_dim].T * _he_constant(self.config.latent_dim, self.config.equalized_lr)

    def _latent(self, z, c):
        """Check shapes and concatenate [z, c] as the reference's input vector."""
        self.check_inputs(z, c)
        if self.config.c_dim:
            return jnp.concatenate([z.astype(jnp.float32), c.astype(jnp.float32)], axis=1)
        return z.astype(jnp.float32)


def _check_no_truncation(truncation_psi, truncation_cutoff):
    if truncation_cutoff is not None:
        raise ValueError("PGGAN has no per-layer latents, so truncation_cutoff must be None")
    try:
        psi = float(truncation_psi)
    except jax.errors.ConcretizationTypeError:
        raise ValueError("PGGAN has no truncation: truncation_psi must be the Python number 1.0, not a traced "
                         "value (leave it out when jitting)") from None
    if psi != 1.0:
        raise ValueError(f"PGGAN has no truncation (the reference defines none); truncation_psi must be 1.0, "
                         f"got {psi}")
