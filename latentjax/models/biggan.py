"""BigGAN-deep generator as Flax modules and a pure-functional `BigGAN` wrapper.

The architecture is pytorch-pretrained-BigGAN 0.1.1's (a port of the TF-Hub modules): a class
embedding beside z feeds a linear layer and every conditional batch norm, bottleneck GenBlocks,
one self-attention layer, a final batch norm and a conv to RGB. Batch-norm statistics are
selected by the truncation value (`latentjax.ops.batch_norm`), which does not scale z
(`BigGAN.sample_z` draws it). Weights are the effective ones (spectral norm resolved at
conversion). Layouts and the params tree are in docs/networks.md.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import coerce_fields
from latentjax.models.base import Generator, check_compute_dtype, check_single_input
from latentjax.models.taps import Hooks, check_hooks, tap
from latentjax.ops.attention import self_attention
from latentjax.ops.batch_norm import batch_norm, check_truncation, select_statistics, statistics_weights
from latentjax.ops.conv2d_resample import conv2d

# biggan-deep-128 (the reference's default config): (upsample, in multiplier, out multiplier)
DEEP_128_LAYERS = ((False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
                   (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1))
GEN_Z_MULTIPLIER = 16  # gen_z's width is 4*4*16*channel_width in the reference, whatever `layers` says
IMG_CHANNELS = 3
TRUNCATION_BOUND = 2.0  # z ~ truncation * N(0, 1) truncated to [-2, 2], as `truncated_noise_sample`


@dataclasses.dataclass(frozen=True)
class BigGANConfig:
    """The reference's `config.json`, field for field (defaults: biggan-deep-128).

    `layers[i] = (upsample, in, out)` gives GenBlock i's widths as multiples of `channel_width`.
    The self-attention layer runs before GenBlock `attention_layer_position` (none if that index
    is outside `layers`). `class_embed_dim` and `output_dim` are kept as metadata: the reference
    reads neither (the class embedding has `z_dim` features; the resolution follows `layers`).
    """

    output_dim: int = 128
    z_dim: int = 128
    class_embed_dim: int = 128
    channel_width: int = 128
    num_classes: int = 1000
    layers: tuple[tuple[bool, int, int], ...] = DEEP_128_LAYERS
    attention_layer_position: int = 8
    eps: float = 1e-4
    n_stats: int = 51

    def __post_init__(self):
        for name in ("z_dim", "channel_width", "num_classes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_stats < 2:
            raise ValueError(f"n_stats must be at least 2, got {self.n_stats}")
        if not 0 < self.eps < np.inf:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps}")
        if self.output_dim <= 0 or self.class_embed_dim <= 0:
            raise ValueError(f"output_dim and class_embed_dim must be positive, got {self.output_dim}, "
                             f"{self.class_embed_dim}")
        if not self.layers:
            raise ValueError("layers must list at least one GenBlock")
        for i, layer in enumerate(self.layers):
            if len(layer) != 3 or not all(isinstance(v, (bool, int, np.integer)) for v in layer) or min(layer[1:]) <= 0:
                raise ValueError(f"layers[{i}] must be (upsample, in, out) with positive widths, got {layer!r}")
        ch = self.channel_width
        if self.layers[0][1] != GEN_Z_MULTIPLIER:
            raise ValueError(f"layers[0] must take {GEN_Z_MULTIPLIER} * channel_width inputs (gen_z's fixed width), "
                             f"got multiplier {self.layers[0][1]}")
        for i, (prev, layer) in enumerate(zip(self.layers, self.layers[1:])):
            if prev[2] != layer[1]:
                raise ValueError(f"layers[{i}] outputs {prev[2]} * channel_width but layers[{i + 1}] takes {layer[1]}")
        for i, (c_in, c_out) in enumerate(self.block_channels):
            if c_out not in (c_in, c_in // 2) or c_in < 4:
                raise ValueError(f"layers[{i}]: a GenBlock maps C to C or C//2 channels (C >= 4), "
                                 f"got {c_in} -> {c_out}")
        if self.layers[-1][2] != 1 or ch < IMG_CHANNELS:
            raise ValueError(f"the last GenBlock must output channel_width >= {IMG_CHANNELS} channels (multiplier 1), "
                             f"got multiplier {self.layers[-1][2]} and channel_width {ch}")
        if self.has_attention and self.block_channels[self.attention_layer_position][0] < 8:
            raise ValueError("the self-attention layer needs at least 8 channels")

    @property
    def block_channels(self) -> tuple[tuple[int, int], ...]:
        """(in, out) channels of every GenBlock."""
        return tuple((self.channel_width * a, self.channel_width * b) for _, a, b in self.layers)

    @property
    def has_attention(self) -> bool:
        return 0 <= self.attention_layer_position < len(self.layers)

    @property
    def cond_dim(self) -> int:
        """Width of concat([z, class embedding]), the input of gen_z and of every conditional BN."""
        return 2 * self.z_dim

    @property
    def img_resolution(self) -> int:
        return 4 * 2 ** sum(bool(up) for up, _, _ in self.layers)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the intermediate features `BigGAN.features` returns, in compute order."""
        names = ["gen_z"]
        for i in range(len(self.layers)):
            if i == self.attention_layer_position:
                names.append("attention")
            names.append(f"block{i}")
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = [list(layer) for layer in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BigGANConfig":
        if isinstance(d, Mapping):
            fields = {f.name for f in dataclasses.fields(cls)}
            unknown, missing = sorted(set(d) - fields, key=str), sorted(fields - set(d))
            if unknown or missing:
                raise ValueError(f"BigGAN config: unknown keys {unknown}, missing keys {missing}; "
                                 f"expected exactly {sorted(fields)}")
        return cls(**coerce_fields(cls, d, "BigGAN config"))


def class_vector(labels, num_classes: int, weights=None):
    """Class vectors [N, num_classes] from labels [N] (one-hot) or [N, K] (mixtures).

    A mixture row is `sum_k weights[n, k] * onehot(labels[n, k])`; `weights=None` weighs the K
    labels equally. Weights are used as given (not normalised). Jittable; concrete labels are
    range-checked.
    """
    labels = jnp.asarray(labels)
    if not isinstance(labels, jax.core.Tracer) and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from {labels.min()} to {labels.max()}")
    if labels.ndim == 1:
        if weights is not None:
            raise ValueError("weights apply to mixtures: give labels of shape [N, K] with weights [N, K]")
        return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape [N] or [N, K], got {labels.shape}")
    if weights is None:
        weights = jnp.full(labels.shape, 1.0 / labels.shape[1], jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    if weights.shape != labels.shape:
        raise ValueError(f"weights must have the shape of labels {labels.shape}, got {weights.shape}")
    return jnp.einsum("nk,nkc->nc", weights, jax.nn.one_hot(labels, num_classes, dtype=jnp.float32))


# The modules only declare parameter shapes; `init_params` draws the values (one jitted random
# draw for the whole tree: per-parameter random initialisers make XLA compile for minutes).
_declare = nn.initializers.zeros_init()


class Dense(nn.Module):
    """x @ weight (+ bias); weight [in, out]."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x, compute_dtype=jnp.float32):
        weight = self.param("weight", _declare, (x.shape[-1], self.features))
        y = (x.astype(compute_dtype) @ weight.astype(compute_dtype)).astype(jnp.float32)
        if self.use_bias:
            y = y + self.param("bias", _declare, (self.features,))
        return y


class Conv(nn.Module):
    """Stride-1 'same' convolution with bias; weight HWIO (1x1 as a matrix product)."""

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, x, compute_dtype=jnp.float32):
        k = self.kernel_size
        weight = self.param("weight", _declare, (k, k, x.shape[-1], self.features)).astype(compute_dtype)
        bias = self.param("bias", _declare, (self.features,))
        x = x.astype(compute_dtype)
        y = x @ weight[0, 0] if k == 1 else conv2d(x, weight, padding=(k // 2, k // 2))
        return y.astype(jnp.float32) + bias


class ConditionalBatchNorm(nn.Module):
    """Tabled statistics, gain 1 + cond @ scale and bias cond @ offset (per sample)."""

    n_stats: int
    eps: float

    @nn.compact
    def __call__(self, x, cond, stat_weights):
        c = x.shape[-1]
        means = self.param("running_means", _declare, (self.n_stats, c))
        variances = self.param("running_vars", _declare, (self.n_stats, c))
        gain = 1.0 + Dense(c, use_bias=False, name="scale")(cond)
        bias = Dense(c, use_bias=False, name="offset")(cond)
        return batch_norm(x, select_statistics(means, stat_weights), select_statistics(variances, stat_weights),
                          gain[:, None, None, :], bias[:, None, None, :], self.eps)


class BatchNorm(nn.Module):
    """Tabled statistics with a learned per-channel gain and bias (the final, unconditional BN)."""

    n_stats: int
    eps: float

    @nn.compact
    def __call__(self, x, stat_weights):
        c = x.shape[-1]
        means = self.param("running_means", _declare, (self.n_stats, c))
        variances = self.param("running_vars", _declare, (self.n_stats, c))
        weight = self.param("weight", _declare, (c,))
        bias = self.param("bias", _declare, (c,))
        return batch_norm(x, select_statistics(means, stat_weights), select_statistics(variances, stat_weights),
                          weight, bias, self.eps)


def upsample_nearest_2x(x):
    n, h, w, c = x.shape
    return jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c)).reshape(n, 2 * h, 2 * w, c)


class GenBlock(nn.Module):
    """Bottleneck residual block: 4 x (BN, ReLU, conv) with widths C -> C/4 -> C/4 -> C/4 -> out.

    The shortcut keeps the first out channels (out = C or C/2) and is upsampled like the
    main path, by nearest neighbour before conv_1.
    """

    out_channels: int
    upsample: bool
    config: BigGANConfig

    @nn.compact
    def __call__(self, x, cond, stat_weights, compute_dtype=jnp.float32):
        cfg = self.config
        middle = x.shape[-1] // 4
        h = x
        for k, (features, kernel) in enumerate(((middle, 1), (middle, 3), (middle, 3), (self.out_channels, 1))):
            h = ConditionalBatchNorm(cfg.n_stats, cfg.eps, name=f"bn_{k}")(h, cond, stat_weights)
            h = jax.nn.relu(h)
            if k == 1 and self.upsample:
                h = upsample_nearest_2x(h)
            h = Conv(features, kernel, name=f"conv_{k}")(h, compute_dtype)
        skip = x[..., :self.out_channels]
        if self.upsample:
            skip = upsample_nearest_2x(skip)
        return h + skip


class SelfAttention(nn.Module):
    """Self-attention with 1x1 projections theta, phi (C/8), g (C/2), o_conv (back to C) and gain gamma."""

    @nn.compact
    def __call__(self, x, compute_dtype=jnp.float32):
        c = x.shape[-1]
        widths = {"theta": (c, c // 8), "phi": (c, c // 8), "g": (c, c // 2), "o_conv": (c // 2, c)}
        w = {name: self.param(name, _declare, (1, 1, c_in, c_out))[0, 0] for name, (c_in, c_out) in widths.items()}
        gamma = self.param("gamma", _declare, ())
        return self_attention(x, w["theta"], w["phi"], w["g"], w["o_conv"], gamma, compute_dtype)


class BigGANGenerator(nn.Module):
    """(z, class vector, statistics weights) -> image [N, H, W, 3] in [-1, 1] and the features by name.

    With `until`, stops after that feature (the later layers are neither run nor needed).
    """

    config: BigGANConfig

    @nn.compact
    def __call__(self, z, c, stat_weights, compute_dtype=jnp.float32, until: str | None = None, hooks=None):
        cfg = self.config
        features = {}
        embed = Dense(cfg.z_dim, use_bias=False, name="embeddings")(c.astype(jnp.float32))
        cond = jnp.concatenate([z.astype(jnp.float32), embed], axis=1)
        # The reference reshapes gen_z's output as (N, 4, 4, C): TF's NHWC order, which is ours.
        x = Dense(4 * 4 * GEN_Z_MULTIPLIER * cfg.channel_width, name="gen_z")(cond, compute_dtype)
        x = tap(features, hooks, "gen_z", x.reshape(x.shape[0], 4, 4, GEN_Z_MULTIPLIER * cfg.channel_width))
        if until == "gen_z":
            return None, features
        for i, ((upsample, _, _), (_, c_out)) in enumerate(zip(cfg.layers, cfg.block_channels)):
            if i == cfg.attention_layer_position:
                x = tap(features, hooks, "attention", SelfAttention(name="attention")(x, compute_dtype))
                if until == "attention":
                    return None, features
            x = tap(features, hooks, f"block{i}",
                    GenBlock(c_out, bool(upsample), cfg, name=f"block{i}")(x, cond, stat_weights, compute_dtype))
            if until == f"block{i}":
                return None, features
        x = jax.nn.relu(BatchNorm(cfg.n_stats, cfg.eps, name="bn")(x, stat_weights))
        img = jnp.tanh(Conv(IMG_CHANNELS, 3, name="conv_to_rgb")(x, compute_dtype))
        return img, features


@functools.lru_cache(maxsize=16)
def _abstract_params(config: BigGANConfig):
    """Tracing the modules takes about a second; loaders and the native format call this repeatedly."""
    z, c = jnp.zeros((1, config.z_dim)), jnp.zeros((1, config.num_classes))
    stat_weights = statistics_weights(jnp.float32(1.0), config.n_stats)
    return jax.eval_shape(lambda: BigGANGenerator(config).init(jax.random.key(0), z, c, stat_weights)["params"])


@functools.partial(jax.jit, static_argnums=1)
def _standard_normal(key, size: int):
    return jax.random.normal(key, (size,), jnp.float32)


def init_params(config: BigGANConfig, key):
    """Random params for `config`: weights Gaussian with spectral norm about 1, like spectrally
    normalised weights (an m x n Gaussian matrix of std s has largest singular value about
    s (sqrt(m) + sqrt(n))); zero biases; the reference's initial statistics tables (means 0,
    variances 1), final BN gain 1 and attention gain gamma 0. Deterministic in `key`."""
    leaves = jax.tree_util.tree_leaves_with_path(_abstract_params(config))
    noise = np.asarray(_standard_normal(key, sum(leaf.size for _, leaf in leaves)))
    values, offset = [], 0
    for path, leaf in leaves:
        names = tuple(p.key for p in path)
        if names[-1] == "running_vars" or names == ("bn", "weight"):
            value = np.ones(leaf.shape, np.float32)
        elif names[-1] in ("bias", "running_means", "gamma"):
            value = np.zeros(leaf.shape, np.float32)
        else:
            fan_in, fan_out = int(np.prod(leaf.shape[:-1])), leaf.shape[-1]
            scale = np.float32(1 / (np.sqrt(fan_in) + np.sqrt(fan_out)))
            value = noise[offset: offset + leaf.size].reshape(leaf.shape) * scale
            offset += leaf.size
        values.append(value)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(_abstract_params(config)), values)


class BigGAN(Generator):
    """A BigGAN-deep generator: a config, a params pytree, and pure functions of (params, inputs).

    Every entry point takes `params` first, has no hidden state, and works under `jit`, `vmap`
    and `grad` (w.r.t. z, the class vector and params). Images are NHWC in [-1, 1] (tanh).

    `truncation_psi` is the reference's truncation: it selects the batch-norm statistics and
    does not scale z (draw z with `sample_z(key, n, truncation)`). A Python float follows the
    reference exactly; a traced value (e.g. under `jax.jit(G.generate)`) is float32 and matches
    it at the grid points k/(n_stats-1) and between them, see `ops.batch_norm.statistics_weights`.
    """

    family = "biggan"

    default_feature_layer = "gen_z"  # the first layer's 4x4 map

    def __init__(self, config: BigGANConfig, params, metadata: dict | None = None):
        super().__init__(config, params, metadata)
        self._generator = BigGANGenerator(config)

    c_dim = property(lambda self: self.config.num_classes)
    img_channels = property(lambda self: IMG_CHANNELS)

    def __repr__(self):
        cfg = self.config
        return (f"BigGAN-deep({cfg.img_resolution}x{cfg.img_resolution}x{IMG_CHANNELS}, z_dim={cfg.z_dim}, "
                f"num_classes={cfg.num_classes}, channel_width={cfg.channel_width}, blocks={len(cfg.layers)}, "
                f"attention_layer_position={cfg.attention_layer_position}, n_stats={cfg.n_stats})")

    # --- construction -------------------------------------------------------------------
    @classmethod
    def init(cls, config: BigGANConfig, key) -> "BigGAN":
        """A generator with random weights (see `init_params`)."""
        return cls(config, init_params(config, key))

    def abstract_params(self):
        """Shapes and dtypes of the params tree (no computation), e.g. for restoring checkpoints."""
        return _abstract_params(self.config)

    # --- sampling -----------------------------------------------------------------------
    def sample_z(self, key, n: int, truncation_psi=1.0):
        """z [n, z_dim]: truncation * N(0, 1) truncated to [-2, 2] (the reference's
        `truncated_noise_sample`, drawn from `key` instead of scipy's global state)."""
        check_truncation(truncation_psi)
        z = jax.random.truncated_normal(key, -TRUNCATION_BOUND, TRUNCATION_BOUND, (n, self.config.z_dim), jnp.float32)
        return truncation_psi * z

    def class_vector(self, labels, weights=None):
        """`class_vector(labels, self.c_dim, weights)`: one-hot or mixed class vectors."""
        return class_vector(labels, self.config.num_classes, weights)

    # --- pure functions -----------------------------------------------------------------
    def generate(self, params, z, c, truncation_psi=1.0, compute_dtype=jnp.float32, hooks: Hooks | None = None):
        """z [N, z_dim] and class vectors c [N, num_classes] -> images [N, H, W, 3] in [-1, 1]
        (`hooks`: see `latentjax.models.taps`)."""
        return self._run(params, z, c, truncation_psi, compute_dtype, None, hooks)[0]

    def features(self, params, z, c, truncation_psi=1.0, layers: Sequence[str] | None = None,
                 compute_dtype=jnp.float32, hooks: Hooks | None = None):
        """Intermediate activations by name (see `layer_names`), NHWC float32, plus 'img'.

        With `layers`, only those are returned, and the generator runs only as far as needed.
        """
        if layers is None:
            img, features = self._run(params, z, c, truncation_psi, compute_dtype, None, hooks)
            return {**features, "img": img}
        known = self.layer_names + ("img",)
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise ValueError(f"unknown layers {unknown}; expected names from {list(known)}")
        last = max(layers, key=known.index) if layers else "gen_z"
        img, features = self._run(params, z, c, truncation_psi, compute_dtype, None if last == "img" else last, hooks)
        features["img"] = img
        return {name: features[name] for name in layers}

    def input_weight(self, params, layers=None):
        """The z part of gen_z's (spectrally normalised) weight as [out_features, z_dim]."""
        check_single_input(layers)
        return params["gen_z"]["weight"][: self.config.z_dim].T

    def _run(self, params, z, c, truncation_psi, compute_dtype, until, hooks=None):
        cfg = self.config
        check_hooks(hooks, cfg.layer_names)
        if z.ndim != 2 or z.shape[1] != cfg.z_dim:
            raise ValueError(f"z must have shape [N, {cfg.z_dim}], got {tuple(z.shape)}")
        if c is None or c.shape != (z.shape[0], cfg.num_classes):
            got = None if c is None else tuple(c.shape)
            raise ValueError(f"c must be class vectors of shape [{z.shape[0]}, {cfg.num_classes}] "
                             f"(see class_vector), got {got}")
        stat_weights = statistics_weights(truncation_psi, cfg.n_stats)
        compute_dtype = check_compute_dtype(compute_dtype)
        return self._generator.apply({"params": params}, z, c, stat_weights, compute_dtype=compute_dtype, until=until,
                                     hooks=hooks)
