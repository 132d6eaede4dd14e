"""LPIPS (VGG16 trunk, version 0.1): the learned perceptual distance of Zhang et al. (2018), torch-free.

Weights come from two files people have, read with `latentjax.io.torch_pickle.load` (no code is
executed): a torchvision `vgg16` state dict and the lpips package's linear-head file. Channel widths
are read from the weights, so narrow test trunks load the same way. Images are NHWC in [-1, 1]; the
trunk is `latentjax.metrics.vgg`'s, shared with the perceptual losses.
Details: docs/networks.md#latentjaxmetricslpips
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.errors import CheckpointError
from latentjax.metrics.image import check_float_images
from latentjax.io.state_dict import read_state_dict
from latentjax.metrics.vgg import STAGES, TAPS, VGG16, trunk_features, trunk_params

__all__ = ["EPS", "LPIPS", "MIN_SIZE", "SCALE", "SHIFT", "STAGES", "TAPS", "from_state_dicts", "load_lpips"]

# The lpips ScalingLayer buffers, float32 as the reference stores them.
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
EPS = 1e-10  # added to the channel norm, outside the sqrt, as lpips' normalize_tensor does
MIN_SIZE = 16  # four 2x2 pools must leave at least one position at relu5_3


@functools.partial(jax.tree_util.register_dataclass, data_fields=["trunk", "lin"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class LPIPS:
    """LPIPS-VGG16 with its weights; a pytree, so it can be passed into `jit`-ed functions.

    `trunk` holds one (weight HWIO, bias) pair per convolution in `STAGES` order; `lin` one
    channel-weight vector per tap.
    """

    trunk: tuple
    lin: tuple

    @property
    def channels(self) -> tuple[int, ...]:
        """Channel width at each tap (64, 128, 256, 512, 512 for the real VGG16)."""
        return tuple(int(v.shape[0]) for v in self.lin)

    def __call__(self, x, y, *, per_layer: bool = False, spatial: bool = False):
        """Distances between image pairs x, y [N, H, W, 3] in [-1, 1].

        Returns [N]; with `per_layer`, the five tap terms [N, 5] (they sum to the distance);
        with `spatial`, the distance map [N, H, W] whose mean is about the distance (the
        per-layer maps [N, H, W, 5] with both).
        """
        _check_images(x, "x")
        _check_images(y, "y")
        if x.shape != y.shape:
            raise ValueError(f"LPIPS: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        return _distance(self, x, y, per_layer, spatial)

    def features(self, x, *, normalize: bool = False) -> dict:
        """The five trunk taps {name: [N, h, w, C]} of images [N, H, W, 3] in [-1, 1].

        With `normalize`, each tap is divided by its channel norm (+ eps): the features whose
        squared differences LPIPS weighs.
        """
        _check_images(x, "x")
        return _features(self, x, normalize)

    def distance_from_features(self, fx: dict, fy: dict, *, per_layer: bool = False):
        """The distance [N] (or tap terms [N, 5]) from `features(..., normalize=True)` of both images.

        Lets a loop against a fixed target (inversion) compute the target's features once.
        """
        maps = self._layer_maps(fx, fy)
        terms = jnp.stack([jnp.mean(m, axis=(1, 2)) for m in maps], axis=-1)
        return terms if per_layer else jnp.sum(terms, axis=-1)

    def _layer_maps(self, fx: dict, fy: dict) -> list:
        """Per tap, the lin head applied to the squared normalised difference: [N, h, w]."""
        return [jnp.square(fx[name] - fy[name]) @ weight for name, weight in zip(TAPS, self.lin)]


@functools.partial(jax.jit, static_argnums=(2,))
def _features(model: LPIPS, x, normalize: bool) -> dict:
    taps = trunk_features(model.trunk, (x.astype(jnp.float32) - SHIFT) / SCALE, TAPS)  # metrics.vgg's trunk
    return {name: _normalize(h) for name, h in taps.items()} if normalize else taps


@functools.partial(jax.jit, static_argnums=(3, 4))
def _distance(model: LPIPS, x, y, per_layer: bool, spatial: bool):
    # One trunk pass over both batches.
    features = _features(model, jnp.concatenate([x, y]), True)
    fx, fy = ({k: v[:len(x)] for k, v in features.items()}, {k: v[len(x):] for k, v in features.items()})
    if not spatial:
        return model.distance_from_features(fx, fy, per_layer=per_layer)
    size = x.shape[1:3]
    maps = jnp.stack([m if m.shape[1:] == size else jax.image.resize(m, m.shape[:1] + size, method="bilinear")
                      for m in model._layer_maps(fx, fy)], axis=-1)
    return maps if per_layer else jnp.sum(maps, axis=-1)


def _normalize(f):
    return f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + EPS)


def _check_images(x, name: str) -> None:
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"LPIPS: {name} must be RGB images [N, H, W, 3] (NHWC), got shape {shape}")
    if min(shape[1:3]) < MIN_SIZE:
        raise ValueError(f"LPIPS: {name} is {shape[1]}x{shape[2]}; the VGG16 trunk needs at least "
                         f"{MIN_SIZE}x{MIN_SIZE} pixels")
    check_float_images(x, f"LPIPS: {name}")


def load_lpips(vgg16_path, lin_path) -> LPIPS:
    """LPIPS from a torchvision `vgg16` state dict file and the lpips package's `vgg.pth` lin file.

    Both torch.save formats (zip and legacy) are read without torch. Raises `CheckpointError`
    naming the file and key for missing, unexpected or inconsistently shaped tensors.
    """
    return from_state_dicts(read_state_dict(vgg16_path), read_state_dict(lin_path), vgg16_source=str(vgg16_path),
                            lin_source=str(lin_path))


def from_state_dicts(vgg16: dict, lin: dict, *, vgg16_source: str = "vgg16 state dict",
                     lin_source: str = "lin state dict") -> LPIPS:
    """LPIPS from already loaded state dicts {name: array} (torch layouts); `*_source` name them in errors."""
    model = LPIPS(trunk=trunk_params(vgg16, vgg16_source), lin=_lin_params(lin, lin_source))
    tap_widths = tuple(int(convs[-1][0].shape[-1]) for convs in model.trunk)
    if tap_widths != model.channels:
        raise CheckpointError(f"{lin_source}: lin heads of widths {model.channels} do not fit the taps of the VGG16 "
                              f"trunk in {vgg16_source}, which have widths {tap_widths}")
    return model


def _lin_params(state: dict, path: str) -> tuple:
    expected = [f"lin{k}.model.1.weight" for k in range(len(TAPS))]
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not an lpips VGG lin file; missing {missing} (have {sorted(state)})")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected keys {unexpected}; an lpips lin file holds only {expected}")
    lin = []
    for key in expected:
        weight = state[key]
        if weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1):
            raise CheckpointError(f"{path}: {key} has shape {weight.shape}, expected (1, C, 1, 1)")
        lin.append(jnp.asarray(np.reshape(weight, -1), jnp.float32))
    return tuple(lin)


def as_vgg16(model, name: str = "vgg") -> VGG16:
    """`model` as a VGG16: a VGG16 itself, or an LPIPS model's trunk (torchvision convention)."""
    if isinstance(model, VGG16):
        return model
    if isinstance(model, LPIPS):
        return VGG16(model.trunk, "torchvision")
    raise ValueError(f"{name} must be a latentjax.metrics.vgg.VGG16 (load_vgg16) or an LPIPS model "
                     f"(load_lpips, its torchvision trunk), got {type(model).__name__}")
