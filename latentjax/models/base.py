"""The generator interface every family implements, and the wrapper behaviour the families share.

A generator is a config (a serialisable dataclass), a params pytree and pure functions of
(params, inputs) that work under `jit`, `vmap` and `grad`. Code above `models/` uses only what
this class declares, never a family name or a params path: the dimensions, `sample_z`, `generate`
and `features` (with hooks), `input_weight` for closed-form methods, the style-based interface
(`style_based`, `styles`, `with_styles`), `default_feature_layer` and constant noise maps.
Details: docs/networks.md#latentjaxmodelsbase
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.models.taps import check_hooks
from latentjax.ops.layers import FullyConnected

NOISE_MODES = ("const", "random", "none")  # StyleGAN3 and PGGAN accept them for the shared interface


class Generator:
    """The shared part of the family wrappers (`StyleGAN2`, `BigGAN`, `PGGAN`)."""

    family = ""
    style_based = False
    input_space = "z"

    def __init__(self, config, params, metadata: dict | None = None):
        self.config = config
        self.params = params
        self.metadata = dict(metadata or {})

    z_dim = property(lambda self: self.config.z_dim)
    c_dim = property(lambda self: self.config.c_dim)
    img_resolution = property(lambda self: self.config.img_resolution)
    img_channels = property(lambda self: self.config.img_channels)
    layer_names = property(lambda self: self.config.layer_names)

    @classmethod
    def init(cls, config, key) -> "Generator":
        raise NotImplementedError

    def abstract_params(self):
        """Shapes and dtypes of the params tree (no computation), e.g. for restoring checkpoints."""
        return jax.eval_shape(lambda: type(self).init(self.config, jax.random.key(0)).params)

    def sample_z(self, key, n: int, truncation_psi=1.0):
        """z [n, z_dim] from the prior the generator was trained with: N(0, I)."""
        return jax.random.normal(key, (n, self.z_dim), jnp.float32)

    @property
    def default_feature_layer(self) -> str:
        """The block output at 32x32, or at half the image size below 64 px."""
        return f"b{min(32, self.img_resolution // 2)}"

    def input_weight(self, params, layers=None):
        raise NotImplementedError

    def check_inputs(self, z, c) -> None:
        """z must be [N, z_dim]; c must be [N, c_dim] for a conditional generator and absent (or empty) otherwise."""
        z_dim, c_dim = self.config.z_dim, self.config.c_dim
        if z.ndim != 2 or z.shape[1] != z_dim:
            raise ValueError(f"z must have shape [N, {z_dim}], got {tuple(z.shape)}")
        if c_dim and (c is None or c.shape != (z.shape[0], c_dim)):
            raise ValueError(f"this generator is conditional: c must have shape [{z.shape[0]}, {c_dim}], "
                             f"got {None if c is None else tuple(c.shape)}")
        if not c_dim and c is not None and c.size:
            raise ValueError(f"this generator is unconditional (c_dim=0); got c of shape {tuple(c.shape)}")

    def noise_maps(self, params) -> dict:
        """The constant noise maps {name: [H, W]} the generator adds (none for families without noise inputs)."""
        return {}

    def with_noise(self, params, maps):
        """`params` with the noise maps named in `maps` ({name: [H, W]}, see `noise_maps`) replaced."""
        if maps:
            raise ValueError(f"{type(self).__name__} has no noise maps; got {sorted(maps)}")
        return params


def check_compute_dtype(compute_dtype):
    """The dtype the convolutions run in must be a floating-point type (float32, bfloat16, float16,
    float64): an integer or bool type would compute garbage without a word."""
    try:
        dtype = jnp.dtype(compute_dtype)
    except TypeError:
        raise ValueError(f"compute_dtype must be a floating-point dtype such as jnp.float32 or jnp.bfloat16, "
                         f"got {compute_dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"compute_dtype must be a floating-point dtype such as jnp.float32 or jnp.bfloat16, "
                         f"got {dtype.name}")
    return dtype


def run_unoptimized(fn, *args):
    """`jax.jit(fn)(*args)` compiled with XLA's backend optimisation off: for programs run once
    (weight init), whose optimised compile takes seconds for a StyleGAN (8 s -> 3 s for a tiny one on
    CPU) and whose run takes milliseconds. Values equal an optimised compile's up to float rounding.
    Traced args (under `eval_shape` or an outer `jit`) make it a plain `jax.jit(fn)(*args)`."""
    if not is_concrete(args):
        return jax.jit(fn)(*args)
    return jax.jit(fn).lower(*args).compile(compiler_options={"xla_backend_optimization_level": 0})(*args)


def is_concrete(value) -> bool:
    """False for values traced by jit/vmap/grad: those cannot be checked without a host round trip."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def check_style_truncation(truncation_psi, truncation_cutoff) -> None:
    """A concrete `truncation_psi` must be finite (any sign: 0 gives w_avg, psi > 1 extrapolates) and a
    concrete `truncation_cutoff` None or an integer >= 0 (the number of layers truncated). Traced
    values are not checked: a NaN psi then gives NaN images and a negative cutoff truncates nothing."""
    if truncation_psi is None:
        raise ValueError("truncation_psi must be a finite number (1 = no truncation), got None")
    if is_concrete(truncation_psi):
        try:
            psi = np.asarray(truncation_psi, np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"truncation_psi must be a finite number, got {truncation_psi!r:.40}") from None
        if not np.all(np.isfinite(psi)):
            raise ValueError(f"truncation_psi must be finite (1 = no truncation), got {truncation_psi}")
    if truncation_cutoff is not None and is_concrete(truncation_cutoff):
        cutoff = np.asarray(truncation_cutoff)
        if cutoff.dtype == bool or not np.issubdtype(cutoff.dtype, np.integer) or np.any(cutoff < 0):
            raise ValueError(f"truncation_cutoff must be None (all layers) or an integer >= 0 (the number of "
                             f"layers truncated), got {truncation_cutoff!r}")


class StyleGenerator(Generator):
    """The shared part of style-based generators (StyleGAN2, StyleGAN3): a mapping network
    (`self._mapping`, set by the subclass) from z (and c) to `num_ws` vectors w fed to the synthesis."""

    style_based = True
    input_space = "w"
    mapping_network: type  # the family's Flax modules, built from the config
    synthesis_network: type
    w_dim = property(lambda self: self.config.w_dim)
    num_ws = property(lambda self: self.config.num_ws)

    def __init__(self, config, params, metadata: dict | None = None):
        super().__init__(config, params, metadata)
        self._mapping = self.mapping_network(config)
        self._synthesis = self.synthesis_network(config)

    @classmethod
    def init(cls, config, key) -> "StyleGenerator":
        """A generator with freshly initialised weights (the reference's init distributions)."""
        def init_params(key):
            k_map, k_syn = jax.random.split(key)
            z = jnp.zeros((1, config.z_dim))
            c = jnp.zeros((1, config.c_dim)) if config.c_dim else None
            ws = jnp.zeros((1, config.num_ws, config.w_dim))
            synthesis = cls.synthesis_network(config).init(k_syn, ws)["params"]
            return {"mapping": cls.mapping_network(config).init(k_map, z, c)["params"],
                    "synthesis": cls.initial_synthesis(synthesis)}

        return cls(config, run_unoptimized(init_params, key))

    def check_synthesis_inputs(self, ws, noise_mode, compute_dtype, hooks):
        """ws [N, num_ws, w_dim], a known noise mode, hooks on known layers and a floating-point
        compute dtype (returned as a dtype): the checks every synthesis makes before it runs."""
        cfg = self.config
        check_hooks(hooks, cfg.layer_names)
        if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
            raise ValueError(f"ws must have shape [N, {cfg.num_ws}, {cfg.w_dim}], got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return check_compute_dtype(compute_dtype)

    @staticmethod
    def initial_synthesis(synthesis):
        """Freshly initialised synthesis params, adjusted where a family's reference starts elsewhere."""
        return synthesis

    def mapping(self, params, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        """z [N, z_dim] (and c [N, c_dim]) -> ws [N, num_ws, w_dim].

        A concrete `truncation_psi` must be finite and a concrete `truncation_cutoff` None or an
        integer >= 0 (ValueError otherwise); traced ones are used as given (a NaN psi gives NaN ws).
        """
        self.check_inputs(z, c)
        check_style_truncation(truncation_psi, truncation_cutoff)
        return self._mapping.apply({"params": params["mapping"]}, z, c, truncation_psi, truncation_cutoff)

    # --- styles (StyleSpace): every affine layer's output ---------------------------------
    def style_layers(self) -> tuple[tuple[str, str, int], ...]:
        """The affine (style) layers in synthesis order: (block, layer, index of the w it reads)."""
        raise NotImplementedError

    def affine_path(self, block: str, layer: str) -> tuple[str, ...]:
        """Where a style layer's affine parameters ({'weight', 'bias'}) sit in the params tree."""
        raise NotImplementedError

    def affine(self, params, block: str, layer: str) -> dict:
        """The affine parameters of one style layer."""
        node = params
        for key in self.affine_path(block, layer):
            node = node[key]
        return node

    def style_sizes(self, params) -> tuple[int, ...]:
        """The width of each style layer's output, in `style_layers` order."""
        return tuple(self.affine(params, block, layer)["bias"].shape[0] for block, layer, _ in self.style_layers())

    def styles(self, params, ws):
        """ws [N, num_ws, w_dim] -> styles [N, S]: every affine layer's output, concatenated (StyleSpace)."""
        out = [FullyConnected(size).apply({"params": self.affine(params, block, layer)}, ws[:, w_idx])
               for (block, layer, w_idx), size in zip(self.style_layers(), self.style_sizes(params))]
        return jnp.concatenate(out, axis=1)

    def with_styles(self, params, s):
        """`params` whose affine layers output the styles s [S] whatever w they get."""
        offsets = np.cumsum((0,) + self.style_sizes(params))
        for (block, layer, _), lo, hi in zip(self.style_layers(), offsets[:-1], offsets[1:]):
            weight = self.affine(params, block, layer)["weight"]
            params = _replaced(params, self.affine_path(block, layer), {"weight": jnp.zeros_like(weight), "bias": s[lo:hi]})
        return params


def _replaced(tree, path: tuple[str, ...], value):
    """A copy of the nested dict `tree` with the entry at `path` set to `value` (the rest shared)."""
    if not path:
        return value
    return {**tree, path[0]: _replaced(tree[path[0]], path[1:], value)}


def check_single_input(layers) -> None:
    """Families with one input vector have no per-layer selection: `layers` must be None or all True."""
    if layers is not None and not all(bool(v) for v in layers):
        raise ValueError(f"this generator has one input layer; a layer selection {list(layers)} does not apply")


def select_layers(features: dict, layers: Sequence[str] | None) -> dict:
    """`features` restricted to `layers` (None: all), in that order; an unknown name is an error."""
    if layers is None:
        return features
    unknown = [name for name in layers if name not in features]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; expected names from {list(features)}")
    return {name: features[name] for name in layers}
