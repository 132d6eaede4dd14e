"""torchvision's Inception v3 in Flax, for inference, read from torchvision state dicts without torch.

The network computes what torchvision's `Inception3` computes in eval mode after its optional input
transform: the stem (3x3 convs, max pools), Mixed_5b-5d (InceptionA), Mixed_6a (InceptionB),
Mixed_6b-6e (InceptionC), Mixed_7a (InceptionD), Mixed_7b-7c (InceptionE), global average pooling
and a linear head. Every conv is a bias-free conv, batch norm (running statistics, epsilon 1e-3)
and ReLU; the branches' 3x3 average pools count the zero padding, as torch's default does.

Input convention: the body takes what torchvision's `transform_input` produces, pixels scaled to
[-1, 1] (Google's convention, which torchvision's pretrained `inception_v3` and Keras's
`InceptionV3` with `preprocess_input` share), so the generators' images go in as they are.
Inputs must be at least 75x75 (the reference's minimum).

`load_inception(path)` reads a `torch.save` file of `model.state_dict()` (or a dict holding it under
a key), with or without DataParallel's 'module.' prefixes. The training-only auxiliary classifier
(`AuxLogits.*`, absent when `aux_logits=False`) does not take part in eval and is not kept. Every
other key must be used and every shape must fit the architecture, or a `ConversionError` names the key.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, check_positive
from latentjax.io.state_dict import Source, check, fill_flax_variables, read_state_dict
from latentjax.ops.conv2d_resample import conv_general_dilated

BN_EPS = 1e-3
MIN_SIZE = 75
FEATURE_DIM = 2048
AUX_PREFIX = "AuxLogits."


@dataclasses.dataclass(frozen=True)
class InceptionConfig(ConfigMixin):
    """torchvision's `Inception3(num_classes)`; the widths are fixed by the architecture."""

    config_name = "inception config"

    num_outputs: int = 1000

    def __post_init__(self):
        check_positive(self, "num_outputs")


class BasicConv(nn.Module):
    """torchvision's `BasicConv2d`: conv (no bias), batch norm, ReLU (torch names conv / bn)."""

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        (ph, pw), s = self.padding, self.stride
        x = nn.Conv(self.features, self.kernel, (s, s), padding=((ph, ph), (pw, pw)), use_bias=False, name="conv",
                    conv_general_dilated=conv_general_dilated)(x)
        return nn.relu(nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x))


def _avg_pool(x):
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=True)


def _max_pool(x):
    return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
        b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(BasicConv(48, (1, 1), name="branch5x5_1")(x))
        b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(384, (3, 3), stride=2, name="branch3x3")(x)
        bd = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
        b7 = BasicConv(c7, (1, 1), name="branch7x7_1")(x)
        b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv(c7, (1, 1), name="branch7x7dbl_1")(x)
        bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(320, (3, 3), stride=2, name="branch3x3_2")(BasicConv(192, (1, 1), name="branch3x3_1")(x))
        b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
    @nn.compact
    def __call__(self, x):
        b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
        b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                              BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
        bd = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                              BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
        bp = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool(x))
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionNetwork(nn.Module):
    """Images [N, H, W, 3] in [-1, 1] (NHWC) -> (outputs [N, num_outputs], pooled [N, 2048])."""

    config: InceptionConfig

    @nn.compact
    def __call__(self, x):
        x = BasicConv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = _max_pool(BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x))
        x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = _max_pool(BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x))
        for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = InceptionA(pool_features, name=name)(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(name="Mixed_7c")(InceptionE(name="Mixed_7b")(x))
        pooled = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.config.num_outputs, name="fc")(pooled), pooled


class Inception:
    """An Inception v3: a config, variables ({"params", "batch_stats"}) and pure functions (`jit`, `vmap`, `grad`)."""

    def __init__(self, config: InceptionConfig, variables):
        self.config = config
        self.variables = variables
        self._net = InceptionNetwork(config)

    def __repr__(self):
        return f"Inception(v3, {FEATURE_DIM} features -> {self.config.num_outputs})"

    def apply(self, variables, images):
        """(outputs [N, num_outputs], pooled features [N, 2048]) of images [N, H, W, 3] in [-1, 1]."""
        if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < MIN_SIZE:
            raise ValueError(f"inception images must have shape [N, H, W, 3] (NHWC) with H, W >= {MIN_SIZE}, "
                             f"got {tuple(images.shape)}")
        return self._net.apply(variables, images.astype(jnp.float32))

    def abstract_variables(self):
        return jax.eval_shape(self._net.init, jax.random.key(0), jnp.zeros((1, MIN_SIZE, MIN_SIZE, 3), jnp.float32))


def from_state_dict(state: dict, where: str = "inception state dict") -> Inception:
    """An Inception v3 from a torchvision state dict {name: array} (torch layouts)."""
    check("fc.weight" in state and "Mixed_7c.branch_pool.conv.weight" in state, where,
          f"not a torchvision Inception3 state dict: no 'fc.weight' / 'Mixed_7c.branch_pool.conv.weight' among "
          f"{sorted(state)[:6]} ...")
    net = Inception(InceptionConfig(num_outputs=int(np.shape(state["fc.weight"])[0])), None)
    src = Source({k: v for k, v in state.items()
                  if not k.endswith(".num_batches_tracked") and not k.startswith(AUX_PREFIX)}, where)

    variables = fill_flax_variables(src, net.abstract_variables(), ".".join, repr(net))
    src.check_all_used()
    return Inception(net.config, variables)


def load_inception(path, key: str | None = "state_dict") -> Inception:
    """An Inception v3 from a `torch.save` file (read without torch, through the allow-list reader):
    a bare state dict, or a dict holding it under `key`; DataParallel 'module.' prefixes are dropped."""
    return from_state_dict(read_state_dict(path, key), str(path))
