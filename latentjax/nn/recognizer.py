"""A small convolutional recognition network: images [N, R, R, C] -> outputs of each named head.

The network the disentanglement study trains on the shapes world and dissects
(`latentjax.tasks.recognizer`, `latentjax dissect`): `depth` stages, stage i a 3x3 conv at
`width * 2**i` channels and a ReLU, every stage but the last followed by a 2x2 average pool;
global average pooling; one dense head per label: a class head (>= 2 classes: logits) or a value
head (1 output: a regressed real, e.g. the assessor's factor estimates). Each stage's output (after the ReLU, before
pooling) is a named feature layer, 'conv1' ... 'conv<depth>': the units dissection probes. The
module owns the network's directory format (`save_recognizer` / `load_recognizer`);
'builtin:shapes_recognizer' names the one shipped with the package.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from latentjax import builtin
from latentjax.config import ConfigMixin, check_positive, check_resolution
from latentjax.io.native import network_from_directory, read_directory_config, write_directory

FORMAT = "latentjax.recognizer"


@dataclasses.dataclass(frozen=True)
class RecognizerConfig(ConfigMixin):
    """The architecture: image size, one head per label (`head_names`, each with `head_classes`
    outputs: >= 2 classes, or 1 for a value head), `depth` conv stages at widths `width * 2**i`."""

    config_name = "recognizer config"

    img_resolution: int
    img_channels: int
    head_names: tuple[str, ...]
    head_classes: tuple[int, ...]
    width: int = 16
    depth: int = 3

    def __post_init__(self):
        check_resolution(self.img_resolution, 8, "recognizer img_resolution")
        check_positive(self, "img_channels", "width", "depth")
        check_positive(self, "head_classes", what="outputs per head (>= 2 classes, or 1 for a value head)")
        if not self.head_names or len(self.head_names) != len(self.head_classes) \
                or len(set(self.head_names)) != len(self.head_names):
            raise ValueError(f"recognizer head_names must be distinct names, one per entry of head_classes "
                             f"{self.head_classes}, got {self.head_names}")
        if self.img_resolution >> (self.depth - 1) < 1:
            raise ValueError(f"recognizer depth {self.depth}: {self.depth - 1} poolings do not fit "
                             f"{self.img_resolution} pixels")

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"conv{i + 1}" for i in range(self.depth))

    @property
    def value_heads(self) -> tuple[str, ...]:
        """The heads with one output: regressed values, not class logits."""
        return tuple(name for name, classes in zip(self.head_names, self.head_classes) if classes == 1)


class RecognizerNetwork(nn.Module):
    """Images -> ({head: logits [N, classes]}, {layer: features [N, h, w, width * 2**i]}, pooled [N, F])."""

    config: RecognizerConfig

    @nn.compact
    def __call__(self, images):
        cfg = self.config
        x, features = images.astype(jnp.float32), {}
        for i, name in enumerate(cfg.layer_names):
            x = jax.nn.relu(nn.Conv(cfg.width * 2 ** i, (3, 3), name=name)(x))
            features[name] = x
            if i < cfg.depth - 1:
                x = nn.avg_pool(x, (2, 2), (2, 2))
        pooled = x.mean(axis=(1, 2))
        logits = {head: nn.Dense(classes, name=f"head_{head}")(pooled)
                  for head, classes in zip(cfg.head_names, cfg.head_classes)}
        return logits, features, pooled


class Recognizer:
    """A recognition network: a config, params and pure functions (`jit`, `vmap`, `grad`)."""

    def __init__(self, config: RecognizerConfig, params, metadata: dict | None = None):
        self.config = config
        self.params = params
        self.metadata = dict(metadata or {})
        self._net = RecognizerNetwork(config)

    def __repr__(self):
        cfg = self.config
        heads = ", ".join(f"{n}: {c}" for n, c in zip(cfg.head_names, cfg.head_classes))
        return (f"Recognizer({cfg.img_resolution}x{cfg.img_resolution}x{cfg.img_channels} -> {{{heads}}}, "
                f"widths {[cfg.width * 2 ** i for i in range(cfg.depth)]})")

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self.config.layer_names

    @classmethod
    def init(cls, config: RecognizerConfig, key) -> "Recognizer":
        """A fresh network (Flax's default initialisers)."""
        return cls(config, jax.jit(RecognizerNetwork(config).init)(key, _example(config))["params"])

    def abstract_params(self):
        """Shapes and dtypes of the params tree (no computation)."""
        return jax.eval_shape(self._net.init, jax.random.key(0), _example(self.config))["params"]

    def _apply(self, params, images):
        cfg = self.config
        expected = (cfg.img_resolution, cfg.img_resolution, cfg.img_channels)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"recognizer images must have shape [N, {', '.join(map(str, expected))}] (NHWC), "
                             f"got {tuple(images.shape)}")
        return self._net.apply({"params": params}, images)

    def logits(self, params, images) -> dict[str, jax.Array]:
        """{head: logits [N, classes]} of images [N, R, R, C] in [-1, 1] (a value head: its value [N, 1])."""
        return self._apply(params, images)[0]

    def features(self, params, images, layers: Sequence[str]) -> dict[str, jax.Array]:
        """{layer: activations [N, h, w, units]} of the named layers (`layer_names`)."""
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown:
            raise ValueError(f"recognizer layers {unknown} unknown; expected names from {list(self.layer_names)}")
        features = self._apply(params, images)[1]
        return {name: features[name] for name in layers}

    def embed(self, params, images) -> jax.Array:
        """The globally pooled last stage [N, width * 2**(depth-1)]: what every head reads."""
        return self._apply(params, images)[2]


def _example(config: RecognizerConfig):
    return jnp.zeros((1, config.img_resolution, config.img_resolution, config.img_channels), jnp.float32)


def save_recognizer(recognizer: Recognizer, out_dir) -> Path:
    """Write `recognizer` to `out_dir` (`config.json` + orbax `params/`, as generators and encoders)."""
    return write_directory(out_dir, FORMAT, {"config": recognizer.config.to_dict(),
                                             "metadata": recognizer.metadata}, recognizer.params)


def load_recognizer(path) -> Recognizer:
    """Read a directory written by `save_recognizer` (e.g. `WORKDIR/recognizer` of a training run),
    or the shipped 'builtin:shapes_recognizer'."""
    if str(path).startswith(builtin.SCHEME):
        path = builtin.path(str(path)[len(builtin.SCHEME):])
    meta, config_file = read_directory_config(path, FORMAT, "recognizer")
    return network_from_directory(path, meta, config_file, Recognizer, RecognizerConfig, "recognizer")
