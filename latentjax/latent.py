"""Latent spaces: one object per space of a generator, with sampling, decoding, features and a density.

`latent_space(G, name, **options)` is the one entry point; it dispatches on `G.family`:

| family    | spaces                 | density (`log_density`)                                            |
|-----------|------------------------|--------------------------------------------------------------------|
| stylegan2 | `z`                    | standard normal                                                    |
| stylegan2 | `w`, `w+`              | a Gaussian fitted to mapped samples (per layer for `w+`), cached   |
| stylegan2 | `s` (StyleSpace)       | per-channel Gaussian of the styles, derived from the `w` Gaussian  |
| biggan    | `z` (+ a fixed class)  | truncated normal: std = truncation, box +-2 * truncation, else -inf |
| pggan     | `z` (+ a fixed class)  | standard normal                                                    |

Every direction method and walk takes a `LatentSpace`, so none of them knows a model family. A
latent has `space.shape` per sample; a *direction* is a vector of `space.direction_dim` numbers
that `space.embed` turns into a latent-shaped edit (for `w+`, one `w` vector applied to a chosen
set of layers). Every density here is a Gaussian (`Gaussian`) in whitened coordinates, which is
what the iso-density walk needs.

The streaming statistics used to fit the `w` Gaussian (and by GANSpace) also live here: batches
are drawn inside a jitted step, sharded over a "data" mesh axis, and folded into a fixed-size
state (a covariance, or an incremental PCA in high dimensions), so no more than one batch of
samples ever exists.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import weakref
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from latentjax.models.stylegan2 import FullyConnected
from latentjax.models.taps import Hooks
from latentjax.progress import Progress

HIGHEST = jax.lax.Precision.HIGHEST
# pytorch-pretrained-biggan's truncated_noise_sample draws truncation * truncnorm(-2, 2).
BIGGAN_TRUNCATION_BOUND = 2.0


# --- densities ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Gaussian:
    """N(mean, basis diag(std^2) basis^T) over the last axis of a latent, optionally truncated.

    `basis` (d, d) holds the principal axes as orthonormal columns; None means the coordinate
    axes (a diagonal Gaussian). `bound` truncates every whitened coordinate to [-bound, bound]
    (density -inf outside). Leading axes (batch, `w+` layers) are independent copies.
    """

    mean: Any
    std: Any
    basis: Any = None
    bound: float | None = None

    def whiten_delta(self, dx):
        """Whitened coordinates of a displacement (no mean subtracted)."""
        if self.basis is not None:
            dx = jnp.matmul(dx, self.basis, precision=HIGHEST)
        return dx / self.std

    def whiten(self, x):
        return self.whiten_delta(x - self.mean)

    def unwhiten_delta(self, du):
        """The displacement with whitened coordinates `du` (no mean added)."""
        dx = du * self.std
        if self.basis is not None:
            dx = jnp.matmul(dx, self.basis.T, precision=HIGHEST)
        return dx

    def unwhiten(self, u):
        return self.unwhiten_delta(u) + self.mean

    def log_prob(self, x, event_ndim: int = 1):
        """Log density summed over the last `event_ndim` axes."""
        u = self.whiten(x)
        per_coord = -0.5 * jnp.square(u) - jnp.log(self.std) - 0.5 * math.log(2 * math.pi)
        if self.bound is not None:
            mass = jax.scipy.special.ndtr(self.bound) - jax.scipy.special.ndtr(-self.bound)
            per_coord = per_coord - jnp.log(mass)
        axes = tuple(range(-event_ndim, 0))
        log_p = jnp.sum(per_coord, axis=axes)
        if self.bound is not None:
            log_p = jnp.where(jnp.all(jnp.abs(u) <= self.bound, axis=axes), log_p, -jnp.inf)
        return log_p


def standard_normal(dim: int, scale: float = 1.0, bound: float | None = None) -> Gaussian:
    return Gaussian(jnp.zeros((dim,), jnp.float32), jnp.full((dim,), scale, jnp.float32), bound=bound)


# --- streaming statistics ----------------------------------------------------------------------
EXACT_PCA_MAX_DIM = 4096  # up to this dimension PCA accumulates the full covariance (exact, fast)


class Moments(NamedTuple):
    """Count, mean and scatter (sum of outer products of centred samples) of the data seen so far."""

    count: Any  # ()
    mean: Any  # (D,)
    scatter: Any  # (D, D)


def moments_init(dim: int) -> Moments:
    return Moments(jnp.zeros((), jnp.float32), jnp.zeros((dim,), jnp.float32), jnp.zeros((dim, dim), jnp.float32))


def moments_update(state: Moments, x) -> Moments:
    """Fold a batch x [B, D] in (Chan et al.'s pairwise merge: stable however far the means lie)."""
    x = x.astype(jnp.float32)
    n_batch = x.shape[0]
    total = state.count + n_batch
    batch_mean = jnp.mean(x, axis=0)
    centred = x - batch_mean
    delta = batch_mean - state.mean
    scatter = (state.scatter + jnp.matmul(centred.T, centred, precision=HIGHEST)
               + jnp.outer(delta, delta) * (state.count * n_batch / total))
    return Moments(total, state.mean + delta * (n_batch / total), scatter)


class PCAState(NamedTuple):
    """Incremental PCA (Ross et al. 2008, as sklearn's IncrementalPCA): a fixed-size summary."""

    count: Any  # () samples seen
    mean: Any  # (D,)
    components: Any  # (k, D) principal axes, rows
    singular_values: Any  # (k,) of the centred data seen so far

    @property
    def variance(self):
        return jnp.square(self.singular_values) / jnp.maximum(self.count - 1, 1)


def pca_init(dim: int, num_components: int) -> PCAState:
    if not 0 < num_components <= dim:
        raise ValueError(f"num_components must be in [1, {dim}] for {dim}-dimensional data, got {num_components}")
    return PCAState(jnp.zeros((), jnp.float32), jnp.zeros((dim,), jnp.float32),
                    jnp.zeros((num_components, dim), jnp.float32), jnp.zeros((num_components,), jnp.float32))


def pca_update(state: PCAState, x) -> PCAState:
    """Fold a batch x [B, D] into the state. Exact when num_components = D."""
    x = x.astype(jnp.float32)
    n_batch = x.shape[0]
    total = state.count + n_batch
    batch_mean = jnp.mean(x, axis=0)
    mean = state.mean + (batch_mean - state.mean) * (n_batch / total)
    # The old summary, the centred batch, and one row for the shift between their means.
    correction = jnp.sqrt(state.count * n_batch / total) * (state.mean - batch_mean)
    stacked = jnp.concatenate([state.singular_values[:, None] * state.components, x - batch_mean,
                               correction[None]], axis=0)
    _, s, vt = jnp.linalg.svd(stacked, full_matrices=False)
    k = state.components.shape[0]
    return PCAState(total, mean, vt[:k], s[:k])


def stream(step: Callable, state, batch_fn: Callable, params, num_samples: int, batch_size: int, key,
           desc: str = "", progress: bool = True):
    """Fold `state = step(state, batch_fn(params, fold_in(key, i), batch_size))` over batches i = 0, 1, ...

    Each batch is drawn inside one jitted step and sharded over all devices along a "data" mesh
    axis (the batch size is rounded up to a multiple of the device count, the sample count up to
    whole batches); `state` stays replicated. Returns (state, samples used).
    """
    devices = jax.devices()
    batch_size = -(-batch_size // len(devices)) * len(devices)
    num_batches = max(1, -(-num_samples // batch_size))
    mesh = Mesh(np.array(devices), ("data",))
    sharded, replicated = NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())

    @functools.partial(jax.jit, donate_argnums=0, out_shardings=replicated)
    def run(state, params, i):
        batch = batch_fn(params, jax.random.fold_in(key, i), batch_size)
        return step(state, jax.lax.with_sharding_constraint(batch, sharded))

    state, params = jax.device_put((state, params), replicated)
    with Progress(num_batches * batch_size, desc, unit="samples", enabled=None if progress else False) as bar:
        for i in range(num_batches):
            state = run(state, params, i)
            bar.update(batch_size)
    return state, num_batches * batch_size


class PCA(NamedTuple):
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) unit rows, by decreasing variance
    variance: np.ndarray  # (k,)
    samples: int  # how many samples it saw


def streaming_pca(batch_fn: Callable, params, dim: int, num_components: int, num_samples: int, batch_size: int,
                  key, desc: str = "PCA", progress: bool = True) -> PCA:
    """PCA of `batch_fn(params, key, n)` samples [n, dim], streamed (see `stream`).

    Exact (covariance, then one eigendecomposition) up to EXACT_PCA_MAX_DIM dimensions;
    incremental PCA keeping `num_components` beyond that.
    """
    if not 0 < num_components <= dim:
        raise ValueError(f"num_components must be in [1, {dim}] for {dim}-dimensional data, got {num_components}")
    if dim > EXACT_PCA_MAX_DIM:
        state, used = stream(pca_update, pca_init(dim, num_components), batch_fn, params, num_samples, batch_size,
                             key, desc, progress)
        return PCA(np.asarray(state.mean), np.asarray(state.components), np.asarray(state.variance), used)
    state, used = stream(moments_update, moments_init(dim), batch_fn, params, num_samples, batch_size, key, desc,
                         progress)
    values, vectors = np.linalg.eigh(np.asarray(state.scatter, np.float64) / max(used - 1, 1))
    order = np.argsort(values)[::-1][:num_components]
    return PCA(np.asarray(state.mean), vectors[:, order].T, np.maximum(values[order], 0), used)


def fit_gaussian(batch_fn: Callable, params, dim: int, num_samples: int, batch_size: int, key,
                 desc: str = "fitting Gaussian", progress: bool = True) -> Gaussian:
    """Full-covariance Gaussian of `batch_fn(params, key, n)` samples [n, dim], streamed."""
    pca = streaming_pca(batch_fn, params, dim, dim, num_samples, batch_size, key, desc, progress)
    # Floor tiny variances so that whitening stays finite on (near-)degenerate axes.
    variance = np.maximum(pca.variance, 1e-10 * pca.variance.max() + 1e-30)
    return Gaussian(jnp.asarray(pca.mean, jnp.float32), jnp.asarray(np.sqrt(variance), jnp.float32),
                    basis=jnp.asarray(pca.components.T, jnp.float32))


# --- classes -----------------------------------------------------------------------------------
def category_blocks(generator) -> tuple[int, ...]:
    """Sizes of the one-hot blocks of a generator's class vector: a valid vector has one 1 per block.

    One block of `c_dim` (StyleGAN2, BigGAN, PGGANs without a recorded layout), or one block per
    attribute for PGGANs with categories (`metadata["categories"] = [[attribute, [values]], ...]`).
    """
    c_dim = getattr(generator, "c_dim", 0) or 0
    layout = getattr(generator, "metadata", {}).get("categories") if c_dim else None
    if layout:
        blocks = tuple(len(values) for _, values in layout)
        if sum(blocks) != c_dim:
            raise ValueError(f"metadata['categories'] has blocks {list(blocks)} summing to {sum(blocks)}, but the "
                             f"generator's c_dim is {c_dim}")
        return blocks
    return (c_dim,) if c_dim else ()


def num_classes(generator) -> int:
    """How many distinct class vectors a generator takes: the product of its block sizes (0: unconditional)."""
    return int(np.prod(category_blocks(generator))) if getattr(generator, "c_dim", 0) else 0


def class_vectors(generator, index):
    """Class indices [N] in [0, num_classes) -> class vectors [N, c_dim]. Jittable.

    With several category blocks, an index enumerates their combinations like `itertools.product`
    over the attributes in order (the last attribute varies fastest): index = sum_j value_j *
    prod(sizes after j), and the vector is the one-hot of each value_j, concatenated.
    """
    blocks = category_blocks(generator)
    index = jnp.asarray(index)
    strides = np.cumprod((1,) + blocks[:0:-1])[::-1]
    return jnp.concatenate([jax.nn.one_hot((index // int(stride)) % size, size, dtype=jnp.float32)
                            for size, stride in zip(blocks, strides)], axis=-1)


def sample_classes(generator, key, n: int):
    """Random valid class vectors [n, c_dim]: every class (each attribute's values, independently) equally likely."""
    return class_vectors(generator, jax.random.randint(key, (n,), 0, num_classes(generator)))


# --- spaces ------------------------------------------------------------------------------------
class LatentSpace:
    """One latent space of one generator. Subclasses implement `sample`, `decode`, `features`.

    - `shape`: a latent's shape per sample; latents are batched [N, *shape].
    - `direction_dim`: length of a direction vector; `embed(v, layers)` maps it to a latent-shaped
      edit, `pool(latent)` maps a latent back to direction coordinates.
    - `prior`: the `Gaussian` behind `log_density`.
    - `spec`: what `latent_space(G, **spec)` needs to rebuild this space (saved with directions).

    `sample(key, n, params=None)` uses `G.params` unless `params` is given (pass them when
    sampling inside a jitted function); `decode` and `features` take `params` first and are pure.
    """

    family: str = ""
    names: tuple[str, ...] = ()

    def __init__(self, generator, name: str, options: dict):
        if name not in self.names:
            raise ValueError(f"{self.family} generators have latent spaces {list(self.names)}, got {name!r}")
        self.generator = generator
        self.name = name
        self.options = dict(options)
        class_index = self.options.get("class_index")
        if class_index is not None and not 0 <= class_index < self.num_classes:
            raise ValueError(f"class_index must be in [0, {self.num_classes}) for this generator, got {class_index}")

    # --- shapes --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def direction_dim(self) -> int:
        return int(np.prod(self.shape))

    @property
    def num_layers(self) -> int | None:
        """Number of per-layer vectors a direction can be applied to (`w+` only)."""
        return None

    @property
    def spec(self) -> dict:
        return {"name": self.name, **self.options}

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"LatentSpace({self.family} {self.name!r}, shape={self.shape}{', ' + options if options else ''})"

    # --- conditioning ----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """How many values `class_index` takes (see `class_vectors`); 0 for unconditional generators."""
        return num_classes(self.generator)

    def classes(self, n: int):
        """The fixed class vector [n, c_dim] of `class_index` (see `class_vectors`), or None if unconditional."""
        if not self.num_classes:
            return None
        if self.options.get("class_index") is None:  # only checked here: SeFa, for one, needs no class
            raise ValueError(f"this {self.family} generator is conditional ({self.num_classes} classes): pass "
                             f"class_index (0..{self.num_classes - 1}) to latent_space to sample or decode")
        return class_vectors(self.generator, jnp.full((n,), self.options["class_index"]))

    # --- directions ------------------------------------------------------------------------
    def embed(self, direction, layers=None):
        """Direction(s) [..., direction_dim] -> latent-shaped edit(s) [..., *shape]."""
        if layers is not None:
            raise ValueError(f"a per-layer mask only applies to the 'w+' space, not {self.name!r}")
        return jnp.reshape(direction, direction.shape[:-1] + self.shape)

    def pool(self, latent):
        """Latent(s) [..., *shape] -> direction coordinates [..., direction_dim]."""
        return jnp.reshape(latent, latent.shape[:latent.ndim - len(self.shape)] + (self.direction_dim,))

    # --- density ---------------------------------------------------------------------------
    @property
    def prior(self) -> Gaussian:
        raise NotImplementedError

    def log_density(self, latent):
        """log p(latent) for latents [N, *shape] -> [N]."""
        return self.prior.log_prob(latent, event_ndim=len(self.shape))

    # --- the generator ---------------------------------------------------------------------
    def sample(self, key, n: int, params=None):
        raise NotImplementedError

    def decode(self, params, latent, hooks: Hooks | None = None):
        """Latents [N, *shape] -> images [N, H, W, C].

        `hooks` ({layer name: activation -> activation}, see `latentjax.models.taps`) replace
        intermediate activations, e.g. to edit only some channels of a layer.
        """
        raise NotImplementedError

    def features(self, params, latent, layers: Sequence[str] | None = None, hooks: Hooks | None = None) -> dict:
        """Latents [N, *shape] -> intermediate activations by name (NHWC); `hooks` as in `decode`."""
        raise NotImplementedError


def style_layers(config) -> tuple[tuple[str, str, int], ...]:
    """StyleGAN2's affine (style) layers in synthesis order: (block, layer, index of the w it reads).

    Mirrors `SynthesisNetwork`: a block's toRGB shares its w with the next block's first conv.
    """
    layers, w_idx = [], 0
    for i, res in enumerate(config.block_resolutions):
        convs = ("conv1",) if i == 0 else ("conv0", "conv1")
        layers += [(f"b{res}", name, w_idx + j) for j, name in enumerate(convs)]
        if config.block_num_torgb(res):
            layers.append((f"b{res}", "torgb", w_idx + len(convs)))
        w_idx += len(convs)
    return tuple(layers)


# Gaussians fitted to mapped samples, per generator and fitting options (computed once).
_W_GAUSSIANS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


class StyleGAN2Space(LatentSpace):
    """StyleGAN2's `z`, `w`, `w+` and StyleSpace `s` (all affine-layer outputs, concatenated).

    `affine_layers` lists the style layers as (block, layer, w index) and `style_sizes` their
    widths, in the order `s` concatenates them; `ws(params, z)` and `styles(params, ws)` convert
    between spaces. Options: `truncation_psi` (sampling through the mapping network; the `w`
    Gaussian is fitted to what `sample` draws), `class_index` (conditional models), `noise_mode`
    ('const' or 'none'), `fit_samples` / `fit_seed` (the `w` Gaussian).
    """

    family = "stylegan2"
    names = ("z", "w", "w+", "s")

    def __init__(self, generator, name, *, class_index=None, truncation_psi=1.0, noise_mode="const",
                 fit_samples=10_000, fit_seed=0):
        if noise_mode not in ("const", "none"):
            raise ValueError(f"noise_mode must be 'const' or 'none' (decoding is deterministic), got {noise_mode!r}")
        super().__init__(generator, name, dict(class_index=class_index, truncation_psi=float(truncation_psi),
                                               noise_mode=noise_mode, fit_samples=int(fit_samples),
                                               fit_seed=int(fit_seed)))
        self.affine_layers = style_layers(generator.config)
        self.style_sizes = tuple(generator.params["synthesis"][b][layer]["affine"]["bias"].shape[0]
                                 for b, layer, _ in self.affine_layers)

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
    def ws(self, params, z):
        """z [N, z_dim] -> ws [N, num_ws, w_dim] with this space's class and truncation."""
        return self.generator.mapping(params, z, self.classes(z.shape[0]), self.options["truncation_psi"])

    def styles(self, params, ws):
        """ws [N, num_ws, w_dim] -> StyleSpace latents [N, S]: every affine layer's output, concatenated."""
        out = []
        for (block, layer, w_idx), size in zip(self.affine_layers, self.style_sizes):
            affine = params["synthesis"][block][layer]["affine"]
            out.append(FullyConnected(size, bias_init=1.0).apply({"params": affine}, ws[:, w_idx]))
        return jnp.concatenate(out, axis=1)

    def _to_ws(self, params, latent):
        G = self.generator
        if self.name == "z":
            return self.ws(params, latent)
        if self.name == "w":
            return jnp.broadcast_to(latent[:, None], (latent.shape[0], G.num_ws, G.w_dim))
        return latent

    def _with_styles(self, params, s):
        """`params` whose affine layers output the given styles s [S] whatever w they get."""
        synthesis = {block: dict(value) for block, value in params["synthesis"].items()}
        offsets = np.cumsum((0,) + self.style_sizes)
        for (block, layer, _), lo, hi in zip(self.affine_layers, offsets[:-1], offsets[1:]):
            affine = synthesis[block][layer]["affine"]
            synthesis[block][layer] = {**synthesis[block][layer],
                                       "affine": {"weight": jnp.zeros_like(affine["weight"]), "bias": s[lo:hi]}}
        return {**params, "synthesis": synthesis}

    def _run(self, params, latent, run, hooks=None):
        """run(params, ws) on the ws this latent stands for; StyleSpace goes sample by sample."""
        if self.name != "s":
            return run(params, self._to_ws(params, latent))
        if hooks:
            raise ValueError("hooks are not supported in the 's' space (it decodes sample by sample); "
                             "edit channels through the styles instead")
        G = self.generator
        zeros = jnp.zeros((1, G.num_ws, G.w_dim), jnp.float32)
        per_sample = lambda s: jax.tree.map(lambda x: x[0], run(self._with_styles(params, s), zeros))
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

    def decode(self, params, latent, hooks=None):
        mode = self.options["noise_mode"]
        return self._run(params, latent, lambda p, ws: self.generator.synthesis(p, ws, noise_mode=mode, hooks=hooks),
                         hooks)

    def features(self, params, latent, layers=None, hooks=None):
        mode = self.options["noise_mode"]
        return self._run(params, latent,
                         lambda p, ws: self.generator.features(p, ws, layers, noise_mode=mode, hooks=hooks), hooks)

    # --- densities -------------------------------------------------------------------------
    def w_gaussian(self, progress: bool = True) -> Gaussian:
        """The Gaussian fitted to mapped samples (computed once per generator and options)."""
        G, o = self.generator, self.options
        cache = _W_GAUSSIANS.setdefault(G, {})
        key = (id(G.params), o["class_index"], o["truncation_psi"], o["fit_samples"], o["fit_seed"])
        if key not in cache:
            sample_w = lambda params, k, n: self.ws(params, jax.random.normal(k, (n, G.z_dim), jnp.float32))[:, 0]
            with jax.ensure_compile_time_eval():  # a concrete fit even when first asked for inside jit
                cache[key] = fit_gaussian(sample_w, G.params, G.w_dim, o["fit_samples"], min(o["fit_samples"], 1000),
                                          jax.random.key(o["fit_seed"]), desc="fitting the w Gaussian",
                                          progress=progress)
        return cache[key]

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

    def decode(self, params, latent, hooks=None):
        return self.generator.generate(params, latent, self.classes(latent.shape[0]), self.options["truncation_psi"],
                                       hooks=hooks)

    def features(self, params, latent, layers=None, hooks=None):
        return self.generator.features(params, latent, self.classes(latent.shape[0]), self.options["truncation_psi"],
                                       layers=layers, hooks=hooks)


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

    def decode(self, params, latent, hooks=None):
        return self.generator.generate(params, latent, self.classes(latent.shape[0]), hooks=hooks)

    def features(self, params, latent, layers=None, hooks=None):
        return self.generator.features(params, latent, self.classes(latent.shape[0]), layers=layers, hooks=hooks)


SPACES = {cls.family: cls for cls in (StyleGAN2Space, BigGANSpace, PGGANSpace)}
DEFAULT_SPACE = {"stylegan2": "w+", "biggan": "z", "pggan": "z"}  # where closed-form methods act


def latent_space(generator, name: str | None = None, **options) -> LatentSpace:
    """The latent space `name` of `generator` (default: the family's editing space, see DEFAULT_SPACE).

    Options by family: stylegan2 `class_index`, `truncation_psi`, `noise_mode`, `fit_samples`,
    `fit_seed`; biggan `class_index`, `truncation_psi`; pggan `class_index`. `class_index` ranges
    over [0, num_classes(generator)) (see `class_vectors`).
    """
    accepted = space_option_names(generator)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{generator.family} latent spaces take the options {accepted}, got unknown {unknown}")
    return SPACES[generator.family](generator, name or DEFAULT_SPACE[generator.family], **options)


def space_option_names(generator) -> list[str]:
    """The options `latent_space` takes for this generator's family."""
    family = getattr(generator, "family", None)
    if family not in SPACES:
        raise ValueError(f"no latent spaces for generator family {family!r}; supported: {sorted(SPACES)}")
    return [p.name for p in inspect.signature(SPACES[family]).parameters.values() if p.kind == p.KEYWORD_ONLY]


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
