"""The latent spaces of each generator family, and `latent_space`, the one entry point that builds them."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.latent.base import LatentSpace
from latentjax.latent.density import Gaussian, standard_normal
from latentjax.latent.stats import fit_gaussian

# pytorch-pretrained-biggan's truncated_noise_sample draws truncation * truncnorm(-2, 2).
BIGGAN_TRUNCATION_BOUND = 2.0


class StyleSpace(LatentSpace):
    """The spaces of a style-based generator (StyleGAN2, StyleGAN3): `z`, `w`, `w+` and StyleSpace `s`
    (all affine-layer outputs, concatenated), through the generator's protocol only.

    `affine_layers` lists the style layers as (block, layer, w index) and `style_sizes` their
    widths, in the order `s` concatenates them; `to_ws(params, latent)` and `styles(params, ws)`
    convert between spaces. Options: `truncation_psi` (sampling through the mapping network; the
    `w` Gaussian is fitted to what `sample` draws), `class_index` (conditional models),
    `noise_mode` ('const' or 'none'), `fit_samples` / `fit_seed` (the `w` Gaussian: `fit_samples`
    samples drawn from `jax.random.key(fit_seed)`, fitted once per space by `w_gaussian`).
    """

    names = ("z", "w", "w+", "s")

    @property
    def family(self) -> str:
        return self.generator.family

    def __init__(self, generator, name, *, class_index=None, truncation_psi=1.0, noise_mode="const",
                 fit_samples=10_000, fit_seed=0):
        if noise_mode not in ("const", "none"):
            raise ValueError(f"noise_mode must be 'const' or 'none' (decoding is deterministic), got {noise_mode!r}")
        super().__init__(generator, name, dict(class_index=class_index, truncation_psi=float(truncation_psi),
                                               noise_mode=noise_mode, fit_samples=int(fit_samples),
                                               fit_seed=int(fit_seed)))
        self.affine_layers = generator.style_layers()
        self.style_sizes = generator.style_sizes(generator.params)
        self._w_gaussian = None  # fitted by `w_gaussian` when first needed

    @property
    def shape(self):
        G = self.generator
        return {"z": (G.z_dim,), "w": (G.w_dim,), "w+": (G.num_ws, G.w_dim), "s": (sum(self.style_sizes),)}[self.name]

    @property
    def direction_dim(self):
        return self.generator.w_dim if self.name == "w+" else super().direction_dim

    @property
    def num_layers(self):
        return self.generator.num_ws if self.name == "w+" else None

    @property
    def coordinate_layers(self):
        if self.name != "s":
            return None
        return np.repeat(np.arange(len(self.style_sizes)), self.style_sizes)

    def embed(self, direction, layers=None):
        if self.name != "w+":
            return super().embed(direction, layers)
        mask = jnp.ones((self.num_layers,)) if layers is None else jnp.asarray(layers)
        if mask.shape[-1] != self.num_layers:
            raise ValueError(f"layers must be a mask of {self.num_layers} w+ layers, got shape {mask.shape}")
        return mask[..., :, None].astype(direction.dtype) * direction[..., None, :]

    def pool(self, latent):
        return jnp.mean(latent, axis=-2) if self.name == "w+" else super().pool(latent)

    # --- conversions between spaces --------------------------------------------------------
    def ws(self, params, z, classes=None):
        """z [N, z_dim] -> ws [N, num_ws, w_dim] with this space's truncation and class (or `classes`, per sample)."""
        return self.generator.mapping(params, z, self.classes(z.shape[0], classes), self.options["truncation_psi"])

    def styles(self, params, ws):
        """ws [N, num_ws, w_dim] -> StyleSpace latents [N, S]: every affine layer's output, concatenated."""
        return self.generator.styles(params, ws)

    def to_ws(self, params, latent, classes=None):
        """Latents [N, *shape] of 'z', 'w' or 'w+' -> the ws [N, num_ws, w_dim] the synthesis network sees
        (`classes` as in `decode`: 'z' only)."""
        G = self.generator
        if self.name == "z":
            return self.ws(params, latent, classes)
        if self.name == "w":
            return jnp.broadcast_to(latent[:, None], (latent.shape[0], G.num_ws, G.w_dim))
        if self.name == "w+":
            return latent
        raise ValueError("'s' latents are styles, not ws: decode them with `decode`")

    def _run(self, params, latent, run, hooks=None, classes=None):
        """run(params, ws) on the ws this latent stands for; StyleSpace goes sample by sample."""
        if self.name != "s":
            return run(params, self.to_ws(params, latent, classes))
        if hooks:
            raise ValueError("hooks are not supported in the 's' space (it decodes sample by sample); "
                             "edit channels through the styles instead")
        G = self.generator
        zeros = jnp.zeros((1, G.num_ws, G.w_dim), jnp.float32)
        per_sample = lambda s: jax.tree.map(lambda x: x[0], run(self.generator.with_styles(params, s), zeros))
        return jax.vmap(per_sample)(latent)

    # --- the generator ---------------------------------------------------------------------
    def sample(self, key, n, params=None):
        params = self.generator.params if params is None else params
        z = jax.random.normal(key, (n, self.generator.z_dim), jnp.float32)
        if self.name == "z":
            return z
        ws = self.ws(params, z)
        if self.name == "w":
            return ws[:, 0]
        return ws if self.name == "w+" else self.styles(params, ws)

    def decode(self, params, latent, hooks=None, classes=None):
        mode = self.options["noise_mode"]
        return self._run(params, latent, lambda p, ws: self.generator.synthesis(p, ws, noise_mode=mode, hooks=hooks),
                         hooks, classes)

    def features(self, params, latent, layers=None, hooks=None, classes=None):
        mode = self.options["noise_mode"]
        return self._run(params, latent,
                         lambda p, ws: self.generator.features(p, ws, layers, noise_mode=mode, hooks=hooks), hooks,
                         classes)

    # --- densities -------------------------------------------------------------------------
    def w_gaussian(self, progress: bool = True) -> Gaussian:
        """The Gaussian fitted to `fit_samples` mapped samples from `jax.random.key(fit_seed)`, with the
        generator's params when first asked for; fitted once and kept by this space."""
        if self._w_gaussian is None:
            G, o = self.generator, self.options
            sample_w = lambda params, k, n: self.ws(params, jax.random.normal(k, (n, G.z_dim), jnp.float32))[:, 0]
            with jax.ensure_compile_time_eval():  # a concrete fit even when first asked for inside jit
                self._w_gaussian = fit_gaussian(sample_w, G.params, G.w_dim, o["fit_samples"],
                                                min(o["fit_samples"], 1000), jax.random.key(o["fit_seed"]),
                                                desc="fitting the w Gaussian", progress=progress)
        return self._w_gaussian

    @property
    def prior(self):
        if self.name == "z":
            return standard_normal(self.generator.z_dim)
        gaussian = self.w_gaussian()
        if self.name in ("w", "w+"):
            return gaussian
        # s = A w + b is affine in w: mean A mu + b, per-channel variance diag(A Sigma A^T).
        G = self.generator
        with jax.ensure_compile_time_eval():
            axes = gaussian.basis * gaussian.std  # columns: principal axes scaled by their std
            points = jnp.concatenate([gaussian.mean[None], gaussian.mean[None] + axes.T])
            styles = self.styles(G.params, jnp.broadcast_to(points[:, None], (len(points), G.num_ws, G.w_dim)))
            std = jnp.sqrt(jnp.sum(jnp.square(styles[1:] - styles[0]), axis=0))
            return Gaussian(styles[0], jnp.maximum(std, 1e-12))


class BigGANSpace(LatentSpace):
    """BigGAN(-deep) `z`: truncated normal at `truncation_psi`, with a fixed class `class_index`."""

    family = "biggan"
    names = ("z",)

    def __init__(self, generator, name="z", *, class_index=None, truncation_psi=1.0):
        super().__init__(generator, name, dict(class_index=class_index, truncation_psi=float(truncation_psi)))

    shape = property(lambda self: (self.generator.z_dim,))

    @property
    def prior(self):
        return standard_normal(self.generator.z_dim, self.options["truncation_psi"], BIGGAN_TRUNCATION_BOUND)

    def sample(self, key, n, params=None):
        return self.generator.sample_z(key, n, self.options["truncation_psi"])

    def decode(self, params, latent, hooks=None, classes=None):
        return self.generator.generate(params, latent, self.classes(latent.shape[0], classes),
                                       self.options["truncation_psi"], hooks=hooks)

    def features(self, params, latent, layers=None, hooks=None, classes=None):
        return self.generator.features(params, latent, self.classes(latent.shape[0], classes),
                                       self.options["truncation_psi"], layers=layers, hooks=hooks)


class PGGANSpace(LatentSpace):
    """PGGAN `z`: standard normal, with a fixed `class_index` for models with categories (one value
    per attribute, enumerated as `class_vectors` says)."""

    family = "pggan"
    names = ("z",)

    def __init__(self, generator, name="z", *, class_index=None):
        super().__init__(generator, name, dict(class_index=class_index))

    shape = property(lambda self: (self.generator.z_dim,))
    prior = property(lambda self: standard_normal(self.generator.z_dim))

    def sample(self, key, n, params=None):
        return jax.random.normal(key, (n, self.generator.z_dim), jnp.float32)

    def decode(self, params, latent, hooks=None, classes=None):
        return self.generator.generate(params, latent, self.classes(latent.shape[0], classes), hooks=hooks)

    def features(self, params, latent, layers=None, hooks=None, classes=None):
        return self.generator.features(params, latent, self.classes(latent.shape[0], classes), layers=layers,
                                       hooks=hooks)


SPACES = {cls.family: cls for cls in (BigGANSpace, PGGANSpace)}  # families without a mapping network


def space_class(generator) -> type:
    """`StyleSpace` for style-based generators, else the family's space class."""
    if getattr(generator, "style_based", False):
        return StyleSpace
    family = getattr(generator, "family", None)
    if family not in SPACES:
        raise ValueError(f"no latent spaces for generator family {family!r}; supported: style-based generators "
                         f"and {sorted(SPACES)}")
    return SPACES[family]


def default_space(generator) -> str:
    """Where closed-form methods act: `w+` for style-based generators, else `z`."""
    return "w+" if getattr(generator, "style_based", False) else "z"


def latent_space(generator, name: str | None = None, **options) -> LatentSpace:
    """The latent space `name` of `generator` (default: `default_space`).

    Options: style-based generators `class_index`, `truncation_psi`, `noise_mode`, `fit_samples`,
    `fit_seed`; biggan `class_index`, `truncation_psi`; pggan `class_index`. `class_index` ranges
    over [0, num_classes(generator)) (see `class_vectors`).
    """
    accepted = space_option_names(generator)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{generator.family} latent spaces take the options {accepted}, got unknown {unknown}")
    return space_class(generator)(generator, name or default_space(generator), **options)


def space_option_names(generator) -> list[str]:
    """The options `latent_space` takes for this generator."""
    cls = space_class(generator)
    return [p.name for p in inspect.signature(cls).parameters.values() if p.kind == p.KEYWORD_ONLY]


def space_from_spec(generator, spec) -> LatentSpace:
    """`latent_space(generator, **spec)` for a config's space block (name '' = the family default):
    unset (None) options are dropped, and so is `fit_samples` for families without a fitted
    density (shared configs set it whatever the generator); any other option a family does not
    take is left in for `latent_space` to refuse."""
    spec = dict(spec)
    name = spec.pop("name", None) or None
    options = {k: v for k, v in spec.items() if v is not None}
    if "fit_samples" not in space_option_names(generator):
        options.pop("fit_samples", None)
    return latent_space(generator, name, **options)


def as_space(source, name: str | None = None) -> LatentSpace:
    """A LatentSpace as is, or a generator's space `name` (default: the family's editing space)."""
    return source if isinstance(source, LatentSpace) else latent_space(source, name)
