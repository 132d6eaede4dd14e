"""StyleGAN2 generator as Flax modules and a pure-functional `StyleGAN2` wrapper.

The architecture is that of NVIDIA's stylegan2-ada-pytorch `training/networks.py`
(mapping network with optional class embedding, synthesis network of blocks with modulated
convolutions, noise inputs, skip/resnet/orig architectures). Layouts are NHWC for activations
and HWIO / (in, out) for weights. Weights are stored unscaled and scaled at run time
(equalised learning rate), so converted checkpoints and freshly initialised models share one
parameter convention.
Details (the params tree): docs/networks.md#latentjaxmodelsstylegan2
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin, check_clamp, check_filter, check_positive, check_resolution
from latentjax.models.base import StyleGenerator, select_layers
from latentjax.models.taps import Hooks, tap
from latentjax.ops.bias_act import ACTIVATIONS, bias_act, check_activation
from latentjax.ops.conv2d_resample import conv2d_resample
from latentjax.ops.layers import FullyConnected, normal_init, normalize_2nd_moment
from latentjax.ops.modulated_conv import modulated_conv2d
from latentjax.ops.upfirdn2d import setup_filter, upsample2d

ARCHITECTURES = ("orig", "skip", "resnet")


@dataclasses.dataclass(frozen=True)
class StyleGAN2Config(ConfigMixin):
    """Everything that defines the architecture; serialisable to JSON, hashable for `jit`.

    `channels[i]` is the width of the block at resolution 4 * 2**i, read from a checkpoint's
    weight shapes when converting. `resample_filter` is the 2-D FIR, normalised to sum 1.
    """

    config_name = "StyleGAN2 config"

    z_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    channels: tuple[int, ...]
    c_dim: int = 0
    embed_features: int = 0
    mapping_layers: int = 8
    mapping_features: int = 0  # hidden width of the mapping network; 0 = w_dim
    mapping_lr_multiplier: float = 0.01
    mapping_activation: str = "lrelu"
    activation: str = "lrelu"
    architecture: str = "skip"
    kernel_size: int = 3
    use_noise: bool = True
    conv_clamp: float | None = None
    resample_filter: tuple[tuple[float, ...], ...] = tuple(map(tuple, setup_filter([1, 3, 3, 1]).tolist()))

    def __post_init__(self):
        res_log2 = check_resolution(self.img_resolution, 4)
        check_positive(self, "z_dim", "w_dim", "img_channels", "mapping_layers", "kernel_size")
        check_positive(self, "c_dim", "embed_features", "mapping_features", minimum=0, what=">= 0")
        if not self.kernel_size % 2:
            raise ValueError(f"kernel_size must be odd (the convolutions pad by kernel_size // 2), got {self.kernel_size}")
        check_positive(self, "mapping_lr_multiplier", minimum=np.finfo(np.float64).tiny, what="a finite number > 0")
        check_clamp(self.conv_clamp)
        check_filter(self.resample_filter)
        if len(self.channels) != res_log2 - 1:
            raise ValueError(f"channels must list one width per block resolution {self.block_resolutions}, "
                             f"got {len(self.channels)} values")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.c_dim > 0 and self.embed_features <= 0:
            raise ValueError("a conditional mapping network (c_dim > 0) needs embed_features > 0")
        check_positive(self, "channels", what="a list of positive widths")
        check_activation(self.activation)
        check_activation(self.mapping_activation)

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        return tuple(4 * 2 ** i for i in range(int(self.img_resolution).bit_length() - 2))

    @property
    def num_ws(self) -> int:
        """Number of per-layer w vectors the synthesis network consumes."""
        convs = 1 + 2 * (len(self.block_resolutions) - 1)
        return convs + 1  # the last block's toRGB; earlier toRGBs share a w with the next conv

    def block_num_torgb(self, res: int) -> int:
        return int(self.architecture == "skip" or res == self.img_resolution)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the intermediate features `StyleGAN2.features` returns, in compute order."""
        names = []
        for res in self.block_resolutions:
            if res > 4:
                names.append(f"b{res}.conv0")
            names.append(f"b{res}")
            if self.block_num_torgb(res):
                names.append(f"b{res}.img")
        return tuple(names)


class MappingNetwork(nn.Module):
    """z (and class c) -> w, broadcast to num_ws, with truncation towards `w_avg`."""

    config: StyleGAN2Config

    @nn.compact
    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        cfg = self.config
        x = normalize_2nd_moment(z.astype(jnp.float32))
        if cfg.c_dim > 0:
            y = FullyConnected(cfg.embed_features, name="embed")(c.astype(jnp.float32))
            x = jnp.concatenate([x, normalize_2nd_moment(y)], axis=1)
        hidden = cfg.mapping_features or cfg.w_dim
        for idx in range(cfg.mapping_layers):
            features = cfg.w_dim if idx == cfg.mapping_layers - 1 else hidden
            x = FullyConnected(features, activation=cfg.mapping_activation,
                               lr_multiplier=cfg.mapping_lr_multiplier, name=f"fc{idx}")(x)
        w_avg = self.param("w_avg", nn.initializers.zeros_init(), (cfg.w_dim,))
        ws = jnp.broadcast_to(x[:, None, :], (x.shape[0], cfg.num_ws, cfg.w_dim))
        return truncate(ws, w_avg, truncation_psi, truncation_cutoff)


def truncate(ws, w_avg, truncation_psi=1.0, truncation_cutoff=None):
    """w_avg + psi * (ws - w_avg) on the first `truncation_cutoff` layers (all if None).

    Both `truncation_psi` and `truncation_cutoff` may be traced values.
    """
    if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
        return ws
    truncated = w_avg + truncation_psi * (ws - w_avg)
    if truncation_cutoff is None:
        return truncated
    layer = jnp.arange(ws.shape[1])[None, :, None]
    return jnp.where(layer < truncation_cutoff, truncated, ws)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling), noise, bias, activation, clamp."""

    out_channels: int
    resolution: int
    up: int
    config: StyleGAN2Config

    @nn.compact
    def __call__(self, x, w, noise_mode="const", gain=1.0, compute_dtype=jnp.float32, impl="fast"):
        cfg = self.config
        k = cfg.kernel_size
        styles = FullyConnected(x.shape[-1], bias_init=1.0, name="affine")(w)
        weight = self.param("weight", normal_init(), (k, k, x.shape[-1], self.out_channels))
        noise = None
        if cfg.use_noise:
            noise_const = self.param("noise_const", normal_init(), (self.resolution, self.resolution))
            strength = self.param("noise_strength", nn.initializers.zeros_init(), ())
            if noise_mode == "random":
                shape = (x.shape[0], self.resolution, self.resolution, 1)
                noise = jax.random.normal(self.make_rng("noise"), shape, jnp.float32) * strength
            elif noise_mode == "const":
                noise = (noise_const * strength)[None, :, :, None]
        x = modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=k // 2,
                             resample_filter=np.asarray(cfg.resample_filter), flip_weight=(self.up == 1),
                             compute_dtype=compute_dtype, impl=impl)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.out_channels,))
        act_gain = ACTIVATIONS[cfg.activation].default_gain * gain
        clamp = cfg.conv_clamp * gain if cfg.conv_clamp is not None else None
        return bias_act(x, bias, act=cfg.activation, gain=act_gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation."""

    config: StyleGAN2Config

    @nn.compact
    def __call__(self, x, w, compute_dtype=jnp.float32, impl="fast"):
        cfg = self.config
        fan_in = x.shape[-1]
        styles = FullyConnected(fan_in, bias_init=1.0, name="affine")(w) / np.sqrt(fan_in)
        weight = self.param("weight", normal_init(), (1, 1, fan_in, cfg.img_channels))
        bias = self.param("bias", nn.initializers.zeros_init(), (cfg.img_channels,))
        x = modulated_conv2d(x, weight, styles, demodulate=False, compute_dtype=compute_dtype, impl=impl)
        return bias_act(x, bias, clamp=cfg.conv_clamp)


class SkipLayer(nn.Module):
    """The resnet architecture's 1x1 upsampling shortcut (no bias, linear, gain sqrt(1/2))."""

    out_channels: int
    config: StyleGAN2Config

    @nn.compact
    def __call__(self, x, compute_dtype=jnp.float32, impl="fast"):
        weight = self.param("weight", normal_init(), (1, 1, x.shape[-1], self.out_channels))
        weight = weight / np.sqrt(x.shape[-1])
        y = conv2d_resample(x.astype(compute_dtype), weight.astype(compute_dtype),
                            f=np.asarray(self.config.resample_filter), up=2, flip_weight=False, impl=impl)
        return y.astype(jnp.float32) * np.sqrt(0.5)


class SynthesisBlock(nn.Module):
    """One resolution: (const | upsampling conv0), conv1, and toRGB added to the skip image."""

    resolution: int
    in_channels: int  # 0 for the first (constant input) block
    out_channels: int
    config: StyleGAN2Config

    @nn.compact
    def __call__(self, x, img, ws, noise_mode="const", compute_dtype=jnp.float32, impl="fast", hooks=None):
        cfg = self.config
        features = {}
        name = f"b{self.resolution}"
        layer = dict(noise_mode=noise_mode, compute_dtype=compute_dtype, impl=impl)
        conv1 = SynthesisLayer(self.out_channels, self.resolution, 1, cfg, name="conv1")
        if self.in_channels == 0:
            const = self.param("const", normal_init(), (self.resolution, self.resolution, self.out_channels))
            x = jnp.broadcast_to(const[None], (ws.shape[0],) + const.shape)
            x = conv1(x, ws[:, 0], **layer)
            w_used = 1
        else:
            conv0 = SynthesisLayer(self.out_channels, self.resolution, 2, cfg, name="conv0")
            if cfg.architecture == "resnet":
                y = SkipLayer(self.out_channels, cfg, name="skip")(x, compute_dtype=compute_dtype, impl=impl)
                x = tap(features, hooks, f"{name}.conv0", conv0(x, ws[:, 0], **layer))
                x = y + conv1(x, ws[:, 1], gain=np.sqrt(0.5), **layer)
            else:
                x = tap(features, hooks, f"{name}.conv0", conv0(x, ws[:, 0], **layer))
                x = conv1(x, ws[:, 1], **layer)
            w_used = 2
        x = tap(features, hooks, name, x)
        if img is not None:
            img = upsample2d(img, np.asarray(cfg.resample_filter), impl=impl)
        if cfg.block_num_torgb(self.resolution):
            y = ToRGBLayer(cfg, name="torgb")(x, ws[:, w_used], compute_dtype=compute_dtype, impl=impl)
            img = tap(features, hooks, f"{name}.img", y if img is None else img + y)
        return x, img, features


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, H, W, C] and the per-layer features."""

    config: StyleGAN2Config

    @nn.compact
    def __call__(self, ws, noise_mode="const", compute_dtype=jnp.float32, impl="fast", hooks=None):
        cfg = self.config
        x = img = None
        features = {}
        w_idx = 0
        for i, res in enumerate(cfg.block_resolutions):
            num_conv = 1 if i == 0 else 2
            block = SynthesisBlock(res, cfg.channels[i - 1] if i else 0, cfg.channels[i], cfg, name=f"b{res}")
            block_ws = ws[:, w_idx: w_idx + num_conv + cfg.block_num_torgb(res)]
            x, img, block_features = block(x, img, block_ws, noise_mode=noise_mode,
                                           compute_dtype=compute_dtype, impl=impl, hooks=hooks)
            features.update(block_features)
            w_idx += num_conv
        return img, features


def mix_styles(ws_a, ws_b, inject_index):
    """Style mixing: layers [0, inject_index) from `ws_a`, the rest from `ws_b` (may be traced)."""
    layer = jnp.arange(ws_a.shape[1])[None, :, None]
    return jnp.where(layer < inject_index, ws_a, ws_b)


class StyleGAN2(StyleGenerator):
    """A StyleGAN2 generator: a config, a params pytree, and pure functions of (params, inputs).

    Every entry point takes `params` first, has no hidden state, and works under `jit`, `vmap`
    and `grad`. Images are NHWC in the source model's value range (about [-1, 1]).
    """

    family = "stylegan2"
    mapping_network = MappingNetwork
    synthesis_network = SynthesisNetwork

    def __repr__(self):
        cfg = self.config
        return (f"StyleGAN2({cfg.img_resolution}x{cfg.img_resolution}x{cfg.img_channels}, z_dim={cfg.z_dim}, "
                f"w_dim={cfg.w_dim}, c_dim={cfg.c_dim}, num_ws={cfg.num_ws}, channels={list(cfg.channels)})")

    # --- pure functions -----------------------------------------------------------------
    def synthesis(self, params, ws, noise_mode="const", key=None, compute_dtype=jnp.float32, impl="fast",
                  hooks: Hooks | None = None):
        """ws [N, num_ws, w_dim] -> image [N, H, W, C] (float32); `hooks`: see `latentjax.models.taps`."""
        return self._run_synthesis(params, ws, noise_mode, key, compute_dtype, impl, hooks)[0]

    def features(self, params, ws, layers: Sequence[str] | None = None, noise_mode="const", key=None,
                 compute_dtype=jnp.float32, impl="fast", hooks: Hooks | None = None):
        """Intermediate activations by name (see `layer_names`), NHWC float32, plus 'img'."""
        img, features = self._run_synthesis(params, ws, noise_mode, key, compute_dtype, impl, hooks)
        features["img"] = img
        return select_layers(features, layers)

    def generate(self, params, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const",
                 key=None, compute_dtype=jnp.float32):
        """The whole model: z (and c) -> image [N, H, W, C]."""
        ws = self.mapping(params, z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(params, ws, noise_mode=noise_mode, key=key, compute_dtype=compute_dtype)

    mix = staticmethod(mix_styles)

    # --- styles (StyleSpace) and the closed-form methods' weights ----------------------------
    def style_layers(self) -> tuple[tuple[str, str, int], ...]:
        """The affine (style) layers in synthesis order: (block, layer, index of the w it reads).

        A block's toRGB shares its w with the next block's first conv, as in `SynthesisNetwork`.
        """
        layers, w_idx = [], 0
        for i, res in enumerate(self.config.block_resolutions):
            convs = ("conv1",) if i == 0 else ("conv0", "conv1")
            layers += [(f"b{res}", name, w_idx + j) for j, name in enumerate(convs)]
            if self.config.block_num_torgb(res):
                layers.append((f"b{res}", "torgb", w_idx + len(convs)))
            w_idx += len(convs)
        return tuple(layers)

    def affine_path(self, block: str, layer: str) -> tuple[str, ...]:
        return ("synthesis", block, layer, "affine")

    def input_weight(self, params, layers=None, torgb: str = "last"):
        """The affine weights [sum of channels, w_dim] of the style layers that read the selected w
        indices (boolean mask [num_ws]; None: all): every conv's, and one toRGB's: the last
        (`torgb="last"`, genforce/sefa's choice) or the first (`"first"`, rosinality's
        `closed_form_factorization.py`). The stored weights, as the equalised-lr gain is a
        per-layer constant."""
        if torgb not in ("last", "first"):
            raise ValueError(f"torgb must be 'last' or 'first' (the toRGB whose affine is kept), got {torgb!r}")
        layers = np.ones(self.num_ws, bool) if layers is None else np.asarray(layers, bool)
        if layers.shape != (self.num_ws,):
            raise ValueError(f"layers must be a mask of {self.num_ws} w indices, got shape {layers.shape}")
        torgbs = [(block, layer) for block, layer, _ in self.style_layers() if layer == "torgb"]
        kept = torgbs[-1 if torgb == "last" else 0]
        chosen = [np.asarray(self.affine(params, block, layer)["weight"], np.float64).T
                  for block, layer, w_idx in self.style_layers()
                  if layers[w_idx] and (layer != "torgb" or (block, layer) == kept)]
        if not chosen:
            raise ValueError("the layer selection holds no style layer")
        return np.concatenate(chosen, axis=0)

    # --- noise inputs --------------------------------------------------------------------
    def noise_maps(self, params) -> dict:
        """The constant noise maps by name, sorted: {'synthesis/b8/conv0/noise_const': [8, 8], ...}."""
        return {f"synthesis/{block}/{layer}/noise_const": value["noise_const"]
                for block, layers in sorted(params["synthesis"].items()) if isinstance(layers, Mapping)
                for layer, value in sorted(layers.items()) if isinstance(value, Mapping) and "noise_const" in value}

    def with_noise(self, params, maps):
        """`params` with the noise maps named in `maps` (names as `noise_maps`) replaced; a new tree."""
        if not maps:
            return params
        unknown = sorted(set(maps) - set(self.noise_maps(params)))
        if unknown:
            raise ValueError(f"unknown noise maps {unknown}; this generator has {sorted(self.noise_maps(params))}")
        synthesis = dict(params["synthesis"])
        for name, value in maps.items():
            _, block, layer, _ = name.split("/")
            synthesis[block] = dict(synthesis[block])
            synthesis[block][layer] = {**synthesis[block][layer], "noise_const": value}
        return {**params, "synthesis": synthesis}

    def _run_synthesis(self, params, ws, noise_mode, key, compute_dtype, impl, hooks=None):
        cfg = self.config
        compute_dtype = self.check_synthesis_inputs(ws, noise_mode, compute_dtype, hooks)
        rngs = {}
        if noise_mode == "random" and cfg.use_noise:
            if key is None:
                raise ValueError("noise_mode='random' needs an explicit key (jax.random.key)")
            rngs["noise"] = key
        return self._synthesis.apply({"params": params["synthesis"]}, ws.astype(jnp.float32),
                                     noise_mode=noise_mode, compute_dtype=compute_dtype, impl=impl, hooks=hooks,
                                     rngs=rngs)


def widen(generator: StyleGAN2, config: StyleGAN2Config, key) -> StyleGAN2:
    """`generator` at the wider `config` (the same architecture but for `channels`, none narrower):
    its params fill the leading channels and fresh ones (`key`) the rest, except that weights from
    a new input channel into an old output channel are zero. So it draws the same images, and
    training can then use the new channels: a trained generator grown, not restarted (Net2Net)."""
    old = generator.config
    same_but_channels = dataclasses.replace(config, channels=old.channels) == old
    if not same_but_channels or len(config.channels) != len(old.channels) \
            or any(new < was for new, was in zip(config.channels, old.channels)):
        raise ValueError(f"widen: {config} must equal the generator's config {old} but for channels, each at least "
                         f"the generator's")

    def embed(path, fresh, trained):
        trained = np.asarray(trained)
        if fresh.shape == trained.shape:
            return trained
        out = np.array(fresh)
        convolution = path[-1].key == "weight" and out.ndim == 4  # HWIO
        if convolution:  # its run-time gain 1 / sqrt(fan-in) falls as inputs are added: keep the effective weights
            trained = trained * np.sqrt(out.shape[2] / trained.shape[2])
        out[tuple(slice(0, n) for n in trained.shape)] = trained
        if convolution:  # new inputs -> old outputs
            out[:, :, trained.shape[2]:, :trained.shape[3]] = 0.0
        return out

    params = jax.tree_util.tree_map_with_path(embed, StyleGAN2.init(config, key).params, generator.params)
    return StyleGAN2(config, params, generator.metadata)


def mapping_weights(generator: StyleGAN2) -> list[tuple[np.ndarray, np.ndarray]]:
    """The mapping network's layers as (weight [in, out], bias [out]) in the units they are applied in
    (the stored params times the equalised learning rate's scales): each layer is
    `act(x @ weight + bias) * gain` of the one before, from the normalised z to w."""
    cfg, mapping = generator.config, generator.params["mapping"]
    layers = []
    for idx in range(cfg.mapping_layers):
        weight, bias = (np.asarray(mapping[f"fc{idx}"][name], np.float64) for name in ("weight", "bias"))
        layers.append((weight * cfg.mapping_lr_multiplier / np.sqrt(weight.shape[0]), bias * cfg.mapping_lr_multiplier))
    return layers


def with_mapping(generator: StyleGAN2, layers, metadata: dict | None = None, w_avg=None) -> StyleGAN2:
    """`generator` with its mapping network replaced by `layers` ((weight, bias) pairs as `mapping_weights`
    gives them: the first reads z_dim inputs, every hidden layer is as wide as the first, the last
    gives w_dim), the synthesis params kept, and `w_avg` (the centre of truncation) where given, else the
    generator's: a mapping built or fitted outside, stored as a StyleGAN2 of `len(layers)` mapping layers."""
    cfg = generator.config
    hidden = layers[0][0].shape[1] if len(layers) > 1 else cfg.w_dim
    expected = [(cfg.z_dim + (cfg.embed_features if cfg.c_dim else 0), hidden)] + [(hidden, hidden)] * (len(layers) - 2)
    expected += [(hidden, cfg.w_dim)] if len(layers) > 1 else []
    shapes = [(tuple(np.shape(w)), tuple(np.shape(b))) for w, b in layers]
    if not layers or shapes != [(shape, (shape[1],)) for shape in expected]:
        raise ValueError(f"with_mapping: layers must be (weight, bias) of shapes {[(s, (s[1],)) for s in expected]} "
                         f"for this generator (z_dim {cfg.z_dim}, w_dim {cfg.w_dim}), got {shapes}")
    config = dataclasses.replace(cfg, mapping_layers=len(layers), mapping_features=hidden)
    lr = cfg.mapping_lr_multiplier
    mapping = {f"fc{idx}": {"weight": jnp.asarray(np.asarray(w) * np.sqrt(np.shape(w)[0]) / lr, jnp.float32),
                            "bias": jnp.asarray(np.asarray(b) / lr, jnp.float32)} for idx, (w, b) in enumerate(layers)}
    mapping["w_avg"] = jnp.asarray(generator.params["mapping"]["w_avg"] if w_avg is None else w_avg, jnp.float32)
    if cfg.c_dim:
        mapping["embed"] = generator.params["mapping"]["embed"]
    return StyleGAN2(config, {**generator.params, "mapping": mapping},
                     generator.metadata if metadata is None else metadata)
