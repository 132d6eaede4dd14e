"""Optimisation-based GAN inversion: target images in, latents out, many targets per compiled step.

The default recipe is the NVIDIA projector's (stylegan2-ada-pytorch `projector.py`): start from the
mean of 10K mapped samples, Adam with a ramped learning rate, decaying Gaussian noise added to the
latent, LPIPS on images area-downsampled to 256 pixels when larger, and (with `optimize_noise`)
the noise maps optimised too under a multi-scale autocorrelation penalty and renormalisation.
Spaces: 'z' (the generator's input), 'w' (one mapped vector for every layer) and 'w+' (one per
layer). Losses: 'lpips', 'mse', or a weighted sum such as {'lpips': 1.0, 'mse': 0.1}.

Conditional generators (BigGAN, class-conditional StyleGAN2 and PGGAN) take one class per target
(`classes`: indices or class vectors). In 'z' the class enters the image, and `optimize_class`
optimises the class vector too (freely, as a continuous mixture, from the given class); in 'w' and
'w+' it only chooses the start, the mean of that class's mapped samples. 'z' latents are drawn
from the generator's prior and, for BigGAN, kept inside its truncation box after every step.

One target's optimisation is a pure function; `jax.vmap` runs a batch of targets in one step,
which is `jit`-ted with its batch axis sharded over the "data" axis of a `jax.sharding.Mesh`.
Each target has its own key, so a target's result does not depend on the batch it runs in.

The generator interface used: `generate` ('z'), `mapping` and `synthesis` ('w', 'w+'), `z_dim`,
`w_dim`, `num_ws`, `img_resolution`, `img_channels`, `c_dim`, `params`, and (for `optimize_noise`)
`noise_const` leaves in its params. Generators without a mapping network (BigGAN, PGGAN) are
inverted in 'z'.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from latentjax.config import ConfigMixin
from latentjax.inversion.optim import latent_noise_schedule, noise_regularization, projector_optimizer
from latentjax.latent import class_vectors, latent_space, num_classes, sample_classes, space_option_names
from latentjax.metrics.image import rgb
from latentjax.progress import Progress

SPACES = ("z", "w", "w+")
LOSS_TERMS = ("lpips", "mse")
RANGE_TOLERANCE = 1e-4  # targets must lie in [-1, 1], the generators' image range


@dataclasses.dataclass(frozen=True)
class InversionConfig(ConfigMixin):
    """The recipe's hyperparameters; the defaults are those of stylegan2-ada-pytorch's projector.

    `latent_noise` is the initial std of the noise added to the latent, as a fraction of the
    space's spread (the root mean squared distance of samples to their mean); it decays to 0 at
    `latent_noise_ramp` of the steps. `stats_samples` samples drawn with `stats_seed` give that
    spread and the starting point in 'w'/'w+'. `truncation_psi` applies in 'z' (StyleGAN2's
    mapping; BigGAN's batch-norm statistics and the box its z stays in; PGGAN takes only 1).
    """

    lr: float = 0.1
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    betas: tuple[float, float] = (0.9, 0.999)
    latent_noise: float = 0.05
    latent_noise_ramp: float = 0.75
    noise_regularization: float = 1e5
    stats_samples: int = 10000
    stats_seed: int = 123
    lpips_resolution: int = 256
    truncation_psi: float = 1.0

    def __post_init__(self):
        if self.lr <= 0 or self.latent_noise < 0 or self.noise_regularization < 0:
            raise ValueError(f"lr must be positive and latent_noise, noise_regularization non-negative: {self}")
        if not (0 <= self.lr_rampup <= 1 and 0 <= self.lr_rampdown <= 1 and 0 < self.latent_noise_ramp <= 1):
            raise ValueError(f"ramp lengths are fractions of the steps (latent_noise_ramp > 0): {self}")
        if self.stats_samples < 2 or self.lpips_resolution < 16:
            raise ValueError(f"stats_samples must be >= 2 and lpips_resolution >= 16 (LPIPS' minimum): {self}")


class LatentStats(NamedTuple):
    """Mean of a space's samples (one latent vector) and their spread sqrt(E ||x - mean||^2)."""

    mean: jax.Array
    std: float


@dataclasses.dataclass(frozen=True)
class InversionResult:
    """What `invert` returns, as numpy arrays with one row per target.

    `latents`: [N, z_dim] ('z'), [N, w_dim] ('w') or [N, num_ws, w_dim] ('w+'); `ws`: the
    [N, num_ws, w_dim] the synthesis network sees (None for generators without one); `images`: the
    reconstructions [N, H, W, C] in the generator's range; `losses`: per target final 'loss' (the
    weighted sum) and each term, plus 'noise_reg' with `optimize_noise`; `noise`: the optimised
    noise maps {name: [N, H, W]} (None without `optimize_noise`); `classes`: the class vectors
    [N, c_dim] (optimised with `optimize_class`; None for unconditional generators).
    """

    space: str
    steps: int
    latents: np.ndarray
    ws: np.ndarray
    images: np.ndarray
    losses: dict
    noise: dict | None = None
    classes: np.ndarray | None = None


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def noise_maps(params) -> dict:
    """The generator's constant noise maps by path, e.g. {'synthesis/b8/conv0/noise_const': [8, 8]}."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {_path_name(path): leaf for path, leaf in leaves if _path_name(path).endswith("noise_const")}


def with_noise(params, maps: Mapping):
    """`params` with the noise maps named in `maps` replaced (a new tree; `params` is unchanged)."""
    return jax.tree_util.tree_map_with_path(lambda path, leaf: maps.get(_path_name(path), leaf), params)


@functools.partial(jax.jit, static_argnums=0)
def _mapped_w(G, params, z, c):
    return G.mapping(params, z, c)[:, 0]


def latent_statistics(G, params, space: str, num_samples: int, key, class_vector=None) -> LatentStats:
    """Mean and spread of `num_samples` samples of `space` ('z' draws, or their mapped w).

    Conditional generators map with `class_vector` [c_dim] for every sample, or random classes.
    """
    k_z, k_c = jax.random.split(key)
    z = jax.random.normal(k_z, (num_samples, G.z_dim))
    if space == "z":
        samples = z
    else:
        c = None
        if getattr(G, "c_dim", 0):
            c = (sample_classes(G, k_c, num_samples) if class_vector is None
                 else jnp.broadcast_to(jnp.asarray(class_vector, jnp.float32), (num_samples, G.c_dim)))
        samples = _mapped_w(G, params, z, c)
    mean = jnp.mean(samples, axis=0)
    return LatentStats(mean, float(jnp.sqrt(jnp.sum(jnp.square(samples - mean)) / num_samples)))


def check_classes(G, classes, n: int) -> np.ndarray | None:
    """Per-target class vectors [n, c_dim] float32 from `classes` (one index, n indices in
    [0, num_classes), or n class vectors), or None for an unconditional generator."""
    c_dim = getattr(G, "c_dim", 0) or 0
    name = type(G).__name__
    if not c_dim:
        if classes is not None:
            raise ValueError(f"classes: this {name} is unconditional (c_dim 0); leave classes None")
        return None
    expected = (f"one class index, {n} indices in [0, {num_classes(G)}) or {n} class vectors [{n}, {c_dim}] "
                "(one per target)")
    if classes is None:
        raise ValueError(f"classes: this {name} is class-conditional; pass {expected}")
    c = np.asarray(classes)
    if np.issubdtype(c.dtype, np.integer):
        c = np.broadcast_to(c, (n,)) if c.ndim == 0 else c
        if c.shape != (n,) or c.min() < 0 or c.max() >= num_classes(G):
            raise ValueError(f"classes must be {expected}, got indices of shape {c.shape} in "
                             f"[{c.min()}, {c.max()}]")
        return np.asarray(class_vectors(G, c), np.float32)
    if not np.issubdtype(c.dtype, np.floating) or c.shape != (n, c_dim) or not np.all(np.isfinite(c)):
        raise ValueError(f"classes must be {expected}, got dtype {c.dtype}, shape {c.shape}")
    return c.astype(np.float32)


def _z_space(G, truncation_psi: float):
    """The generator's 'z' LatentSpace (its prior and sampler) at `truncation_psi` where it has one."""
    options = {"truncation_psi": truncation_psi} if "truncation_psi" in space_option_names(G) else {}
    return latent_space(G, "z", **options)


def _to_ws_one(G, params, latent, space: str, c=None, truncation_psi: float = 1.0):
    if space == "z":
        return G.mapping(params, latent[None], None if c is None else c[None], truncation_psi)[0]
    return latent if space == "w+" else jnp.broadcast_to(latent, (G.num_ws, G.w_dim))


def _decode_one(G, params, latent, space: str, noise, c=None, truncation_psi: float = 1.0):
    if noise:
        params = with_noise(params, noise)
    c = None if c is None else c[None]
    if space == "z":  # `generate` also serves generators without a mapping network (BigGAN, PGGAN)
        return G.generate(params, latent[None], c, truncation_psi)[0]
    return G.synthesis(params, _to_ws_one(G, params, latent, space)[None])[0]


def decode(G, params, latents, *, space: str, noise: Mapping | None = None, classes=None,
           truncation_psi: float = 1.0):
    """Images [N, H, W, C] of inverted `latents` in `space`, with per-target noise maps {name: [N, H, W]}
    and, for conditional generators in 'z', class vectors `classes` [N, c_dim] (`InversionResult.classes`)."""
    _check_space(space)
    latents = jnp.asarray(latents)
    classes = check_classes(G, classes, latents.shape[0]) if space == "z" else None
    return _decode_batch(G, params, latents, dict(noise or {}), classes, space, float(truncation_psi))


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _decode_batch(G, params, latents, noise, classes, space, truncation_psi):
    def one(latent, maps, c):
        return _decode_one(G, params, latent, space, maps, c, truncation_psi)

    return jax.vmap(one)(latents, noise, classes)


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise ValueError(f"unknown latent space {space!r}; expected one of {SPACES}")


def parse_loss(loss) -> dict[str, float]:
    """'lpips' | 'mse' | {'lpips': a, 'mse': b} -> the term weights."""
    if isinstance(loss, str):
        weights = {loss: 1.0}
    elif isinstance(loss, Mapping):
        weights = {str(k): float(v) for k, v in loss.items()}
    else:
        raise ValueError(f"loss must be one of {LOSS_TERMS} or a dict of weights such as "
                         f"{{'lpips': 1.0, 'mse': 0.1}}, got {loss!r}")
    unknown = sorted(set(weights) - set(LOSS_TERMS))
    if unknown or not any(weights.values()):
        raise ValueError(f"loss must name terms from {LOSS_TERMS} with a non-zero weight, got {loss!r}")
    return weights


def _area_downsample(images, size: int):
    """Box-filter [N, H, W, C] down by the integer factor H // size (only when H > size)."""
    n, h, w, c = images.shape
    if h <= size:
        return images
    f = h // size
    return images[:, :h // f * f, :w // f * f].reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))


def _target_keys(key, n: int):
    """Per-target keys from one key (split into n) or from n keys; typed or raw uint32 keys."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.dtype != jnp.uint32 or key.shape[-1:] != (2,):
            raise ValueError(f"key must be a jax.random.key or PRNGKey, got dtype {key.dtype}, shape {key.shape}")
        key = jax.random.wrap_key_data(key)
    if key.shape == ():
        return jax.random.split(key, n)
    if key.shape != (n,):
        raise ValueError(f"key must be one key or one per target ({n}), got shape {key.shape}")
    return key


@dataclasses.dataclass(frozen=True)
class _Recipe:
    """Everything a compiled program depends on (hashable; the generator compares by identity, and
    `params_id` tells apart a generator whose params were replaced)."""

    G: Any
    params_id: int
    space: str
    steps: int
    weights: tuple[tuple[str, float], ...]
    noise_shapes: tuple[tuple[str, tuple[int, ...]], ...]
    config: InversionConfig
    optimize_class: bool = False


@functools.lru_cache(maxsize=4)
def _program(recipe: _Recipe, mesh: Mesh) -> "_Program":
    """Programs are cached, so `invert` called again with the same generator and settings does not recompile."""
    return _Program(recipe, mesh)


class _Program:
    """The jitted, vmapped and sharded init / step / finish functions of one recipe on one mesh."""

    def __init__(self, recipe: _Recipe, mesh: Mesh):
        G, cfg = recipe.G, recipe.config
        self.G, self.space, self.steps, self.config = G, recipe.space, recipe.steps, cfg
        self.weights = dict(recipe.weights)
        self.noise_shapes = dict(recipe.noise_shapes)
        self.optimize_class = recipe.optimize_class
        self.stats = latent_statistics(G, G.params, self.space, cfg.stats_samples, jax.random.key(cfg.stats_seed))
        self._class_means = {}  # class vector bytes -> the class's mean w (the start in 'w'/'w+')
        if self.space == "z":
            self.z_space = _z_space(G, cfg.truncation_psi)
        noise_mask = None
        if self.noise_shapes:  # the noise-map transformations act on the "noise" subtree only
            noise_mask = lambda p: {k: jax.tree.map(lambda _: k == "noise", v) for k, v in p.items()}  # noqa: E731
        self._tx = projector_optimizer(self.steps, cfg.lr, cfg.lr_rampup, cfg.lr_rampdown, cfg.betas,
                                       cfg.noise_regularization, noise_mask)
        self._latent_noise = latent_noise_schedule(cfg.latent_noise * self.stats.std, self.steps,
                                                   cfg.latent_noise_ramp)
        self.shards = mesh.shape["data"]
        batch = NamedSharding(mesh, P("data"))
        self.replicated = replicated = NamedSharding(mesh, P())
        self._source_params = G.params  # keeps `params_id` unique while the program is cached
        self.params = jax.device_put(G.params, replicated)
        self.init = jax.jit(jax.vmap(self._init_one, in_axes=(None, None, 0, 0, 0)),
                            in_shardings=(replicated, replicated, batch, batch, batch), out_shardings=batch)
        self.step = jax.jit(jax.vmap(self._step_one, in_axes=(None, None, 0, None)),
                            in_shardings=(replicated, replicated, batch, replicated), out_shardings=batch,
                            donate_argnums=(2,))
        self.finish = jax.jit(jax.vmap(self._finish_one, in_axes=(None, None, 0)),
                              in_shardings=(replicated, replicated, batch), out_shardings=batch)

    def per_target_inputs(self, classes, n: int) -> dict:
        """What `_init_one` reads per target besides target and key: 'class' vectors [n, c_dim] for
        conditional generators, and 'start', the latent to start from in 'w'/'w+' [n, w_dim]."""
        inputs = {} if classes is None else {"class": classes}
        if self.space != "z":
            means = [np.asarray(self.stats.mean)] * n if classes is None else [self._class_mean(c) for c in classes]
            inputs["start"] = np.stack(means)
        return inputs

    def _class_mean(self, c) -> np.ndarray:
        if c.tobytes() not in self._class_means:
            stats = latent_statistics(self.G, self.G.params, self.space, self.config.stats_samples,
                                      jax.random.key(self.config.stats_seed), c)
            self._class_means[c.tobytes()] = np.asarray(stats.mean)
        return self._class_means[c.tobytes()]

    # --- one target -------------------------------------------------------------------------
    def _loss(self, lpips, image, target, target_features):
        terms = {}
        if "mse" in self.weights:
            terms["mse"] = jnp.mean(jnp.square(image - target))
        if "lpips" in self.weights:
            features = lpips.features(self._lpips_input(image[None]), normalize=True)
            terms["lpips"] = lpips.distance_from_features(features, target_features)[0]
        return sum(self.weights[k] * v for k, v in terms.items()), terms

    def _lpips_input(self, images):
        return rgb(_area_downsample(images, self.config.lpips_resolution))

    def _init_one(self, params, lpips, target, key, inputs):
        k_latent, k_noise, k_steps = jax.random.split(key, 3)
        if self.space == "z":
            latent = self.z_space.sample(k_latent, 1, params)[0]
        elif self.space == "w":
            latent = inputs["start"]
        else:
            latent = jnp.broadcast_to(inputs["start"], (self.G.num_ws, self.G.w_dim))
        sizes = [int(np.prod(shape)) for shape in self.noise_shapes.values()]
        flat = jnp.split(jax.random.normal(k_noise, (sum(sizes),)), np.cumsum(sizes)[:-1]) if sizes else []
        noise = {name: x.reshape(shape) for (name, shape), x in zip(self.noise_shapes.items(), flat)}
        variables = {"latent": latent, "noise": noise}
        fixed_class = inputs.get("class")
        if self.optimize_class:
            variables["class"], fixed_class = fixed_class, None
        features = (lpips.features(self._lpips_input(target[None]), normalize=True)
                    if "lpips" in self.weights else {})
        return {"variables": variables, "opt": self._tx.init(variables), "target": target, "class": fixed_class,
                "features": features, "key": k_steps}

    def _class(self, state, variables):
        """The target's class vector: optimised (a variable) or fixed (in the state); None if unconditional."""
        return variables["class"] if self.optimize_class else state["class"]

    def _decode(self, params, state, variables, latent):
        return _decode_one(self.G, params, latent, self.space, variables["noise"], self._class(state, variables),
                           self.config.truncation_psi)

    def _into_box(self, variables):
        """Keep a 'z' latent inside the prior's support (BigGAN's truncation box); others as they are."""
        prior = self.z_space.prior if self.space == "z" else None
        if prior is None or prior.bound is None:
            return variables
        box = prior.bound * prior.std
        return {**variables, "latent": jnp.clip(variables["latent"], prior.mean - box, prior.mean + box)}

    def _step_one(self, params, lpips, state, step):
        def objective(variables):
            eps = jax.random.normal(jax.random.fold_in(state["key"], step), variables["latent"].shape)
            image = self._decode(params, state, variables, variables["latent"] + self._latent_noise(step) * eps)
            return self._loss(lpips, image, state["target"], state["features"])[0]

        loss, grads = jax.value_and_grad(objective)(state["variables"])
        updates, opt = self._tx.update(grads, state["opt"], state["variables"])
        variables = self._into_box(optax.apply_updates(state["variables"], updates))
        return {**state, "variables": variables, "opt": opt}, loss

    def _finish_one(self, params, lpips, state):
        variables = state["variables"]
        image = self._decode(params, state, variables, variables["latent"])
        total, terms = self._loss(lpips, image, state["target"], state["features"])
        if variables["noise"]:
            terms["noise_reg"] = noise_regularization(variables["noise"])
        c = self._class(state, variables)
        ws = (_to_ws_one(self.G, params, variables["latent"], self.space, c, self.config.truncation_psi)
              if hasattr(self.G, "mapping") else None)
        return {"latent": variables["latent"], "ws": ws, "image": image, "losses": {"loss": total, **terms},
                "noise": variables["noise"], "class": c}


class Inverter:
    """A compiled inversion recipe for one generator, space, loss and step count.

    Build once and call on any number of target batches: `Inverter(G, space='w+', steps=1000,
    loss='lpips', lpips=model)(targets, key)`. Compiled programs are cached per generator and
    settings, so building the same Inverter again does not recompile.
    """

    def __init__(self, G, *, space: str = "w+", steps: int = 1000, loss="lpips", lpips=None,
                 optimize_noise: bool = False, optimize_class: bool = False, config: InversionConfig | None = None,
                 mesh: Mesh | None = None):
        _check_space(space)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if optimize_class and not getattr(G, "c_dim", 0):
            raise ValueError(f"optimize_class: this {type(G).__name__} is unconditional (c_dim 0)")
        if optimize_class and space != "z":
            raise ValueError(f"optimize_class works in space 'z' only: in {space!r} the class just picks the start")
        if space != "z" and not hasattr(G, "synthesis"):
            raise ValueError(f"space {space!r} needs a generator with a mapping network; "
                             f"{type(G).__name__} can be inverted in 'z' only")
        weights = parse_loss(loss)
        if "lpips" in weights and lpips is None:
            raise ValueError("loss 'lpips' needs an LPIPS model: lpips=latentjax.metrics.lpips.load_lpips(vgg16, lin)")
        noise_shapes = {k: tuple(v.shape) for k, v in noise_maps(G.params).items()} if optimize_noise else {}
        if optimize_noise and not noise_shapes:
            raise ValueError(f"optimize_noise: {type(G).__name__} has no noise maps (noise_const params)")
        mesh = mesh if mesh is not None else Mesh(np.array(jax.devices()), ("data",))
        if "data" not in mesh.axis_names:
            raise ValueError(f"the mesh needs a 'data' axis to shard targets over, got axes {mesh.axis_names}")
        recipe = _Recipe(G, id(G.params), space, steps, tuple(sorted(weights.items())),
                         tuple(sorted(noise_shapes.items())), config or InversionConfig(), bool(optimize_class))
        self._program = _program(recipe, mesh)
        self.G, self.space, self.steps, self.weights, self.config = G, space, steps, weights, recipe.config
        self.stats = self._program.stats
        self._lpips = jax.device_put(lpips, self._program.replicated) if "lpips" in weights else None

    def check_targets(self, targets) -> np.ndarray:
        """Targets as float32 [N, H, W, C] in [-1, 1] at the generator's size, or a ValueError."""
        G = self.G
        shape = tuple(np.shape(targets))
        expected = (G.img_resolution, G.img_resolution, G.img_channels)
        if len(shape) != 4 or shape[1:] != expected or shape[0] == 0:
            raise ValueError(f"targets must be images [N, {expected[0]}, {expected[1]}, {expected[2]}] (NHWC, this "
                             f"generator's resolution and channels, N >= 1), got shape {shape}")
        x = np.asarray(targets)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"targets must be float images in [-1, 1], got dtype {x.dtype} "
                             "(uint8 images map by x / 127.5 - 1)")
        x = x.astype(np.float32)
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise ValueError(f"targets must lie in [-1, 1] (the generator's range), got values in [{lo:.4g}, {hi:.4g}]")
        return x

    def _inputs(self, classes, n: int) -> dict:
        """The per-target inputs of the program's init besides target and key (see `per_target_inputs`)."""
        return self._program.per_target_inputs(check_classes(self.G, classes, n), n)

    def __call__(self, targets, key, *, classes=None, batch_size: int | None = None,
                 progress: bool = True) -> InversionResult:
        """Invert `targets` [N, H, W, C] with one key (split per target) or N keys, `batch_size` at a time.

        `classes` (conditional generators): one class index, N indices or N class vectors [N, c_dim].
        Every batch is padded to `batch_size` (rounded up to a multiple of the mesh's "data" axis),
        so a job compiles one step whatever the number of targets.
        """
        targets = self.check_targets(targets)
        n = targets.shape[0]
        per_target = {"target": targets, "key": _target_keys(key, n), "inputs": self._inputs(classes, n)}
        program = self._program
        batch_size = batch_size or n
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        padded_size = batch_size + -batch_size % program.shards  # every chunk has this one compiled shape
        chunks = range(0, n, batch_size)
        outputs = []
        report_every = max(1, self.steps // 20)
        with Progress(self.steps * len(chunks), desc=f"invert {self.space}", unit="step",
                      enabled=None if progress else False) as bar:
            for lo in chunks:
                count = min(batch_size, n - lo)
                chunk = jax.tree.map(lambda x: _padded_rows(x, lo, count, padded_size), per_target)
                state = program.init(program.params, self._lpips, chunk["target"], chunk["key"], chunk["inputs"])
                for step in range(self.steps):
                    state, loss = program.step(program.params, self._lpips, state, step)
                    report = step % report_every == 0 or step == self.steps - 1
                    bar.update(1, **({"loss": float(jnp.mean(loss[:count]))} if report else {}))
                out = program.finish(program.params, self._lpips, state)
                outputs.append(jax.tree.map(lambda a: np.asarray(a)[:count], out))
        out = jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)
        return InversionResult(space=self.space, steps=self.steps, latents=out["latent"], ws=out["ws"],
                               images=out["image"], losses=out["losses"], noise=out["noise"] or None,
                               classes=out.get("class"))


def _padded_rows(x, start: int, count: int, size: int):
    """Rows start..start+count of `x`, the last repeated up to `size` rows (a full batch that
    divides over the devices; the repeats are dropped from the results)."""
    xp = jnp if isinstance(x, jax.Array) else np
    rows = x[start:start + count]
    return xp.concatenate([rows, xp.repeat(rows[-1:], size - count, 0)]) if size > count else rows


def invert(G, targets, *, space: str = "w+", steps: int = 1000, loss="lpips", key, lpips=None, classes=None,
           optimize_noise: bool = False, optimize_class: bool = False, config: InversionConfig | None = None,
           batch_size: int | None = None, mesh: Mesh | None = None, progress: bool = True) -> InversionResult:
    """Find latents whose images match `targets` [N, H, W, C] (NHWC, the generator's size, in [-1, 1]).

    `space`: 'z', 'w' or 'w+' (BigGAN and PGGAN: 'z'); `optimize_noise` also fits the noise maps
    (the NVIDIA projector is space='w', optimize_noise=True, loss='lpips'). `loss`: 'lpips' (needs
    `lpips`, see `latentjax.metrics.lpips.load_lpips`), 'mse' or a dict of weights. `key`: one key,
    split per target, or one key per target. `classes` (conditional generators): one class index,
    one per target, or class vectors [N, c_dim]; `optimize_class` (in 'z') optimises the class
    vectors too. `batch_size` targets share one compiled step (default: all), sharded over the
    mesh's "data" axis (default: all devices).
    """
    inverter = Inverter(G, space=space, steps=steps, loss=loss, lpips=lpips, optimize_noise=optimize_noise,
                        optimize_class=optimize_class, config=config, mesh=mesh)
    return inverter(targets, key, classes=classes, batch_size=batch_size, progress=progress)
