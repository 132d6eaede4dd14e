"""The NVIDIA projector's inversion recipe (stylegan2-ada-pytorch `projector.py`): images in, latents out.

Start from the mean of the space's samples (its prior mean: 10K mapped samples in 'w'/'w+'; a
sample of the prior in 'z'), Adam with a ramped learning rate, decaying Gaussian noise added to the
latent, LPIPS on images area-downsampled to 256 pixels when larger, and (with `optimize_noise`) the
generator's noise maps optimised too under a multi-scale autocorrelation penalty and
renormalisation. Spaces: 'z', 'w', 'w+'; losses: 'lpips', 'mse' or a weighted sum.

Conditional generators take one class per target: in 'z' it enters the image (`optimize_class`
optimises it as a continuous mixture); in 'w'/'w+' it picks the start, that class's mean w.
Everything goes through the `LatentSpace` of the space inverted in (decoding, prior, classes, the
BigGAN truncation box) and the `Program` of `inversion.program` (vmapped, jitted, sharded).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from latentjax.config import ConfigMixin, check_number
from latentjax.inversion.optim import latent_noise_schedule, noise_regularization, projector_optimizer
from latentjax.inversion.program import Program, check_targets, descend, target_keys
from latentjax.latent import LatentSpace, class_indices, latent_space, space_option_names
from latentjax.metrics.image import rgb

INVERSION_SPACES = ("z", "w", "w+")
LOSS_TERMS = ("lpips", "mse")


@dataclasses.dataclass(frozen=True)
class InversionConfig(ConfigMixin):
    """The recipe's hyperparameters; the defaults are those of stylegan2-ada-pytorch's projector.

    `latent_noise` is the initial std of the noise added to the latent, as a fraction of the
    space's spread (`prior_spread` of its prior: the root mean squared distance of its samples to
    their mean, a truncation box included); it decays to 0 at `latent_noise_ramp` of the steps. In
    'w'/'w+' the prior is fitted to `stats_samples` samples drawn with `stats_seed` (the space's
    `fit_samples` / `fit_seed`); its mean is the start. `truncation_psi` applies in 'z' (StyleGAN2's mapping;
    BigGAN's batch-norm statistics and the box its z stays in; PGGAN takes only 1).
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
        check_number("lr", self.lr, positive=True)
        for name in ("latent_noise", "noise_regularization", "truncation_psi"):
            check_number(name, getattr(self, name), negative=name == "truncation_psi")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not (0 <= self.lr_rampup <= 1 and 0 <= self.lr_rampdown <= 1 and 0 < self.latent_noise_ramp <= 1):
            raise ValueError(f"ramp lengths are fractions of the steps (latent_noise_ramp > 0): {self}")
        if self.stats_samples < 2 or self.lpips_resolution < 16:
            raise ValueError(f"stats_samples must be >= 2 and lpips_resolution >= 16 (LPIPS' minimum): {self}")


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


def inversion_space(G, space: str, config: InversionConfig | None = None, class_index: int | None = None
                    ) -> LatentSpace:
    """The LatentSpace inversion works in: 'z' at `config.truncation_psi`, or 'w'/'w+' whose prior
    is fitted to `config.stats_samples` samples from `config.stats_seed`; `class_index` for one class."""
    _check_space(space)
    config = config or InversionConfig()
    if space != "z" and not G.style_based:
        raise ValueError(f"space {space!r} needs a generator with a mapping network; "
                         f"{type(G).__name__} can be inverted in 'z' only")
    options = {} if class_index is None else {"class_index": int(class_index)}
    if space != "z":
        options.update(fit_samples=config.stats_samples, fit_seed=config.stats_seed)
    elif "truncation_psi" in space_option_names(G):
        options["truncation_psi"] = config.truncation_psi
    elif config.truncation_psi != 1.0:
        raise ValueError(f"truncation_psi: {type(G).__name__} has no truncation, got {config.truncation_psi}")
    return latent_space(G, space, **options)


def decode_one(space: LatentSpace, params, latent, noise=None, c=None):
    """One latent's image [H, W, C] in `space`, with the generator's noise maps `noise` ({name: [H, W]})
    and, where the class enters the image, class vector `c` [c_dim]. Pure; vmap it over targets."""
    params = space.generator.with_noise(params, noise or {})
    return space.decode(params, latent[None], classes=None if c is None else c[None])[0]


def decode(G, params, latents, *, space: str, noise: Mapping | None = None, classes=None,
           truncation_psi: float = 1.0):
    """Images [N, H, W, C] of inverted `latents` in `space`, with per-target noise maps {name: [N, H, W]}
    and, for conditional generators in 'z', class vectors `classes` [N, c_dim] (`InversionResult.classes`)."""
    lspace = inversion_space(G, space, InversionConfig(truncation_psi=truncation_psi))
    latents = jnp.asarray(latents)
    classes = lspace.classes(latents.shape[0], classes) if space == "z" else None

    @jax.jit
    def run(params, latents, noise, classes):
        return jax.vmap(lambda x, maps, c: decode_one(lspace, params, x, maps, c))(latents, noise, classes)

    return run(params, latents, dict(noise or {}), classes)


def prior_spread(prior) -> float:
    """The root mean squared distance of the prior's samples to its mean: `Gaussian.spread` (that of
    the untruncated Gaussian) times, for a prior truncated to a box of `bound` whitened units (BigGAN's
    z), the truncated standard normal's std sqrt(1 - 2 b phi(b) / (2 Phi(b) - 1)) (0.880 at b = 2)."""
    if prior.bound is None:
        return float(prior.spread)
    b = float(prior.bound)
    mass = math.erf(b / math.sqrt(2.0))  # Phi(b) - Phi(-b)
    density = math.exp(-0.5 * b * b) / math.sqrt(2.0 * math.pi)  # phi(b)
    return float(prior.spread) * math.sqrt(1.0 - 2.0 * b * density / mass)


def _check_space(space: str) -> None:
    if space not in INVERSION_SPACES:
        raise ValueError(f"unknown latent space {space!r}; expected one of {INVERSION_SPACES}")


def parse_loss(loss, terms: tuple[str, ...] = LOSS_TERMS) -> dict[str, float]:
    """'lpips' | 'mse' | {'lpips': a, 'mse': b} -> the term weights (finite, >= 0, one of them > 0);
    `terms`: the term names a method knows (default: the projector's)."""
    if isinstance(loss, str):
        weights = {loss: 1.0}
    elif isinstance(loss, Mapping):
        weights = {str(k): check_number(f"loss weight {k!r}", v) for k, v in loss.items()}
    else:
        raise ValueError(f"loss must be one of {terms} or a dict of weights such as "
                         f"{{'{terms[0]}': 1.0, '{terms[-1]}': 0.1}}, got {loss!r}")
    unknown = sorted(set(weights) - set(terms))
    if unknown or not any(weights.values()):
        raise ValueError(f"loss must name terms from {terms} with a non-zero weight, got {loss!r}")
    return weights


def lpips_features(lpips, images, resolution: int = 256):
    """LPIPS features of images [N, H, W, C], area-downsampled to `resolution` pixels when larger."""
    return lpips.features(rgb(_area_downsample(images, resolution)), normalize=True)


def target_features(weights: Mapping[str, float], lpips, target, resolution: int = 256):
    """What `image_loss` compares an image with besides the target: its LPIPS features ({} without 'lpips')."""
    return lpips_features(lpips, target[None], resolution) if "lpips" in weights else {}


def image_loss(weights: Mapping[str, float], lpips, image, target, features, resolution: int = 256):
    """(the weighted sum, {term: value}) of one image [H, W, C] against its target: 'mse', and 'lpips'
    against the target's features (`target_features`)."""
    terms = {}
    if "mse" in weights:
        terms["mse"] = jnp.mean(jnp.square(image - target))
    if "lpips" in weights:
        terms["lpips"] = lpips.distance_from_features(lpips_features(lpips, image[None], resolution), features)[0]
    return sum(weights[k] * v for k, v in terms.items()), terms


def _area_downsample(images, size: int):
    """Box-filter [N, H, W, C] down by the integer factor H // size (only when H > size)."""
    n, h, w, c = images.shape
    if h <= size:
        return images
    f = h // size
    return images[:, :h // f * f, :w // f * f].reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))


class ProjectorProgram(Program):
    """The projector recipe as a `Program`: one target's latent (and noise maps, and class) under
    `projector_optimizer`, decoded through `space`. Per-target inputs: 'start' ('w'/'w+', the
    space's prior mean), 'spread' (the prior's spread, scaling the latent noise) and 'class'
    (conditional generators)."""

    def __init__(self, space: LatentSpace, steps: int, weights: Mapping[str, float], noise_shapes: Mapping,
                 config: InversionConfig, optimize_class: bool = False, mesh: Mesh | None = None):
        self.latent_space, self.G, self.space = space, space.generator, space.name
        self.steps, self.weights, self.config = steps, dict(weights), config
        self.noise_shapes = dict(sorted(noise_shapes.items()))
        self.optimize_class = optimize_class
        noise_mask = None
        if self.noise_shapes:  # the noise-map transformations act on the "noise" subtree only
            noise_mask = lambda p: {k: jax.tree.map(lambda _: k == "noise", v) for k, v in p.items()}  # noqa: E731
        self.tx = projector_optimizer(steps, config.lr, config.lr_rampup, config.lr_rampdown, config.betas,
                                      config.noise_regularization, noise_mask)
        self.latent_noise = latent_noise_schedule(config.latent_noise, steps, config.latent_noise_ramp)
        super().__init__(self.G.params, mesh)

    def loss(self, lpips, image, target, target_features):
        return image_loss(self.weights, lpips, image, target, target_features, self.config.lpips_resolution)

    def _features(self, lpips, target):
        return target_features(self.weights, lpips, target, self.config.lpips_resolution)

    def init_one(self, params, lpips, target, key, inputs):
        k_latent, k_noise, k_steps = jax.random.split(key, 3)
        if self.space == "z":
            latent = self.latent_space.sample(k_latent, 1, params)[0]
        else:
            latent = jnp.broadcast_to(inputs["start"], self.latent_space.shape)
        sizes = [int(np.prod(shape)) for shape in self.noise_shapes.values()]
        flat = jnp.split(jax.random.normal(k_noise, (sum(sizes),)), np.cumsum(sizes)[:-1]) if sizes else []
        noise = {name: x.reshape(shape) for (name, shape), x in zip(self.noise_shapes.items(), flat)}
        variables = {"latent": latent, "noise": noise}
        fixed_class = inputs.get("class")
        if self.optimize_class:
            variables["class"], fixed_class = fixed_class, None
        return {"variables": variables, "opt": self.tx.init(variables), "target": target, "class": fixed_class,
                "spread": inputs["spread"], "features": self._features(lpips, target), "key": k_steps}

    def _class(self, state, variables):
        """The target's class vector: optimised (a variable) or fixed (in the state); None if unconditional."""
        return variables["class"] if self.optimize_class else state["class"]

    def _decode(self, params, state, variables, latent):
        return decode_one(self.latent_space, params, latent, variables["noise"], self._class(state, variables))

    def _box(self):
        """(low, high) of the prior's support in 'z' (BigGAN's truncation box), or None (unbounded)."""
        prior = self.latent_space.prior if self.space == "z" else None
        if prior is None or prior.bound is None:
            return None
        box = prior.bound * prior.std
        return prior.mean - box, prior.mean + box

    def _into_box(self, variables):
        """Keep a 'z' latent inside the prior's support (BigGAN's truncation box); others as they are."""
        box = self._box()
        return variables if box is None else {**variables, "latent": jnp.clip(variables["latent"], *box)}

    def perturb(self, latent, spread, key, step):
        """The latent the loss sees at `step`: `latent` plus N(0, (latent_noise(step) * spread)^2) noise
        per coordinate, kept inside the prior's box if it has one. The clip is straight-through (its
        gradient is the identity), so coordinates at the box's edge keep their gradient."""
        noisy = latent + self.latent_noise(step) * spread * jax.random.normal(jax.random.fold_in(key, step),
                                                                               latent.shape)
        box = self._box()
        return noisy if box is None else noisy + jax.lax.stop_gradient(jnp.clip(noisy, *box) - noisy)

    def step_one(self, params, lpips, state, step):
        def objective(variables):
            noisy = self.perturb(variables["latent"], state["spread"], state["key"], step)
            return self.loss(lpips, self._decode(params, state, variables, noisy), state["target"],
                             state["features"])[0]

        state, loss = descend(self.tx, objective, state)
        return {**state, "variables": self._into_box(state["variables"])}, loss

    def finish_one(self, params, lpips, state):
        variables = state["variables"]
        image = self._decode(params, state, variables, variables["latent"])
        total, terms = self.loss(lpips, image, state["target"], state["features"])
        if variables["noise"]:
            terms["noise_reg"] = noise_regularization(variables["noise"])
        c = self._class(state, variables)
        ws = (self.latent_space.to_ws(params, variables["latent"][None], None if c is None else c[None])[0]
              if self.G.style_based else None)
        return {"latent": variables["latent"], "ws": ws, "image": image, "losses": {"loss": total, **terms},
                "noise": variables["noise"], "class": c}


class Inverter:
    """A compiled inversion recipe for one generator, space, loss and step count.

    Build once and call on any number of target batches: `Inverter(G, space='w+', steps=1000,
    loss='lpips', lpips=model)(targets, key)`. The inverter holds its compiled program and its
    latent spaces (their fitted priors), so later calls do not recompile or refit.
    """

    def __init__(self, G, *, space: str = "w+", steps: int = 1000, loss="lpips", lpips=None,
                 optimize_noise: bool = False, optimize_class: bool = False, config: InversionConfig | None = None,
                 mesh: Mesh | None = None):
        _check_space(space)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if optimize_class and not G.c_dim:
            raise ValueError(f"optimize_class: this {type(G).__name__} is unconditional (c_dim 0)")
        if optimize_class and space != "z":
            raise ValueError(f"optimize_class works in space 'z' only: in {space!r} the class just picks the start")
        weights = parse_loss(loss)
        if "lpips" in weights and lpips is None:
            raise ValueError("loss 'lpips' needs an LPIPS model: lpips=latentjax.metrics.lpips.load_lpips(vgg16, lin)")
        noise_shapes = {k: tuple(v.shape) for k, v in G.noise_maps(G.params).items()} if optimize_noise else {}
        if optimize_noise and not noise_shapes:
            raise ValueError(f"optimize_noise: {type(G).__name__} has no noise maps")
        self.G, self.space, self.steps, self.weights = G, space, steps, weights
        self.config = config or InversionConfig()
        self.latent_space = inversion_space(G, space, self.config)
        self._class_spaces: dict[int, LatentSpace] = {}  # class index -> its space ('w'/'w+': the class's prior)
        self._program = ProjectorProgram(self.latent_space, steps, weights, noise_shapes, self.config,
                                         bool(optimize_class), mesh)
        self._lpips = self._program.replicate(lpips) if "lpips" in weights else None

    def check_targets(self, targets) -> np.ndarray:
        """Targets as float32 [N, H, W, C] in [-1, 1] at the generator's size, or a ValueError."""
        return check_targets(self.G, targets)

    def _class_space(self, index: int) -> LatentSpace:
        if index not in self._class_spaces:
            self._class_spaces[index] = inversion_space(self.G, self.space, self.config, index)
        return self._class_spaces[index]

    def per_target_inputs(self, classes, n: int) -> dict:
        """What the program's init reads per target besides target and key: 'class' vectors [n, c_dim]
        (conditional generators; `classes` as `LatentSpace.classes`), 'start' ('w'/'w+': the prior
        mean of the target's class, or of the space) and 'spread' (that prior's spread)."""
        c = self.latent_space.classes(n, classes)
        inputs = {} if c is None else {"class": np.asarray(c, np.float32)}
        spaces = [self.latent_space] * n
        if c is not None and self.space != "z":
            try:
                spaces = [self._class_space(int(i)) for i in class_indices(self.G, c)]
            except ValueError as e:
                raise ValueError(f"classes: in space {self.space!r} the class picks the start (its mean w), so it "
                                 f"must be a class, not a mixture: {e}") from None
        priors = [space.prior for space in spaces]
        if self.space != "z":
            inputs["start"] = np.stack([np.asarray(prior.mean, np.float32) for prior in priors])
        inputs["spread"] = np.asarray([prior_spread(prior) for prior in priors], np.float32)
        return inputs

    def __call__(self, targets, key, *, classes=None, batch_size: int | None = None,
                 progress: bool = True) -> InversionResult:
        """Invert `targets` [N, H, W, C] with one key (split per target) or N keys, `batch_size` at a time.

        `classes` (conditional generators): one class index, N indices or N class vectors [N, c_dim].
        Every batch is padded to `batch_size` (rounded up to a multiple of the mesh's "data" axis),
        so a job compiles one step whatever the number of targets.
        """
        targets = self.check_targets(targets)
        n = targets.shape[0]
        out = self._program.run(self._lpips, targets, target_keys(key, n), self.per_target_inputs(classes, n), self.steps,
                                batch_size, progress=progress, desc=f"invert {self.space}")
        return InversionResult(space=self.space, steps=self.steps, latents=out["latent"], ws=out["ws"],
                               images=out["image"], losses=out["losses"], noise=out["noise"] or None,
                               classes=out.get("class"))


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
