"""Image encoders for identity mapping: any network with weights, as `embed(params, images) -> [N, dim]`.

An `Encoder` is loaded from a spec string, so a mapper's directory records which encoders it was
trained with and loads them again: `recognizer:PATH` (a `latentjax.nn.recognizer` network's pooled
last stage), `recognizer_values:PATH` (its value heads), `recognizer_heads:PATH` (every head, class
heads as softmax probabilities), `recognizer_turns:PATH` (the same, then each NAME_cos / NAME_sin
head pair's angle in turns, [0, 1)), `resnet:PATH` (a torchvision-layout ResNet state dict's pooled
penultimate features), `vggface2:PATH` (the same for a VGGFace2 ResNet-50) and `inception:PATH` (a
torchvision Inception v3 state dict's pooled 2048 features at 299x299, the reference's attribute
encoder). Images come in as
the generators give them (NHWC in [-1, 1]); each encoder resizes them to its input size.
`normalize` L2-normalises the embedding (identity embeddings are compared by cosine).
Details: docs/networks.md#latentjaxidentityencoders
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.nn.inception import FEATURE_DIM, load_inception
from latentjax.nn.recognizer import load_recognizer
from latentjax.nn.resnet import load_resnet

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)
KINDS = ("recognizer", "recognizer_values", "recognizer_heads", "recognizer_turns", "resnet", "vggface2", "inception")
INCEPTION_SIZE = 299


class Encoder:
    """A loaded image encoder: `embed(params, images [N, H, W, C] in [-1, 1]) -> [N, dim]` (pure, differentiable),
    its `params`, its `spec` (how to load it again), `dim`, and `heads`: the name of each embedding
    column where they have one (a `recognizer_values` encoder's value heads), else None."""

    def __init__(self, spec: str, apply: Callable, params: Any, dim: int, resolution: int, normalize: bool,
                 heads: tuple[str, ...] | None = None):
        self.spec, self.params, self.dim, self.resolution, self.normalize = spec, params, dim, resolution, normalize
        self.heads = heads
        self._apply = apply

    def __repr__(self):
        return f"Encoder({self.spec!r}, {self.resolution}x{self.resolution} -> {self.dim}, normalize={self.normalize})"

    def embed(self, params, images):
        images = jnp.asarray(images, jnp.float32)
        if images.ndim != 4:
            raise ValueError(f"encoder {self.spec!r}: images must be [N, H, W, C], got shape {tuple(images.shape)}")
        if images.shape[1:3] != (self.resolution, self.resolution):
            images = jax.image.resize(images, images.shape[:1] + (self.resolution, self.resolution) + images.shape[3:],
                                      "linear")
        out = self._apply(params, images).astype(jnp.float32)
        return out / jnp.linalg.norm(out, axis=-1, keepdims=True).clip(1e-12) if self.normalize else out


def load_encoder(spec: str, *, normalize: bool = False, heads: tuple[str, ...] | None = None) -> Encoder:
    """The encoder a spec names (see the module docstring); a ValueError names what was expected.
    `heads` picks some of a `recognizer_values` network's value heads, in that order (None: all)."""
    kind, sep, path = str(spec).partition(":")
    if not sep or kind not in KINDS or not path:
        raise ValueError(f"encoder spec {spec!r}: expected KIND:PATH with KIND one of {KINDS}")
    if heads is not None and kind != "recognizer_values":
        raise ValueError(f"encoder spec {spec!r}: heads {heads} can only be picked from a recognizer_values encoder")
    if kind.startswith("recognizer"):
        net = load_recognizer(path)
        cfg = net.config
        if kind == "recognizer":
            return Encoder(spec, net.embed, net.params, cfg.width * 2 ** (cfg.depth - 1), cfg.img_resolution, normalize)
        if kind == "recognizer_heads":
            apply = lambda params, images: jnp.concatenate(_every_head(cfg, net.logits(params, images)), axis=-1)  # noqa: E731
            return Encoder(spec, apply, net.params, sum(cfg.head_classes), cfg.img_resolution, normalize)
        if kind == "recognizer_turns":
            return _turns_encoder(spec, net, normalize)
        if not cfg.value_heads:
            raise ValueError(f"encoder spec {spec!r}: the recognizer has no value heads (heads: {cfg.head_names})")
        heads = cfg.value_heads if heads is None else tuple(heads)
        if not heads or not set(heads) <= set(cfg.value_heads):
            raise ValueError(f"encoder spec {spec!r}: heads must be some of its value heads {cfg.value_heads}, "
                             f"got {heads}")
        apply = lambda params, images: jnp.concatenate([net.logits(params, images)[h] for h in heads], axis=-1)  # noqa: E731
        return Encoder(spec, apply, net.params, len(heads), cfg.img_resolution, normalize, heads)
    if kind == "inception":  # images in [-1, 1] are the network's own input scale (see latentjax.nn.inception)
        net = load_inception(path)
        return Encoder(spec, _frozen_statistics(net), net.variables, FEATURE_DIM, INCEPTION_SIZE, normalize)
    net = load_resnet(path)
    if net.config.img_channels != 3:
        raise ValueError(f"encoder spec {spec!r}: a ResNet encoder takes RGB images, this one has "
                         f"{net.config.img_channels} input channels")
    if kind == "resnet":
        scale, shift = 0.5 / np.asarray(IMAGENET_STD), (0.5 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
        prepare = lambda images: images * scale + shift  # noqa: E731
    else:
        prepare = lambda images: (images[..., ::-1] + 1) * 127.5 - np.asarray(VGGFACE2_MEAN_BGR)  # noqa: E731

    return Encoder(spec, _frozen_statistics(net, prepare), net.variables, net.config.feature_dim, 224, normalize)


def _turns_encoder(spec: str, net, normalize: bool) -> Encoder:
    """`recognizer_turns`: `recognizer_heads`' embedding, then each NAME_cos / NAME_sin pair of value
    heads' angle in turns, in [0, 1). The turns are cut at 0 like a generator that lays a periodic
    factor on a line (`latentjax.shapes.seeding`'s "line"), so that a continuous mapper fed them need
    not jump there; the cosine and sine stay, for a loss that sees the angle's full change."""
    cfg = net.config
    angles = [h[:-4] for h in cfg.head_names if h.endswith("_cos") and f"{h[:-4]}_sin" in cfg.head_names]
    if not angles:
        raise ValueError(f"encoder spec {spec!r}: the recognizer has no NAME_cos / NAME_sin head pair "
                         f"(heads: {cfg.head_names})")

    def apply(params, images):
        out = net.logits(params, images)
        turns = [(jnp.arctan2(out[f"{a}_sin"], out[f"{a}_cos"]) / (2 * jnp.pi)) % 1.0 for a in angles]
        return jnp.concatenate(_every_head(cfg, out) + turns, axis=-1)
    return Encoder(spec, apply, net.params, sum(cfg.head_classes) + len(angles), cfg.img_resolution, normalize)


def _every_head(cfg, logits: dict) -> list:
    """Each head's output in the recognizer's head order: a value head as it is, a class head as
    softmax probabilities (`recognizer_heads`' embedding, in parts)."""
    return [logits[h] if k == 1 else jax.nn.softmax(logits[h]) for h, k in zip(cfg.head_names, cfg.head_classes)]


def _frozen_statistics(net, prepare=lambda images: images):
    """`embed`'s apply for a batch-norm network: its pooled features of `prepare(images)`, with the
    batch-norm statistics as constants (fine-tuning moves the weights only)."""
    def apply(variables, images):
        frozen = {**variables, "batch_stats": jax.lax.stop_gradient(variables["batch_stats"])}
        return net.apply(frozen, prepare(images))[1]
    return apply
