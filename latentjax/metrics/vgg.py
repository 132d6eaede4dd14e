"""VGG16 convolutional trunks for perceptual features, torch-free, in the two conventions of the weights people have.

'torchvision' (a torchvision `vgg16` state dict on ImageNet-normalised RGB; LPIPS and mGANprior's
perceptual loss use it) and 'caffe' (the original VGG16 weights as Keras ships them, in the layout
of genforce/idinvert_pytorch's `vgg16.pth`, on BGR 0-255 input minus the BGR mean; in-domain
inversion's perceptual loss uses it). Both are VGG16's 13 3x3 convolutions tapped after relu1_2 ...
relu5_3 (`TAPS`), read with `latentjax.io.torch_pickle.load` (no code is executed).
`resize_nearest` is the nearest-neighbour resize both references apply before their VGG.
Details: docs/networks.md#latentjaxmetricsvgg
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.errors import CheckpointError
from latentjax.io.state_dict import read_state_dict

TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
# torchvision VGG16 `features` indices of the convolutions (the caffe file's `layer<i>` indices are the same),
# grouped by the tap that ends each stage; a 2x2 max-pool precedes every stage but the first.
STAGES = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
CONVENTIONS = ("torchvision", "caffe")
# The key prefix of each convention's file and what to call it in errors.
_PREFIX = {"torchvision": "features.", "caffe": "layer"}
_FORMAT = {"torchvision": "torchvision vgg16 state dict",
           "caffe": "caffe vgg16 state dict (genforce/idinvert_pytorch's vgg16.pth)"}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # RGB, for [0, 1] input (torchvision)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)  # BGR, for [0, 255] input (Keras, caffe mode)
# The caffe network's input unit (one 0-255 level) in the torchvision network's units is 1 / (255 std):
# about 1 / 57.6. Multiplying torchvision features by this factor is exact for the torchvision network
# fed 0-255-scale input with every bias scaled by the same factor (ReLU and max-pool are positively
# homogeneous); how close that comes to the caffe network's own feature magnitudes depends on the
# two sets of trained weights, which this project does not have (no pretrained weights ship).
TORCHVISION_TO_CAFFE_SCALE = float(255.0 * np.mean(IMAGENET_STD))


@functools.partial(jax.tree_util.register_dataclass, data_fields=["trunk"], meta_fields=["convention"])
@dataclasses.dataclass(frozen=True)
class VGG16:
    """A VGG16 trunk and the convention its weights were trained in; a pytree (pass it into `jit`).

    `trunk`: per stage of `STAGES`, (weight HWIO, bias) per convolution; `convention`: one of
    `CONVENTIONS`, which fixes how images in [-1, 1] are turned into the network's input.
    """

    trunk: tuple
    convention: str = "torchvision"

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {self.convention!r}")

    @property
    def channels(self) -> tuple[int, ...]:
        """Channel width at each tap (64, 128, 256, 512, 512 for the real VGG16)."""
        return tuple(int(convs[-1][0].shape[-1]) for convs in self.trunk)

    def preprocess(self, x):
        """The network input for RGB images [N, H, W, 3] nominally in [-1, 1] (values outside pass
        through): torchvision ((x + 1) / 2 - mean) / std; caffe BGR((x + 1) * 255 / 2) - BGR mean."""
        x = x.astype(jnp.float32)
        if self.convention == "caffe":
            return ((x + 1.0) * 255.0 / 2.0)[..., ::-1] - CAFFE_MEAN_BGR
        return ((x + 1.0) * 0.5 - IMAGENET_MEAN) / IMAGENET_STD

    def features(self, x, layers=TAPS) -> dict:
        """The raw (ReLU) taps `layers` {name: [N, h, w, C]} of RGB images [N, H, W, 3] in [-1, 1].

        The trunk runs only as deep as the deepest tap asked for. Jittable.
        """
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"VGG16: images must be RGB [N, H, W, 3] (NHWC), got shape {shape}")
        return trunk_features(self.trunk, self.preprocess(x), layers)


def trunk_features(trunk, h, layers=TAPS) -> dict:
    """The taps `layers` of VGG16 convolutions `trunk` on network input h [N, H, W, 3] (already preprocessed)."""
    layers = check_layers(layers)
    deepest = max(TAPS.index(name) for name in layers)
    taps = {}
    for stage, (name, convs) in enumerate(zip(TAPS[:deepest + 1], trunk)):
        if stage:
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        for weight, bias in convs:
            h = jax.lax.conv_general_dilated(h, weight, (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
            # jax.nn.relu's gradient selects rather than multiplies by a mask, which discards the
            # NaN that a norm's sqrt produces at positions where every channel is 0 (LPIPS).
            h = jax.nn.relu(h)
        if name in layers:
            taps[name] = h
    return taps


def check_layers(layers) -> tuple[str, ...]:
    """`layers` (one tap name or several) as a tuple, or a ValueError naming the taps."""
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    unknown = [name for name in layers if name not in TAPS]
    if unknown or not layers:
        raise ValueError(f"layers must be VGG16 taps from {TAPS}, got {list(layers)}")
    return layers


def resize_nearest(images, size: int):
    """Images [N, H, W, C] resized to [N, size, size, C] by nearest neighbour, source index
    min(floor(i * in / out), in - 1) with a float32 scale, as torch's `F.interpolate(mode='nearest')`
    and TF1's `resize_images(method=NEAREST_NEIGHBOR)` compute it (an integer upscale repeats pixels)."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")

    def index(n: int) -> np.ndarray:
        if n == size:
            return np.arange(n)
        scale = np.float32(n) / np.float32(size)
        return np.minimum(np.floor(np.arange(size, dtype=np.float32) * scale).astype(np.int64), n - 1)

    return jnp.take(jnp.take(images, index(images.shape[1]), axis=1), index(images.shape[2]), axis=2)


# --- loading -----------------------------------------------------------------------------------
def load_vgg16(path, convention: str | None = None) -> VGG16:
    """A VGG16 from a torchvision `vgg16` state dict or genforce/idinvert_pytorch's `vgg16.pth`.

    `convention` (None: from the key names, `features.<i>.*` -> 'torchvision', `layer<i>.*` ->
    'caffe') says what input the weights were trained on; name it for a file whose keys do not
    tell (e.g. caffe weights saved under torchvision's key names). Raises `CheckpointError` naming
    the file and key for missing, unexpected or inconsistently shaped tensors.
    """
    return from_state_dict(read_state_dict(path), convention, source=str(path))


def from_state_dict(state: dict, convention: str | None = None, *, source: str = "vgg16 state dict") -> VGG16:
    """A VGG16 from a loaded state dict {name: array} (torch layouts); see `load_vgg16`."""
    layout = "caffe" if any(key.startswith("layer") for key in state) else "torchvision"
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS} or None (from the key names), got {convention!r}")
    return VGG16(trunk_params(state, source, layout), convention or layout)



def trunk_params(state: dict, path: str, layout: str = "torchvision") -> tuple:
    """The trunk (per stage, (weight HWIO, bias) per conv) of a state dict in `layout` ('torchvision':
    `features.<i>.*` plus ignored `classifier.*`; 'caffe': `layer<i>.*` only)."""
    prefix, kind = _PREFIX[layout], _FORMAT[layout]
    conv_keys = {f"{prefix}{i}.{p}" for stage in STAGES for i in stage for p in ("weight", "bias")}
    missing = sorted(conv_keys - set(state), key=_key_order)
    if missing:
        raise CheckpointError(f"{path}: not a {kind}; missing {missing}")
    ignored = "classifier." if layout == "torchvision" else None
    unexpected = sorted(k for k in state if k not in conv_keys and not (ignored and k.startswith(ignored)))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected keys {unexpected} for a {kind} "
                              f"(expected {prefix}<i>.weight|bias at i in {[i for stage in STAGES for i in stage]}"
                              f"{' and classifier.*' if ignored else ''})")
    in_channels = 3
    trunk = []
    for stage in STAGES:
        convs = []
        for i in stage:
            weight, bias = state[f"{prefix}{i}.weight"], state[f"{prefix}{i}.bias"]
            out_channels = weight.shape[0]
            if weight.shape != (out_channels, in_channels, 3, 3) or bias.shape != (out_channels,):
                raise CheckpointError(f"{path}: {prefix}{i}.weight has shape {weight.shape} and bias "
                                      f"{bias.shape}; expected (C, {in_channels}, 3, 3) and (C,) (OIHW)")
            convs.append((jnp.asarray(np.transpose(weight, (2, 3, 1, 0)), jnp.float32), jnp.asarray(bias, jnp.float32)))
            in_channels = out_channels
        trunk.append(tuple(convs))
    return tuple(trunk)


def _key_order(key: str):
    head, param = key.rsplit(".", 1)
    return int(head.rsplit(".", 1)[-1].removeprefix("layer")), param
