"""StyleGAN2's residual discriminator as Flax modules (NHWC), for training generators.

The architecture is stylegan2-ada-pytorch's `Discriminator` with `architecture='resnet'`, with
unscaled stored weights (equalised learning rate at run time). One deliberate difference: the
minibatch-stddev groups are consecutive samples (0-3, 4-7, ...) where the reference strides
them; both group an i.i.d. batch validly, and consecutive groups stay on one device, so results
do not depend on the device count. `from_nvidia` converts weights (the parity test permutes the
batch accordingly). Blocks and the params tree: docs/networks.md.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, check_clamp, check_filter, check_positive, check_resolution
from latentjax.ops.layers import FullyConnected, normal_init
from latentjax.errors import ConversionError
from latentjax.io.state_dict import Source, check, unique_filter
from latentjax.ops.bias_act import ACTIVATIONS, bias_act, check_activation
from latentjax.ops.conv2d_resample import conv2d
from latentjax.ops.upfirdn2d import setup_filter, upfirdn2d


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig(ConfigMixin):
    """The architecture; `channels[i]` is the width at resolution 4 * 2**i (as in `StyleGAN2Config`)."""

    config_name = "discriminator config"

    img_resolution: int
    img_channels: int
    channels: tuple[int, ...]
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    activation: str = "lrelu"
    conv_clamp: float | None = None
    resample_filter: tuple[tuple[float, ...], ...] = tuple(map(tuple, setup_filter([1, 3, 3, 1]).tolist()))

    def __post_init__(self):
        res_log2 = check_resolution(self.img_resolution, 8)
        check_positive(self, "img_channels")
        check_positive(self, "channels", what="a list of positive widths")
        check_clamp(self.conv_clamp)
        check_filter(self.resample_filter)
        if len(self.channels) != res_log2 - 1:
            raise ValueError(f"channels must list one width per resolution 4..{self.img_resolution} "
                             f"({res_log2 - 1} values), got {len(self.channels)}")
        if self.mbstd_group_size < 1 or self.mbstd_num_channels < 0:
            raise ValueError(f"mbstd_group_size must be >= 1 and mbstd_num_channels >= 0, got "
                             f"{self.mbstd_group_size}, {self.mbstd_num_channels}")
        if self.mbstd_num_channels and self.channels[0] % self.mbstd_num_channels:
            raise ValueError(f"the 4x4 width {self.channels[0]} must be divisible by mbstd_num_channels "
                             f"{self.mbstd_num_channels}")
        check_activation(self.activation)

    def width(self, res: int) -> int:
        return self.channels[int(np.log2(res)) - 2]

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """The residual blocks, from the image resolution down to 8."""
        return tuple(self.img_resolution >> i for i in range(int(np.log2(self.img_resolution)) - 2))


def _down_padding(f: np.ndarray, padding: int) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) padding that keeps a downsample-by-2 FIR centred (the reference's rule)."""
    fh, fw = f.shape
    return (padding + (fw - 1) // 2, padding + (fw - 2) // 2, padding + (fh - 1) // 2, padding + (fh - 2) // 2)


class Conv2dLayer(nn.Module):
    """Conv (optionally downsampling by 2 with the FIR filter), bias, activation, gain, clamp."""

    out_channels: int
    kernel_size: int
    config: DiscriminatorConfig
    activation: str = "linear"
    down: bool = False
    use_bias: bool = True
    conv_clamp: float | None = None

    @nn.compact
    def __call__(self, x, gain: float = 1.0):
        k, fan_in = self.kernel_size, x.shape[-1]
        weight = self.param("weight", normal_init(), (k, k, fan_in, self.out_channels))
        weight = weight * (1.0 / np.sqrt(fan_in * k * k))
        f = np.asarray(self.config.resample_filter, np.float32)
        if not self.down:
            x = conv2d(x, weight, padding=(k // 2, k // 2))
        elif k == 1:  # 1x1: downsample first, then convolve (4x fewer products)
            x = conv2d(upfirdn2d(x, f, down=2, padding=_down_padding(f, 0)), weight)
        else:  # filter at full resolution, then a stride-2 convolution
            x = upfirdn2d(x, f, padding=_down_padding(f, k // 2))
            x = jax.lax.conv_general_dilated(x, weight, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.out_channels,)) if self.use_bias else None
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, bias, act=self.activation, gain=ACTIVATIONS[self.activation].default_gain * gain,
                        clamp=clamp)


def minibatch_stddev(x, group_size: int, num_channels: int = 1):
    """Append `num_channels` features: the stddev over groups of `group_size` consecutive samples,
    averaged over pixels and over each of `num_channels` channel groups (NHWC)."""
    n, h, w, c = x.shape
    g = min(group_size, n)
    if n % g:
        raise ValueError(f"minibatch-stddev: batch {n} must be divisible by the group size {g} "
                         f"(per device, when the batch is sharded)")
    y = x.astype(jnp.float32).reshape(n // g, g, h, w, num_channels, c // num_channels)
    y = jnp.sqrt(jnp.var(y, axis=1) + 1e-8)               # [n/g, H, W, F, c/F]
    y = jnp.mean(y, axis=(1, 2, 4))                        # [n/g, F]
    y = jnp.broadcast_to(y[:, None, None, None, :], (n // g, g, h, w, num_channels)).reshape(n, h, w, num_channels)
    return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)


class DiscriminatorBlock(nn.Module):
    """One resolution: (fromRGB), conv0, downsampling conv1, plus the downsampling 1x1 skip."""

    resolution: int
    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x, img):
        cfg = self.config
        tmp, out = cfg.width(self.resolution), cfg.width(self.resolution // 2)
        layer = dict(config=cfg, activation=cfg.activation, conv_clamp=cfg.conv_clamp)
        if x is None:
            x = Conv2dLayer(tmp, 1, **layer, name="fromrgb")(img)
        y = Conv2dLayer(out, 1, cfg, down=True, use_bias=False, name="skip")(x, gain=np.sqrt(0.5))
        x = Conv2dLayer(tmp, 3, **layer, name="conv0")(x)
        x = Conv2dLayer(out, 3, **layer, down=True, name="conv1")(x, gain=np.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """4x4: minibatch stddev, conv, fully connected, and the output logit."""

    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        width = cfg.width(4)
        if cfg.mbstd_num_channels:
            x = minibatch_stddev(x, cfg.mbstd_group_size, cfg.mbstd_num_channels)
        x = Conv2dLayer(width, 3, cfg, cfg.activation, conv_clamp=cfg.conv_clamp, name="conv")(x)
        x = FullyConnected(width, activation=cfg.activation, name="fc")(x.reshape(x.shape[0], -1))
        return FullyConnected(1, name="out")(x)


class Discriminator(nn.Module):
    """Images [N, H, W, C] (about [-1, 1]) -> logits [N, 1] (real: large)."""

    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, img):
        cfg = self.config
        expected = (cfg.img_resolution, cfg.img_resolution, cfg.img_channels)
        if img.ndim != 4 or img.shape[1:] != expected:
            raise ValueError(f"discriminator input must have shape [N, {', '.join(map(str, expected))}], "
                             f"got {tuple(img.shape)}")
        img = img.astype(jnp.float32)
        x = None
        for res in cfg.block_resolutions:
            x = DiscriminatorBlock(res, cfg, name=f"b{res}")(x, img)
        return DiscriminatorEpilogue(cfg, name="b4")(x)


def init_discriminator(config: DiscriminatorConfig, key) -> dict:
    """Fresh params with the reference's init (weights N(0, 1), biases 0)."""
    img = jnp.zeros((config.mbstd_group_size, config.img_resolution, config.img_resolution, config.img_channels))
    return Discriminator(config).init(key, img)["params"]


def from_nvidia(state_dict: Mapping[str, np.ndarray], init_kwargs: Mapping[str, Any],
                where: str = "checkpoint") -> tuple[DiscriminatorConfig, dict]:
    """Config and params from a stylegan2-ada-pytorch `Discriminator` state dict and its init kwargs.

    Widths are read from the weight shapes. Only the unconditional resnet architecture is supported.
    """
    src = Source(state_dict, where)
    kwargs = dict(init_kwargs)
    check(int(kwargs.get("c_dim", 0)) == 0 and "mapping.embed.weight" not in src, where,
           "conditional discriminators (c_dim > 0) are not supported")
    check(kwargs.get("architecture", "resnet") == "resnet", where,
           f"architecture {kwargs.get('architecture')!r} is not supported; expected 'resnet'")
    resolutions = sorted((int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"b(\d+)\.conv0\.weight", k))),
                         reverse=True)
    check(bool(resolutions) and "b4.conv.weight" in src, where,
           "expected b{res}.conv0.weight and b4.conv.weight: not a StyleGAN2 discriminator state dict")
    first = f"b{resolutions[0]}.fromrgb.weight"
    check(first in src, where, f"missing key {first!r}")
    widths = {r: int(src.arrays[f"b{r}.conv0.weight"].shape[0]) for r in resolutions}
    widths[4] = int(src.arrays["b4.conv.weight"].shape[0])
    epilogue = dict(kwargs.get("epilogue_kwargs") or {})
    block = dict(kwargs.get("block_kwargs") or {})
    mbstd_channels = int(epilogue.get("mbstd_num_channels", 1))
    check(src.arrays["b4.conv.weight"].shape[1] == widths[4] + mbstd_channels, where,
           f"b4.conv.weight has {src.arrays['b4.conv.weight'].shape[1]} inputs, expected "
           f"{widths[4]} + {mbstd_channels} minibatch-stddev channels")
    resample_filter = unique_filter(src, sorted(k for k in state_dict if k.endswith("resample_filter")))
    conv_clamp = kwargs.get("conv_clamp")
    config = DiscriminatorConfig(
        img_resolution=resolutions[0], img_channels=int(src.arrays[first].shape[1]),
        channels=tuple(widths[4 << i] for i in range(len(resolutions) + 1)),
        mbstd_group_size=int(epilogue.get("mbstd_group_size") or 4), mbstd_num_channels=mbstd_channels,
        activation=str(block.get("activation", epilogue.get("activation", "lrelu"))),
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
        **({} if resample_filter is None else {"resample_filter": tuple(map(tuple, resample_filter.tolist()))}))
    abstract = jax.eval_shape(lambda: init_discriminator(config, jax.random.key(0)))

    def fill(path, leaf):
        key = ".".join(p.key for p in path)
        value = src.get(key)
        if key == "b4.fc.weight":  # torch flattens [C, 4, 4]; we flatten [4, 4, C]
            value = value.reshape(value.shape[0], widths[4], 4, 4).transpose(0, 2, 3, 1).reshape(value.shape[0], -1)
        if value.ndim == 2:
            value = value.T  # (out, in) -> (in, out)
        elif value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        check(value.shape == leaf.shape, where, f"key {key!r} has shape {value.shape} after layout change, "
                                                 f"expected {leaf.shape}")
        return np.array(value, dtype=np.float32, order="C")

    params = jax.tree_util.tree_map_with_path(fill, abstract)
    src.check_all_used()
    return config, params


__all__ = ["ConversionError", "Discriminator", "DiscriminatorConfig", "from_nvidia", "init_discriminator",
           "minibatch_stddev"]
