"""An image encoder to StyleGAN's `w+`: images [N, H, W, C] -> ws [N, num_ws, w_dim].

A configurable, smaller form of the in-domain inversion encoder (genforce/idinvert): a residual
pyramid down to 4x4 and a dense head that adds `w_avg`, so a fresh encoder maps every image to
the generator's mean w and learns an offset from it. Normalisation is per sample (not the
reference's batch norm): the in-domain regulariser evaluates E(G(w)) one target at a time under
`vmap`, and batch statistics would tie an image's code to its batch. The module owns the
encoder's directory format (`save_encoder` / `load_encoder`). Layers: docs/networks.md.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, check_resolution
from latentjax.io.native import network_from_directory, read_directory_config, write_directory

FORMAT = "latentjax.encoder"
NORMS = ("instance", "layer", "none")
LRELU_SLOPE = 0.2


@dataclasses.dataclass(frozen=True)
class EncoderConfig(ConfigMixin):
    """The architecture. `img_*` and `num_ws`, `w_dim` come from the generator (`config_for`)."""

    config_name = "encoder config"

    img_resolution: int
    img_channels: int
    num_ws: int
    w_dim: int
    channel_base: int = 2048
    channel_max: int = 256
    blocks_per_resolution: int = 1
    norm: str = "instance"

    def __post_init__(self):
        check_resolution(self.img_resolution, 8, "encoder img_resolution")
        if self.img_channels < 1 or self.num_ws < 1 or self.w_dim < 1:
            raise ValueError(f"encoder img_channels, num_ws and w_dim must be positive, got {self.img_channels}, "
                             f"{self.num_ws}, {self.w_dim}")
        if self.channel_base < self.img_resolution or self.channel_max < 1:
            raise ValueError(f"encoder channel_base must be >= img_resolution ({self.img_resolution}) and channel_max "
                             f">= 1, got {self.channel_base}, {self.channel_max}")
        if self.blocks_per_resolution < 1:
            raise ValueError(f"encoder blocks_per_resolution must be >= 1, got {self.blocks_per_resolution}")
        if self.norm not in NORMS:
            raise ValueError(f"encoder norm must be one of {NORMS}, got {self.norm!r}")

    def width(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """R, R/2, ..., 4: the stem's resolution, then those of the residual stages."""
        return tuple(self.img_resolution >> i for i in range(int(np.log2(self.img_resolution)) - 1))


def _norm(kind: str, name: str):
    if kind == "instance":
        return nn.GroupNorm(num_groups=None, group_size=1, name=name)
    if kind == "layer":
        return nn.GroupNorm(num_groups=1, name=name)
    return lambda x: x


def _lrelu(x):
    return jax.nn.leaky_relu(x, LRELU_SLOPE)


class ResidualBlock(nn.Module):
    """Two 3x3 convs (each followed by leaky ReLU and norm) plus the (projected) input, * sqrt(1/2)."""

    out_channels: int
    norm: str

    @nn.compact
    def __call__(self, x):
        hidden = min(x.shape[-1], self.out_channels)
        skip = x
        if x.shape[-1] != self.out_channels:
            skip = _norm(self.norm, "skip_norm")(nn.Conv(self.out_channels, (1, 1), use_bias=False, name="skip")(x))
        x = _norm(self.norm, "norm0")(_lrelu(nn.Conv(hidden, (3, 3), name="conv0")(x)))
        x = _norm(self.norm, "norm1")(_lrelu(nn.Conv(self.out_channels, (3, 3), name="conv1")(x)))
        return (x + skip) * np.sqrt(0.5)


class EncoderNetwork(nn.Module):
    """Images [N, R, R, C] -> offsets from `w_avg` [N, num_ws, w_dim] (zero at initialisation)."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, images):
        cfg = self.config
        x = nn.Conv(cfg.width(cfg.img_resolution), (3, 3), name="stem")(images.astype(jnp.float32))
        x = _norm(cfg.norm, "stem_norm")(_lrelu(x))
        for res in cfg.resolutions[1:]:
            x = nn.avg_pool(x, (2, 2), (2, 2))
            for i in range(cfg.blocks_per_resolution):
                x = ResidualBlock(cfg.width(res), cfg.norm, name=f"b{res}_{i}")(x)
        x = nn.Dense(cfg.num_ws * cfg.w_dim, kernel_init=nn.initializers.zeros_init(), name="head")(
            x.reshape(x.shape[0], -1))
        return x.reshape(x.shape[0], cfg.num_ws, cfg.w_dim)


class Encoder:
    """An encoder: a config, params {'net': network params, 'w_avg': [w_dim]}, and pure functions.

    `encode(params, images)` works under `jit`, `vmap` and `grad`; training updates `params['net']`
    only, `w_avg` is the generator's and stays fixed.
    """

    def __init__(self, config: EncoderConfig, params, metadata: dict | None = None):
        self.config = config
        self.params = params
        self.metadata = dict(metadata or {})
        self._net = EncoderNetwork(config)

    def __repr__(self):
        cfg = self.config
        return (f"Encoder({cfg.img_resolution}x{cfg.img_resolution}x{cfg.img_channels} -> w+ [{cfg.num_ws}, "
                f"{cfg.w_dim}], widths {[cfg.width(r) for r in cfg.resolutions]}, norm={cfg.norm})")

    @classmethod
    def init(cls, config: EncoderConfig, key, w_avg) -> "Encoder":
        """A fresh encoder that maps every image to `w_avg`: conv kernels N(0, 1 / fan_in) (LeCun
        normal), biases 0, norm scales 1, and a zero head.

        The kernels are slices of one normal draw: one random op compiles in a fraction of the time
        of one per parameter.
        """
        w_avg = jnp.asarray(w_avg, jnp.float32)
        if w_avg.shape != (config.w_dim,):
            raise ValueError(f"w_avg must have shape [{config.w_dim}] (the generator's w_dim), got {w_avg.shape}")
        return cls(config, {"net": _init_net(config, key), "w_avg": w_avg})

    def abstract_params(self):
        """Shapes and dtypes of the params tree (no computation)."""
        return {"net": _abstract_net_params(self.config),
                "w_avg": jax.ShapeDtypeStruct((self.config.w_dim,), jnp.float32)}

    def encode(self, params, images):
        """images [N, R, R, C] (about [-1, 1]) -> ws [N, num_ws, w_dim] = w_avg + the network's offset."""
        cfg = self.config
        expected = (cfg.img_resolution, cfg.img_resolution, cfg.img_channels)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"encoder images must have shape [N, {', '.join(map(str, expected))}] (NHWC), "
                             f"got {tuple(images.shape)}")
        return params["w_avg"] + self._net.apply({"params": params["net"]}, images)

    def check_generator(self, G) -> None:
        """A ValueError unless `G`'s images and w+ match this encoder's."""
        cfg = self.config
        mine = (cfg.img_resolution, cfg.img_channels, cfg.num_ws, cfg.w_dim)
        theirs = tuple(getattr(G, a, None) for a in ("img_resolution", "img_channels", "num_ws", "w_dim"))
        if mine != theirs:
            raise ValueError(f"encoder (resolution, channels, num_ws, w_dim) {mine} does not match the generator's "
                             f"{theirs}")


def _abstract_net_params(config: EncoderConfig):
    images = jax.ShapeDtypeStruct((1, config.img_resolution, config.img_resolution, config.img_channels), jnp.float32)
    return jax.eval_shape(EncoderNetwork(config).init, jax.random.key(0), images)["params"]


@functools.partial(jax.jit, static_argnums=0)
def _init_net(config: EncoderConfig, key):
    abstract = _abstract_net_params(config)
    kernels = [(path, leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(abstract)
               if path[-1].key == "kernel" and path[0].key != "head"]
    sizes = [int(np.prod(leaf.shape)) for _, leaf in kernels]
    draws = jnp.split(jax.random.normal(key, (sum(sizes),)), np.cumsum(sizes)[:-1])
    values = {path: draw.reshape(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
              for (path, leaf), draw in zip(kernels, draws)}

    def leaf_init(path, leaf):
        if path in values:
            return values[path]
        return jnp.full(leaf.shape, 1.0 if path[-1].key == "scale" else 0.0, jnp.float32)

    return jax.tree_util.tree_map_with_path(leaf_init, abstract)


def config_for(G, **architecture) -> EncoderConfig:
    """An encoder config for generator `G` (its image size and w+), with `architecture` fields."""
    if not hasattr(G, "num_ws"):
        raise ValueError(f"an encoder to w+ needs a generator with a mapping network; got {type(G).__name__}")
    return EncoderConfig(img_resolution=G.img_resolution, img_channels=G.img_channels, num_ws=G.num_ws,
                         w_dim=G.w_dim, **architecture)


def save_encoder(encoder: Encoder, out_dir) -> Path:
    """Write `encoder` to `out_dir` (`config.json` + orbax `params/`, as generators; an existing params/ is replaced)."""
    return write_directory(out_dir, FORMAT, {"config": encoder.config.to_dict(), "metadata": encoder.metadata},
                           encoder.params)


def load_encoder(path) -> Encoder:
    """Read a directory written by `save_encoder` (e.g. `WORKDIR/encoder` of an encoder training run)."""
    meta, config_file = read_directory_config(path, FORMAT, "encoder")
    return network_from_directory(path, meta, config_file, Encoder, EncoderConfig, "encoder")
