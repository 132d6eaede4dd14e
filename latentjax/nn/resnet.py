"""torchvision's ResNet in Flax, for inference, read from torchvision state dicts without torch.

The network computes what torchvision's `ResNet` computes in eval mode: a 7x7 stride-2 stem conv,
batch norm, ReLU, a 3x3 stride-2 max pool, four stages of basic blocks (two 3x3 convs) or
bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion; the stride on the 3x3 conv, torchvision's
"v1.5"), a 1x1 conv + batch-norm shortcut where the shape changes, global average pooling and a
linear head. Batch norm uses the stored running statistics (epsilon 1e-5).

The architecture is read from the state dict's keys and shapes (`config_from_state_dict`): block
kind, blocks per stage, stem width, stage widths, `width_per_group` (wide ResNets), input
channels and outputs; so ResNet-18/34/50/101/152, wide variants and narrowed copies all load.
`load_resnet(path)` reads a `torch.save` file of `model.state_dict()`, or a dict holding it under a
key ('state_dict' by default, AnyCostGAN's layout), with or without DataParallel's 'module.'
prefixes. Every key must be used and every shape must fit, or a `ConversionError` names the key.
"""

from __future__ import annotations

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, check_positive
from latentjax.io.state_dict import Source, check, fill_flax_variables, read_state_dict
from latentjax.ops.conv2d_resample import conv_general_dilated

BLOCKS = ("basic", "bottleneck")
EXPANSION = {"basic": 1, "bottleneck": 4}
BN_EPS = 1e-5


@dataclasses.dataclass(frozen=True)
class ResNetConfig(ConfigMixin):
    """torchvision's `ResNet(block, layers, num_classes, width_per_group)`, with its fixed widths
    (stem 64, stages 64-128-256-512) as fields so that narrowed copies load too."""

    config_name = "resnet config"

    block: str  # 'basic' (ResNet-18/34) or 'bottleneck' (ResNet-50 and deeper)
    layers: tuple[int, ...]  # blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50
    num_outputs: int = 1000
    stem_width: int = 64
    widths: tuple[int, ...] = (64, 128, 256, 512)  # torchvision's `planes` per stage
    width_per_group: int = 64  # bottleneck inner width = planes * width_per_group / 64 (wide ResNets: 128)
    img_channels: int = 3

    def __post_init__(self):
        if self.block not in BLOCKS:
            raise ValueError(f"resnet block must be one of {BLOCKS}, got {self.block!r}")
        if len(self.layers) != len(self.widths) or not self.layers:
            raise ValueError(f"resnet layers {self.layers} and widths {self.widths} must name the same stages")
        check_positive(self, "layers", "num_outputs", "stem_width", "widths", "width_per_group", "img_channels")

    def inner_width(self, stage: int) -> int:
        planes = self.widths[stage]
        return planes if self.block == "basic" else planes * self.width_per_group // 64

    @property
    def feature_dim(self) -> int:
        """Channels of the pooled features the head reads (2048 for ResNet-50)."""
        return self.widths[-1] * EXPANSION[self.block]


def _conv(features: int, kernel: int, stride: int, name: str):
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((pad, pad), (pad, pad)), use_bias=False,
                   name=name, conv_general_dilated=conv_general_dilated)


def _bn(name: str):
    return nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name=name)


class Block(nn.Module):
    """One residual block (torch names: conv1/bn1 ... and downsample_0 / downsample_1)."""

    config: ResNetConfig
    stage: int
    stride: int

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        inner, out = cfg.inner_width(self.stage), cfg.widths[self.stage] * EXPANSION[cfg.block]
        if cfg.block == "basic":
            y = nn.relu(_bn("bn1")(_conv(inner, 3, self.stride, "conv1")(x)))
            y = _bn("bn2")(_conv(out, 3, 1, "conv2")(y))
        else:
            y = nn.relu(_bn("bn1")(_conv(inner, 1, 1, "conv1")(x)))
            y = nn.relu(_bn("bn2")(_conv(inner, 3, self.stride, "conv2")(y)))
            y = _bn("bn3")(_conv(out, 1, 1, "conv3")(y))
        if self.stride != 1 or x.shape[-1] != out:
            x = _bn("downsample_1")(_conv(out, 1, self.stride, "downsample_0")(x))
        return nn.relu(y + x)


class ResNetNetwork(nn.Module):
    """Images [N, H, W, C] (NHWC, the network's own input scale) -> (outputs [N, num_outputs], pooled [N, F])."""

    config: ResNetConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        x = nn.relu(_bn("bn1")(_conv(cfg.stem_width, 7, 2, "conv1")(x)))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for stage, blocks in enumerate(cfg.layers):
            for j in range(blocks):
                x = Block(cfg, stage, 2 if stage > 0 and j == 0 else 1, name=f"layer{stage + 1}_{j}")(x)
        pooled = jnp.mean(x, axis=(1, 2))
        return nn.Dense(cfg.num_outputs, name="fc")(pooled), pooled


class ResNet:
    """A ResNet: a config, variables ({"params", "batch_stats"}) and pure functions (`jit`, `vmap`, `grad`)."""

    def __init__(self, config: ResNetConfig, variables):
        self.config = config
        self.variables = variables
        self._net = ResNetNetwork(config)

    def __repr__(self):
        cfg = self.config
        return f"ResNet({cfg.block}, layers {list(cfg.layers)}, {cfg.feature_dim} features -> {cfg.num_outputs})"

    def apply(self, variables, images):
        """(outputs [N, num_outputs], pooled features [N, feature_dim]) of float images [N, H, W, C]."""
        if images.ndim != 4 or images.shape[-1] != self.config.img_channels:
            raise ValueError(f"resnet images must have shape [N, H, W, {self.config.img_channels}] (NHWC), "
                             f"got {tuple(images.shape)}")
        return self._net.apply(variables, images.astype(jnp.float32))

    def abstract_variables(self):
        return jax.eval_shape(self._net.init, jax.random.key(0),
                              jnp.zeros((1, 32, 32, self.config.img_channels), jnp.float32))


def config_from_state_dict(state: dict, where: str) -> ResNetConfig:
    """The architecture a torchvision ResNet state dict describes (see the module docstring)."""
    check("conv1.weight" in state and "fc.weight" in state, where,
          f"not a torchvision ResNet state dict: no 'conv1.weight' / 'fc.weight' among {sorted(state)[:6]} ...")
    block = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    layers, widths, per_group = [], [], set()
    for stage in range(1, 5):
        count = 0
        while f"layer{stage}.{count}.conv1.weight" in state:
            count += 1
        check(count > 0, where, f"no blocks in stage {stage} (no 'layer{stage}.0.conv1.weight')")
        layers.append(count)
        first = f"layer{stage}.0"
        if block == "basic":
            widths.append(int(np.shape(state[f"{first}.conv1.weight"])[0]))
        else:
            planes = int(np.shape(state[f"{first}.conv3.weight"])[0]) // EXPANSION[block]
            widths.append(planes)
            per_group.add(int(np.shape(state[f"{first}.conv1.weight"])[0]) * 64 // max(planes, 1))
    check(len(per_group) <= 1, where, f"bottleneck inner widths imply different width_per_group per stage {per_group}")
    stem = np.shape(state["conv1.weight"])
    check(len(stem) == 4, where, f"key 'conv1.weight' has shape {stem}, expected [out, in, 7, 7]")
    return ResNetConfig(block=block, layers=tuple(layers), num_outputs=int(np.shape(state["fc.weight"])[0]),
                        stem_width=int(stem[0]), widths=tuple(widths), width_per_group=per_group.pop() if per_group else 64,
                        img_channels=int(stem[1]))


def from_state_dict(state: dict, where: str = "resnet state dict") -> ResNet:
    """A ResNet from a torchvision state dict {name: array} (torch layouts)."""
    config = config_from_state_dict(state, where)
    net = ResNet(config, None)
    src = Source({k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}, where)

    variables = fill_flax_variables(src, net.abstract_variables(), lambda names: ".".join(map(_torch_name, names)),
                                    repr(net))
    src.check_all_used()
    return ResNet(config, variables)


def _torch_name(flax_name: str) -> str:
    """'layer2_0' -> 'layer2.0', 'downsample_1' -> 'downsample.1', others unchanged."""
    return re.sub(r"_(\d+)$", r".\1", flax_name)


def load_resnet(path, key: str | None = "state_dict") -> ResNet:
    """A ResNet from a `torch.save` file (read without torch, through the allow-list reader): a bare
    state dict, or a dict holding it under `key`; DataParallel 'module.' prefixes are dropped."""
    return from_state_dict(read_state_dict(path, key), str(path))
