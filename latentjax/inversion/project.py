"""Optimisation-based GAN inversion: target images in, latents out, many targets per compiled step.

The default recipe is the NVIDIA projector's (stylegan2-ada-pytorch `projector.py`): start from the
mean of 10K mapped samples, Adam with a ramped learning rate, decaying Gaussian noise added to the
latent, LPIPS on images area-downsampled to 256 pixels when larger, and (with `optimize_noise`)
the noise maps optimised too under a multi-scale autocorrelation penalty and renormalisation.
Spaces: 'z' (the generator's input), 'w' (one mapped vector for every layer) and 'w+' (one per
layer). Losses: 'lpips', 'mse', or a weighted sum such as {'lpips': 1.0, 'mse': 0.1}.

One target's optimisation is a pure function; `jax.vmap` runs a batch of targets in one step,
which is `jit`-ted with its batch axis sharded over the "data" axis of a `jax.sharding.Mesh`.
Each target has its own key, so a target's result does not depend on the batch it runs in.

The generator interface used: `generate` ('z'), `mapping` and `synthesis` ('w', 'w+'), `z_dim`,
`w_dim`, `num_ws`, `img_resolution`, `img_channels`, `c_dim`, `params`, and (for `optimize_noise`)
`noise_const` leaves in its params. Unconditional generators without a mapping network (PGGAN)
can be inverted in 'z'.
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

from latentjax.dataclass_config import ConfigMixin
from latentjax.inversion.optim import latent_noise_schedule, noise_regularization, projector_optimizer
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
    spread and the starting point in 'w'/'w+'.
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
    noise maps {name: [N, H, W]} (None without `optimize_noise`).
    """

    space: str
    steps: int
    latents: np.ndarray
    ws: np.ndarray
    images: np.ndarray
    losses: dict
    noise: dict | None = None


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
def _mapped_w(G, params, z):
    return G.mapping(params, z)[:, 0]


def latent_statistics(G, params, space: str, num_samples: int, key) -> LatentStats:
    """Mean and spread of `num_samples` samples of `space` ('z' draws, or their mapped w)."""
    z = jax.random.normal(key, (num_samples, G.z_dim))
    samples = z if space == "z" else _mapped_w(G, params, z)
    mean = jnp.mean(samples, axis=0)
    return LatentStats(mean, float(jnp.sqrt(jnp.sum(jnp.square(samples - mean)) / num_samples)))


def _to_ws_one(G, params, latent, space: str):
    if space == "z":
        return G.mapping(params, latent[None])[0]
    return latent if space == "w+" else jnp.broadcast_to(latent, (G.num_ws, G.w_dim))


def _decode_one(G, params, latent, space: str, noise):
    if noise:
        params = with_noise(params, noise)
    if space == "z":  # `generate` also serves generators without a mapping network (PGGAN)
        return G.generate(params, latent[None])[0]
    return G.synthesis(params, _to_ws_one(G, params, latent, space)[None])[0]


def decode(G, params, latents, *, space: str, noise: Mapping | None = None):
    """Images [N, H, W, C] of inverted `latents` in `space`, with per-target noise maps {name: [N, H, W]}."""
    _check_space(space)
    return _decode_batch(G, params, jnp.asarray(latents), dict(noise or {}), space)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _decode_batch(G, params, latents, noise, space):
    return jax.vmap(lambda latent, maps: _decode_one(G, params, latent, space, maps))(latents, noise)


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
        self.stats = latent_statistics(G, G.params, self.space, cfg.stats_samples, jax.random.key(cfg.stats_seed))
        noise_mask = None
        if self.noise_shapes:  # the noise-map transformations act on the "noise" subtree only
            noise_mask = lambda p: {"latent": False, "noise": {k: True for k in p["noise"]}}  # noqa: E731
        self._tx = projector_optimizer(self.steps, cfg.lr, cfg.lr_rampup, cfg.lr_rampdown, cfg.betas,
                                       cfg.noise_regularization, noise_mask)
        self._latent_noise = latent_noise_schedule(cfg.latent_noise * self.stats.std, self.steps,
                                                   cfg.latent_noise_ramp)
        self.shards = mesh.shape["data"]
        batch = NamedSharding(mesh, P("data"))
        self.replicated = replicated = NamedSharding(mesh, P())
        self._source_params = G.params  # keeps `params_id` unique while the program is cached
        self.params = jax.device_put(G.params, replicated)
        self.init = jax.jit(jax.vmap(self._init_one, in_axes=(None, None, 0, 0)),
                            in_shardings=(replicated, replicated, batch, batch), out_shardings=batch)
        self.step = jax.jit(jax.vmap(self._step_one, in_axes=(None, None, 0, None)),
                            in_shardings=(replicated, replicated, batch, replicated), out_shardings=batch,
                            donate_argnums=(2,))
        self.finish = jax.jit(jax.vmap(self._finish_one, in_axes=(None, None, 0)),
                              in_shardings=(replicated, replicated, batch), out_shardings=batch)

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

    def _init_one(self, params, lpips, target, key):
        k_latent, k_noise, k_steps = jax.random.split(key, 3)
        if self.space == "z":
            latent = jax.random.normal(k_latent, (self.G.z_dim,))
        elif self.space == "w":
            latent = self.stats.mean
        else:
            latent = jnp.broadcast_to(self.stats.mean, (self.G.num_ws, self.G.w_dim))
        sizes = [int(np.prod(shape)) for shape in self.noise_shapes.values()]
        flat = jnp.split(jax.random.normal(k_noise, (sum(sizes),)), np.cumsum(sizes)[:-1]) if sizes else []
        noise = {name: x.reshape(shape) for (name, shape), x in zip(self.noise_shapes.items(), flat)}
        variables = {"latent": latent, "noise": noise}
        features = (lpips.features(self._lpips_input(target[None]), normalize=True)
                    if "lpips" in self.weights else {})
        return {"variables": variables, "opt": self._tx.init(variables), "target": target,
                "features": features, "key": k_steps}

    def _step_one(self, params, lpips, state, step):
        def objective(variables):
            eps = jax.random.normal(jax.random.fold_in(state["key"], step), variables["latent"].shape)
            latent = variables["latent"] + self._latent_noise(step) * eps
            image = _decode_one(self.G, params, latent, self.space, variables["noise"])
            return self._loss(lpips, image, state["target"], state["features"])[0]

        loss, grads = jax.value_and_grad(objective)(state["variables"])
        updates, opt = self._tx.update(grads, state["opt"], state["variables"])
        return {**state, "variables": optax.apply_updates(state["variables"], updates), "opt": opt}, loss

    def _finish_one(self, params, lpips, state):
        variables = state["variables"]
        image = _decode_one(self.G, params, variables["latent"], self.space, variables["noise"])
        total, terms = self._loss(lpips, image, state["target"], state["features"])
        if variables["noise"]:
            terms["noise_reg"] = noise_regularization(variables["noise"])
        ws = _to_ws_one(self.G, params, variables["latent"], self.space) if hasattr(self.G, "mapping") else None
        return {"latent": variables["latent"], "ws": ws, "image": image, "losses": {"loss": total, **terms},
                "noise": variables["noise"]}


class Inverter:
    """A compiled inversion recipe for one generator, space, loss and step count.

    Build once and call on any number of target batches: `Inverter(G, space='w+', steps=1000,
    loss='lpips', lpips=model)(targets, key)`. Compiled programs are cached per generator and
    settings, so building the same Inverter again does not recompile.
    """

    def __init__(self, G, *, space: str = "w+", steps: int = 1000, loss="lpips", lpips=None,
                 optimize_noise: bool = False, config: InversionConfig | None = None, mesh: Mesh | None = None):
        _check_space(space)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if getattr(G, "c_dim", 0):
            raise ValueError("inverting conditional generators (c_dim > 0) is not supported yet")
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
                         tuple(sorted(noise_shapes.items())), config or InversionConfig())
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

    def __call__(self, targets, key, *, batch_size: int | None = None, progress: bool = True) -> InversionResult:
        """Invert `targets` [N, H, W, C] with one key (split per target) or N keys, `batch_size` at a time.

        Every batch is padded to `batch_size` (rounded up to a multiple of the mesh's "data" axis),
        so a job compiles one step whatever the number of targets.
        """
        targets = self.check_targets(targets)
        n = targets.shape[0]
        keys = _target_keys(key, n)
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
                chunk_targets, chunk_keys = targets[lo:lo + batch_size], keys[lo:lo + batch_size]
                count = chunk_targets.shape[0]
                pad = padded_size - count  # repeat the last target: a full batch that divides over the devices
                if pad:
                    chunk_targets = np.concatenate([chunk_targets, np.repeat(chunk_targets[-1:], pad, 0)])
                    chunk_keys = jnp.concatenate([chunk_keys, jnp.repeat(chunk_keys[-1:], pad, 0)])
                state = program.init(program.params, self._lpips, chunk_targets, chunk_keys)
                for step in range(self.steps):
                    state, loss = program.step(program.params, self._lpips, state, step)
                    report = step % report_every == 0 or step == self.steps - 1
                    bar.update(1, **({"loss": float(jnp.mean(loss[:count]))} if report else {}))
                out = program.finish(program.params, self._lpips, state)
                outputs.append(jax.tree.map(lambda a: np.asarray(a)[:count], out))
        out = jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)
        return InversionResult(space=self.space, steps=self.steps, latents=out["latent"], ws=out["ws"],
                               images=out["image"], losses=out["losses"], noise=out["noise"] or None)


def invert(G, targets, *, space: str = "w+", steps: int = 1000, loss="lpips", key, lpips=None,
           optimize_noise: bool = False, config: InversionConfig | None = None, batch_size: int | None = None,
           mesh: Mesh | None = None, progress: bool = True) -> InversionResult:
    """Find latents whose images match `targets` [N, H, W, C] (NHWC, the generator's size, in [-1, 1]).

    `space`: 'z', 'w' or 'w+'; `optimize_noise` also fits the noise maps (the NVIDIA projector is
    space='w', optimize_noise=True, loss='lpips'). `loss`: 'lpips' (needs `lpips`, see
    `latentjax.metrics.lpips.load_lpips`), 'mse' or a dict of weights. `key`: one key, split per
    target, or one key per target. `batch_size` targets share one compiled step (default: all),
    sharded over the mesh's "data" axis (default: all devices).
    """
    inverter = Inverter(G, space=space, steps=steps, loss=loss, lpips=lpips, optimize_noise=optimize_noise,
                        config=config, mesh=mesh)
    return inverter(targets, key, batch_size=batch_size, progress=progress)
