"""StyleGAN3 (alias-free; configs T and R) as Flax modules and a pure-functional `StyleGAN3` wrapper.

The architecture is that of NVIDIA's stylegan3 `training/networks_stylegan3.py`: a mapping network,
`SynthesisInput` (Fourier features moved by an affine of ws[0] and by a user transform), modulated
convolutions each followed by a filtered leaky ReLU (`ops.filtered_lrelu`), and a ToRGB layer.
There is no constant input and no noise. The layer schedule follows from the config exactly as the
reference computes it, with the reference's layer names (`L{i}_{size}_{channels}`). Weights are
stored unscaled (equalised learning rate), as for `StyleGAN2`; the FIR filters live in the config.
Details: docs/networks.md#latentjaxmodelsstylegan3
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from latentjax.config import ConfigMixin
from latentjax.models.base import StyleGenerator, select_layers
from latentjax.models.stylegan2 import MappingNetwork
from latentjax.models.taps import Hooks, tap
from latentjax.ops.filtered_lrelu import filtered_lrelu
from latentjax.ops.layers import FullyConnected, normal_init
from latentjax.ops.modulated_conv import modulated_conv2d

LRELU_GAIN = float(np.sqrt(2))


# --- filter design (what the reference's `design_lowpass_filter` computes, without scipy) ----------
def _kaiser_beta(atten: float) -> float:
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def _kaiser_atten(numtaps: int, width: float) -> float:
    """Attenuation (dB) of a Kaiser FIR of `numtaps` taps and transition width `width` (in units of Nyquist)."""
    return 2.285 * (numtaps - 1) * np.pi * width + 7.95


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1(x) = (1/2pi) * integral over a period of cos(t - x sin t): the trapezoid rule converges geometrically."""
    t = np.linspace(0, 2 * np.pi, 512, endpoint=False)
    return np.cos(t - np.multiply.outer(x, np.sin(t))).mean(axis=-1)


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False):
    """The reference's Kaiser-windowed low-pass FIR: None for one tap, 1-D taps (separable, scipy's
    `firwin(numtaps, cutoff, width=width, fs=fs)`), or a radially symmetric 2-D jinc filter."""
    if numtaps == 1:
        return None
    beta = _kaiser_beta(_kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    if not radial:
        m = np.arange(numtaps) - (numtaps - 1) / 2
        c = cutoff / (fs / 2)
        h = c * np.sinc(c * m) * window
        return (h / h.sum()).astype(np.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = _bessel_j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    f = f * np.outer(window, window)
    return (f / f.sum()).astype(np.float32)


# --- configuration and the layer schedule -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InputSpec:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer as the reference's `SynthesisLayer.__init__` derives it."""

    name: str
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    is_torgb: bool
    is_critically_sampled: bool
    kernel: int
    up: int
    down: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]  # (x0, x1, y0, y1)


@dataclasses.dataclass(frozen=True)
class StyleGAN3Config(ConfigMixin):
    """Everything that defines the architecture (the reference's `init_kwargs`); JSON-serialisable, hashable.

    `up_filters` / `down_filters`: one entry per synthesis layer (num_layers + 1), each () for
    one tap (no filter), a tuple of taps (separable) or a tuple of rows (2-D, R's radial down
    filters); both empty (the default): designed from the schedule as the reference does.
    """

    config_name = "StyleGAN3 config"

    z_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int = 3
    c_dim: int = 0
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2 ** 2.1
    last_stopband_rel: float = 2 ** 0.3
    margin_size: int = 10
    output_scale: float = 0.25
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256.0
    up_filters: tuple = ()
    down_filters: tuple = ()

    # StyleGAN2's mapping network with StyleGAN3's fixed choices: the class embedding and every
    # layer w_dim wide, leaky ReLU
    embed_features = property(lambda self: self.w_dim)
    mapping_features = property(lambda self: self.w_dim)
    mapping_activation = "lrelu"

    def __post_init__(self):
        for name in ("z_dim", "w_dim", "img_resolution", "img_channels", "mapping_layers", "num_layers",
                     "channel_base", "channel_max", "conv_kernel", "filter_size", "lrelu_upsampling"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.num_critical < self.num_layers:
            raise ValueError(f"num_critical must be in [0, num_layers), got {self.num_critical}")
        for name in ("up_filters", "down_filters"):
            given = getattr(self, name)
            if given and len(given) != self.num_layers + 1:
                raise ValueError(f"{name} must list one filter per synthesis layer ({self.num_layers + 1}), "
                                 f"got {len(given)}")
        if bool(self.up_filters) != bool(self.down_filters):
            raise ValueError("give both up_filters and down_filters, or neither (designed)")

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2

    @property
    def input_spec(self) -> InputSpec:
        return _schedule(self)[0]

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The synthesis layers L0 .. L{num_layers} (the last is ToRGB)."""
        return _schedule(self)[1]

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the features `StyleGAN3.features` returns: 'input', then the layers (state-dict names)."""
        return ("input",) + tuple(spec.name for spec in self.layers)

    def filters(self, index: int):
        """(up, down) filters of layer `index` as numpy arrays (None = one tap)."""
        return _filters(self)[index]


@functools.lru_cache(maxsize=64)
def _schedule(cfg: StyleGAN3Config) -> tuple[InputSpec, tuple[LayerSpec, ...]]:
    """Sizes, sampling rates, cutoffs and paddings: `SynthesisNetwork.__init__` and `SynthesisLayer.__init__`."""
    n, res = cfg.num_layers, cfg.img_resolution
    last_cutoff = res / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - cfg.num_critical), 1)
    cutoffs = cfg.first_cutoff * (last_cutoff / cfg.first_cutoff) ** exponents
    stopbands = cfg.first_stopband * (last_stopband / cfg.first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + cfg.margin_size * 2
    sizes[-2:] = res
    channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    channels[-1] = cfg.img_channels

    layers = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == n
        in_rate, out_rate = int(rates[prev]), int(rates[idx])
        tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else cfg.lrelu_upsampling)
        up, down = int(np.rint(tmp_rate / in_rate)), int(np.rint(tmp_rate / out_rate))
        if in_rate * up != tmp_rate or out_rate * down != tmp_rate:
            raise ValueError(f"layer {idx}: sampling rates {in_rate} -> {tmp_rate} -> {out_rate} are not integer "
                             f"multiples (lrelu_upsampling={cfg.lrelu_upsampling})")
        up_taps = cfg.filter_size * up if up > 1 and not is_torgb else 1
        down_taps = cfg.filter_size * down if down > 1 and not is_torgb else 1
        kernel = 1 if is_torgb else cfg.conv_kernel
        in_size, out_size = int(sizes[prev]), int(sizes[idx])
        pad_total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2  # the symmetric interpretation (paper, Appendix C.3)
        pad_hi = pad_total - pad_lo
        critical = idx >= n - cfg.num_critical
        out_channels = int(channels[idx])
        layers.append(LayerSpec(
            name=f"L{idx}_{out_size}_{out_channels}", in_channels=int(channels[prev]), out_channels=out_channels,
            in_size=in_size, out_size=out_size, in_sampling_rate=in_rate, out_sampling_rate=out_rate,
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx]),
            is_torgb=is_torgb, is_critically_sampled=critical, kernel=kernel, up=up, down=down,
            up_taps=up_taps, down_taps=down_taps, down_radial=cfg.use_radial_filters and not critical,
            padding=(pad_lo, pad_hi, pad_lo, pad_hi)))
    spec = InputSpec(channels=int(channels[0]), size=int(sizes[0]), sampling_rate=float(rates[0]),
                     bandwidth=float(cutoffs[0]))
    return spec, tuple(layers)


def designed_filters(cfg: StyleGAN3Config) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """The filters the reference designs for `cfg`'s schedule, (up, down) per layer."""
    out = []
    for spec in cfg.layers:
        tmp_rate = spec.in_sampling_rate * spec.up
        fu = design_lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, tmp_rate)
        fd = design_lowpass_filter(spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, tmp_rate,
                                   radial=spec.down_radial)
        out.append((fu, fd))
    return out


def filters_to_config(filters) -> tuple:
    """numpy filters (None, 1-D or 2-D) -> the nested tuples the config stores."""
    as_tuple = lambda a: tuple(map(as_tuple, a)) if isinstance(a, list) else a
    return tuple(() if f is None else as_tuple(np.asarray(f, np.float32).tolist()) for f in filters)


@functools.lru_cache(maxsize=64)
def _filters(cfg: StyleGAN3Config):
    if not cfg.up_filters:
        pairs = designed_filters(cfg)
    else:
        as_array = lambda f: None if len(f) == 0 else np.asarray(f, np.float32)
        pairs = [(as_array(u), as_array(d)) for u, d in zip(cfg.up_filters, cfg.down_filters)]
    for spec, (fu, fd) in zip(cfg.layers, pairs):
        for what, f, taps, ndim in (("up", fu, spec.up_taps, 1), ("down", fd, spec.down_taps,
                                                                   2 if spec.down_radial else 1)):
            shape = () if f is None else f.shape
            expected = () if taps == 1 else (taps,) * ndim
            if shape != expected:
                raise ValueError(f"layer {spec.name}: the {what} filter has shape {shape}, but the schedule "
                                 f"needs {expected or 'none (one tap)'}")
    return tuple(pairs)


def make_transform(translate, angle_deg):
    """The user transform `G.synthesis(..., transform=T)` takes, from a translation (x, y) and an angle
    in degrees: the inverse of `gen_images.py`'s `make_transform`, as it stores it. Traceable and
    differentiable; `translate` [..., 2] and `angle_deg` [...] give T [..., 3, 3]."""
    translate = jnp.asarray(translate, jnp.float32)
    angle = jnp.asarray(angle_deg, jnp.float32) * (np.pi / 180)
    c, s = jnp.cos(angle), jnp.sin(angle)
    tx, ty = translate[..., 0], translate[..., 1]
    zero, one = jnp.zeros_like(c), jnp.ones_like(c)
    # inverse of [[c, s, tx], [-s, c, ty], [0, 0, 1]]: [[R^T, -R^T t], [0, 1]]
    rows = [[c, -s, -(c * tx - s * ty)], [s, c, -(s * tx + c * ty)], [zero, zero, one]]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


# --- the networks -------------------------------------------------------------------------------
def _init_freqs(bandwidth):
    def init(key, shape):
        freqs = jax.random.normal(key, shape, jnp.float32)
        radii = jnp.sqrt(jnp.sum(jnp.square(freqs), axis=1, keepdims=True))
        return freqs / (radii * jnp.exp(jnp.square(radii)) ** 0.25) * bandwidth
    return init


class SynthesisInput(nn.Module):
    """ws[0] (and the user transform) -> Fourier features [N, size, size, C]."""

    config: StyleGAN3Config

    @nn.compact
    def __call__(self, w, transform=None):
        spec = self.config.input_spec
        channels, size = spec.channels, spec.size
        weight = self.param("weight", normal_init(), (channels, channels))  # (in, out)
        t = FullyConnected(4, name="affine")(w)  # (cos, sin, tx, ty); `StyleGAN3.init` sets the reference init
        stored = self.param("transform", lambda k, s: jnp.eye(3, dtype=jnp.float32), (3, 3))
        freqs = self.param("freqs", _init_freqs(spec.bandwidth), (channels, 2))
        phases = self.param("phases", lambda k, s: jax.random.uniform(k, s, jnp.float32) - 0.5, (channels,))
        user = stored if transform is None else jnp.asarray(transform, jnp.float32)
        if user.shape not in ((3, 3), (w.shape[0], 3, 3)):
            raise ValueError(f"transform must be [3, 3] or [{w.shape[0]}, 3, 3], got {tuple(user.shape)}")

        # Rotation and translation from ws[0], then the user's transform (both inverse wrt. the image).
        t = t / jnp.sqrt(jnp.sum(jnp.square(t[:, :2]), axis=1, keepdims=True))
        zero, one = jnp.zeros_like(t[:, 0]), jnp.ones_like(t[:, 0])
        m_r = jnp.stack([jnp.stack([t[:, 0], -t[:, 1], zero], -1), jnp.stack([t[:, 1], t[:, 0], zero], -1),
                         jnp.stack([zero, zero, one], -1)], axis=-2)
        m_t = jnp.stack([jnp.stack([one, zero, -t[:, 2]], -1), jnp.stack([zero, one, -t[:, 3]], -1),
                         jnp.stack([zero, zero, one], -1)], axis=-2)
        mat = _matmul3(_matmul3(m_r, m_t), jnp.broadcast_to(user, m_r.shape))
        phases = phases[None] + freqs[None, :, 0] * mat[:, None, 0, 2] + freqs[None, :, 1] * mat[:, None, 1, 2]
        fx = freqs[None, :, 0] * mat[:, None, 0, 0] + freqs[None, :, 1] * mat[:, None, 1, 0]  # [N, C]
        fy = freqs[None, :, 0] * mat[:, None, 0, 1] + freqs[None, :, 1] * mat[:, None, 1, 1]
        # Dampen frequencies the user transform pushed out of band.
        amplitudes = jnp.clip(1 - (jnp.sqrt(fx * fx + fy * fy) - spec.bandwidth)
                              / (spec.sampling_rate / 2 - spec.bandwidth), 0, 1)

        # The sampling grid of affine_grid(align_corners=False) scaled by 0.5 * size / sampling_rate.
        grid = jnp.asarray((np.arange(size) + 0.5 - size / 2) / spec.sampling_rate, jnp.float32)
        x = (grid[None, None, :, None] * fx[:, None, None, :] + grid[None, :, None, None] * fy[:, None, None, :]
             + phases[:, None, None, :])
        x = jnp.sin(x * (2 * np.pi)) * amplitudes[:, None, None, :]
        return jnp.einsum("nhwi,io->nhwo", x, weight / np.sqrt(channels))


def _matmul3(a, b):
    """Batched 3x3 products as sums of products (exact float32, whatever the matmul precision)."""
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


class SynthesisLayer(nn.Module):
    """Modulated conv (the map grows by kernel - 1), then bias, filtered leaky ReLU and clamp."""

    config: StyleGAN3Config
    index: int

    @nn.compact
    def __call__(self, x, w, compute_dtype=jnp.float32, impl="fast"):
        cfg = self.config
        spec = cfg.layers[self.index]
        fu, fd = cfg.filters(self.index)
        k = spec.kernel
        styles = FullyConnected(spec.in_channels, bias_init=1.0, name="affine")(w)
        weight = self.param("weight", normal_init(), (k, k, spec.in_channels, spec.out_channels))
        bias = self.param("bias", nn.initializers.zeros_init(), (spec.out_channels,))
        magnitude_ema = self.param("magnitude_ema", nn.initializers.ones_init(), ())
        if spec.is_torgb:
            styles = styles / np.sqrt(spec.in_channels * k * k)
        else:
            # Pre-normalisation (cancels under demodulation up to its epsilon). The reference
            # normalises styles over the whole batch; per sample keeps samples independent.
            weight = weight * jax.lax.rsqrt(jnp.mean(jnp.square(weight), axis=(0, 1, 2)))
            styles = styles * jax.lax.rsqrt(jnp.mean(jnp.square(styles), axis=1, keepdims=True))
        x = modulated_conv2d(x, weight, styles, padding=k - 1, demodulate=not spec.is_torgb,
                             compute_dtype=compute_dtype, impl=impl)
        x = x * jax.lax.rsqrt(magnitude_ema)  # the input gain (a scalar): after demodulation
        x = filtered_lrelu(x.astype(compute_dtype), fu, fd, bias.astype(compute_dtype), up=spec.up, down=spec.down,
                           padding=spec.padding, gain=1.0 if spec.is_torgb else LRELU_GAIN,
                           slope=1.0 if spec.is_torgb else 0.2, clamp=cfg.conv_clamp, impl=impl)
        return x.astype(jnp.float32)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, H, W, C] and the per-layer features."""

    config: StyleGAN3Config

    @nn.compact
    def __call__(self, ws, transform=None, compute_dtype=jnp.float32, impl="fast", hooks=None):
        cfg = self.config
        features = {}
        x = tap(features, hooks, "input", SynthesisInput(cfg, name="input")(ws[:, 0], transform))
        for idx, spec in enumerate(cfg.layers):
            x = SynthesisLayer(cfg, idx, name=spec.name)(x, ws[:, idx + 1], compute_dtype=compute_dtype, impl=impl)
            x = tap(features, hooks, spec.name, x)
        return x * cfg.output_scale if cfg.output_scale != 1 else x, features


class StyleGAN3(StyleGenerator):
    """A StyleGAN3 generator (T or R), pure-functional like `StyleGAN2`, whose synthesis also takes
    the user transform (`make_transform`); it has no noise inputs."""

    family = "stylegan3"
    mapping_network = MappingNetwork
    synthesis_network = SynthesisNetwork

    make_transform = staticmethod(make_transform)

    def __repr__(self):
        cfg = self.config
        kind = "R" if cfg.use_radial_filters else "T"
        return (f"StyleGAN3-{kind}({cfg.img_resolution}x{cfg.img_resolution}x{cfg.img_channels}, z_dim={cfg.z_dim}, "
                f"w_dim={cfg.w_dim}, c_dim={cfg.c_dim}, num_ws={cfg.num_ws}, "
                f"channels={[s.out_channels for s in cfg.layers]})")

    @property
    def default_feature_layer(self) -> str:
        """The last layer sampled at min(32, half the image size)."""
        rate = min(32, self.img_resolution // 2)
        names = [s.name for s in self.config.layers if s.out_sampling_rate <= rate and not s.is_torgb]
        return names[-1] if names else self.config.layers[0].name

    # --- construction -------------------------------------------------------------------
    @staticmethod
    def initial_synthesis(synthesis):
        """The input's affine starts at no rotation or translation, as in the reference."""
        affine = synthesis["input"]["affine"]
        return {**synthesis, "input": {**synthesis["input"], "affine": {
            "weight": jnp.zeros_like(affine["weight"]), "bias": jnp.asarray([1.0, 0.0, 0.0, 0.0])}}}

    # --- pure functions -----------------------------------------------------------------
    def synthesis(self, params, ws, transform=None, noise_mode="const", key=None, compute_dtype=jnp.float32,
                  impl="fast", hooks: Hooks | None = None):
        """ws [N, num_ws, w_dim] -> image [N, H, W, C] (float32).

        `transform`: the user transform, [3, 3] or per sample [N, 3, 3] (see `make_transform`);
        None: the one stored with the weights (the identity in NVIDIA's snapshots). `noise_mode`
        and `key` are accepted for the shared interface and ignored: StyleGAN3 has no noise.
        """
        return self._run_synthesis(params, ws, transform, noise_mode, compute_dtype, impl, hooks)[0]

    def features(self, params, ws, layers: Sequence[str] | None = None, transform=None, noise_mode="const",
                 key=None, compute_dtype=jnp.float32, impl="fast", hooks: Hooks | None = None):
        """Intermediate activations by name (see `layer_names`), NHWC float32, plus 'img' (after `output_scale`)."""
        img, features = self._run_synthesis(params, ws, transform, noise_mode, compute_dtype, impl, hooks)
        features["img"] = img
        return select_layers(features, layers)

    def generate(self, params, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const",
                 key=None, compute_dtype=jnp.float32, transform=None):
        """The whole model: z (and c) -> image [N, H, W, C]."""
        ws = self.mapping(params, z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(params, ws, transform=transform, compute_dtype=compute_dtype)

    # --- styles (StyleSpace) and the closed-form methods' weights ----------------------------
    def style_layers(self) -> tuple[tuple[str, str, int], ...]:
        """The affine (style) layers in synthesis order as (layer, 'affine', index of the w it reads):
        the input's (4 values: rotation and translation, from ws[0]), then L0 .. L{num_layers}."""
        names = ("input",) + tuple(spec.name for spec in self.config.layers)
        return tuple((name, "affine", idx) for idx, name in enumerate(names))

    def affine_path(self, block: str, layer: str) -> tuple[str, ...]:
        return ("synthesis", block, "affine")

    def input_weight(self, params, layers=None, torgb: str = "last"):
        """The affine weights [sum of channels, w_dim] of the synthesis layers (L0 .. ToRGB) that read
        the selected w indices (boolean mask [num_ws]; None: all): the stored weights, as the
        equalised-lr gain is a per-layer constant (as for StyleGAN2, whose last toRGB is also
        kept: it is the only reader of the last w). The input's affine is left out: its 4 outputs
        are normalised into a rotation and a translation, not channel styles. There is one ToRGB,
        so `torgb` ('last' or 'first', StyleGAN2's choice of toRGB) names the same one."""
        if torgb not in ("last", "first"):
            raise ValueError(f"torgb must be 'last' or 'first' (the toRGB whose affine is kept), got {torgb!r}")
        layers = np.ones(self.num_ws, bool) if layers is None else np.asarray(layers, bool)
        if layers.shape != (self.num_ws,):
            raise ValueError(f"layers must be a mask of {self.num_ws} w indices, got shape {layers.shape}")
        chosen = [np.asarray(self.affine(params, name, layer)["weight"], np.float64).T
                  for name, layer, w_idx in self.style_layers() if layers[w_idx] and name != "input"]
        if not chosen:
            raise ValueError("the layer selection holds only ws[0], which feeds the input's transform, not a "
                             "style layer")
        return np.concatenate(chosen, axis=0)

    def _run_synthesis(self, params, ws, transform, noise_mode, compute_dtype, impl, hooks=None):
        compute_dtype = self.check_synthesis_inputs(ws, noise_mode, compute_dtype, hooks)
        return self._synthesis.apply({"params": params["synthesis"]}, ws.astype(jnp.float32), transform,
                                     compute_dtype=compute_dtype, impl=impl, hooks=hooks)
