"""Reconstructors for Voynov & Babenko's method: from an image pair, which direction moved, and how far.

Both take the two images stacked as 6 channels and return K-way logits and a scalar shift, as
GANLatentDiscovery's `latent_shift_predictor.py`: `ResNet18Reconstructor` (torchvision's
ResNet-18 with a 6-channel stem) and `LeNetReconstructor` (the reference's LeNet for small
images), with PyTorch's initialisation and batch-norm conventions (docs/networks.md).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from latentjax.ops.conv2d_resample import conv_general_dilated

KINDS = ("auto", "resnet18", "lenet")
LENET_MIN_SIZE = 32  # three unpadded 5x5 convolutions and two 2x2 pools leave 1x1 at 32x32
AUTO_LENET_MAX_SIZE = 32  # `auto`: LeNet up to this resolution (the reference's MNIST setting), ResNet-18 above

# PyTorch's default init for Linear and Conv weights: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
torch_default_kernel = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
# torchvision ResNet's convolutions: kaiming_normal(mode="fan_out", nonlinearity="relu").
he_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def torch_default_bias(fan_in: int):
    """PyTorch's default bias init for a layer with `fan_in` inputs: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / fan_in ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """nn.Linear with PyTorch's default init (params `kernel` [in, out], `bias` [out])."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", torch_default_kernel, (x.shape[-1], self.features))
        bias = self.param("bias", torch_default_bias(x.shape[-1]), (self.features,))
        return x @ kernel + bias


def batch_norm(train: bool):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


def _stack_pair(x1, x2, size: int):
    if x1.shape != x2.shape or x1.ndim != 4:
        raise ValueError(f"a reconstructor takes two NHWC image batches of one shape, got {x1.shape} and {x2.shape}")
    x = jnp.concatenate([x1, x2], axis=-1)
    if size and x.shape[1:3] != (size, size):
        x = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "nearest")
    return x


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm; a 1x1 conv + BN shortcut when the shape changes."""

    features: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        conv = lambda features, kernel, stride, pad: nn.Conv(
            features, (kernel, kernel), (stride, stride), padding=((pad, pad), (pad, pad)), use_bias=False,
            kernel_init=he_normal_fan_out, conv_general_dilated=conv_general_dilated)
        y = nn.relu(batch_norm(train)(conv(self.features, 3, self.stride, 1)(x)))
        y = batch_norm(train)(conv(self.features, 3, 1, 1)(y))
        if self.stride != 1 or x.shape[-1] != self.features:
            x = batch_norm(train)(conv(self.features, 1, self.stride, 0)(x))
        return nn.relu(y + x)


class ResNet18Reconstructor(nn.Module):
    """(x1, x2) [N, H, W, C] each -> (logits [N, K], shift [N]); see the module docstring."""

    num_directions: int
    size: int = 0
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (64, 128, 256, 512)

    @nn.compact
    def __call__(self, x1, x2, train: bool = True):
        x = _stack_pair(x1, x2, self.size)
        x = nn.Conv(self.widths[0], (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False,
                    kernel_init=he_normal_fan_out)(x)
        x = nn.relu(batch_norm(train)(x))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for stage, (blocks, features) in enumerate(zip(self.stage_sizes, self.widths)):
            for block in range(blocks):
                x = BasicBlock(features, 2 if stage > 0 and block == 0 else 1)(x, train)
        features = jnp.mean(x, axis=(1, 2))
        return TorchDense(self.num_directions)(features), TorchDense(1)(features)[:, 0]


class LeNetReconstructor(nn.Module):
    """(x1, x2) [N, H, W, C] each, H, W >= 32 -> (logits [N, K], shift [N]); see the module docstring."""

    num_directions: int
    size: int = 0
    width: int = 2

    @nn.compact
    def __call__(self, x1, x2, train: bool = True):
        x = _stack_pair(x1, x2, self.size)
        if min(x.shape[1:3]) < LENET_MIN_SIZE:
            raise ValueError(f"the LeNet reconstructor needs images of at least {LENET_MIN_SIZE}x{LENET_MIN_SIZE}, "
                             f"got {x.shape[1]}x{x.shape[2]}: set reconstructor_size={LENET_MIN_SIZE}")
        for i, features in enumerate((3 * self.width, 8 * self.width, 60 * self.width)):
            fan_in = 25 * x.shape[-1]
            x = nn.Conv(features, (5, 5), padding="VALID", kernel_init=torch_default_kernel,
                        bias_init=torch_default_bias(fan_in), conv_general_dilated=conv_general_dilated)(x)
            x = nn.relu(batch_norm(train)(x))
            if i < 2:
                x = nn.max_pool(x, (2, 2), (2, 2))
        features = jnp.mean(x, axis=(1, 2))

        def head(out: int):
            h = nn.relu(batch_norm(train)(TorchDense(42 * self.width)(features)))
            return TorchDense(out)(h)

        return head(self.num_directions), head(1)[:, 0]


def resolve(kind: str, resolution: int, size: int = 0) -> tuple[str, int]:
    """The network (`resnet18` or `lenet`) and input size that settings `kind` and `size` mean for
    images of `resolution`: `auto` is LeNet up to 32 px and ResNet-18 above; LeNet on images smaller
    than 32 px resizes them to 32."""
    if kind not in KINDS:
        raise ValueError(f"reconstructor must be one of {KINDS}, got {kind!r}")
    if size < 0:
        raise ValueError(f"reconstructor_size must be >= 0 (0: the generator's resolution), got {size}")
    effective = size or resolution
    if kind == "auto":
        kind = "lenet" if effective <= AUTO_LENET_MAX_SIZE else "resnet18"
    if kind == "lenet" and effective < LENET_MIN_SIZE:
        size = LENET_MIN_SIZE
    return kind, size


def make_reconstructor(kind: str, num_directions: int, resolution: int, size: int = 0) -> nn.Module:
    """The reconstructor for K = `num_directions` on images of `resolution` (see `resolve`)."""
    if num_directions < 1:
        raise ValueError(f"num_directions must be >= 1, got {num_directions}")
    kind, size = resolve(kind, resolution, size)
    if kind == "lenet":
        return LeNetReconstructor(num_directions, size)
    return ResNet18Reconstructor(num_directions, size)
