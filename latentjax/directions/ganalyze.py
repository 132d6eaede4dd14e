"""GANalyze (Goetschalckx et al., ICCV 2019): a direction learned so that an assessor's score moves by alpha.

For each attribute of a differentiable `Scorer` (the assessor), theta is trained so that
A(G(T(z, alpha))) = A(G(z)) + alpha, the generator and the assessor frozen, with the PyTorch
reference's Adam (lr 2e-4, batch 4). T(z, alpha) = z + alpha theta, rescaled to |z| per sample by
default (`normalize`: 'batch' is the PyTorch reference's quirk, 'none' a plain shift for w and w+).
Attributes train side by side, each its own theta. `directions_of` computes the evaluation the paper
plots (mean score against alpha on held-out z) as `settings["curve"]`; each direction's score is its
slope (1 when alpha is met exactly), and `theta_norms` keeps the trained lengths.
`class_dependent=True` is the reference's class-dependent theta (one per attribute and class).
Details: docs/methods.md#latentjaxdirectionsganalyze
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax.config import ConfigMixin, check_positive, configure
from latentjax.directions.base import Directions
from latentjax.directions.learned import DIRECTIONS_FILE, train_directions
from latentjax.latent import LatentSpace, as_space, layer_mask
from latentjax.metrics.scorer import Scorer, attribute_names
from latentjax.sharding import shard_batch
from latentjax.train.task import Task

NORMALIZE = ("sample", "batch", "none")
INITS = ("normal", "zeros")


@dataclasses.dataclass(frozen=True)
class GANalyzeConfig(ConfigMixin):
    attributes: tuple[str, ...] = ()  # scorer columns to learn a direction for; () = every column
    alpha_range: float = 0.5  # alpha ~ U(-alpha_range, alpha_range) per sample
    normalize: str = "sample"  # rescale T(z, alpha) to |z|: 'sample' (the paper), 'batch' (PyTorch quirk), 'none'
    init: str = "normal"  # theta's start: 'normal' (PyTorch reference, N(0, I)) or 'zeros' (TensorFlow code)
    lr: float = 2e-4  # Adam
    curve_alphas: tuple[float, ...] = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3)  # the evaluation's alphas
    eval_samples: int = 256  # held-out latents of the score-vs-alpha curve
    eval_seed: int = 0  # key of those latents
    steps: int = 100_000  # the reference: 400K samples in batches of 4
    batch_size: int = 4
    class_dependent: bool = False  # one theta per class, Linear(onehot(y)) (conditional generators, z space)

    def __post_init__(self):
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        check_positive(self, "steps", "batch_size", "eval_samples")
        if not (0 < self.alpha_range < math.inf and 0 < self.lr < math.inf):
            raise ValueError(f"alpha_range and lr must be positive and finite, got {self.alpha_range}, {self.lr}")
        if len(self.curve_alphas) < 2 or len(set(self.curve_alphas)) != len(self.curve_alphas):
            raise ValueError(f"curve_alphas must hold at least two distinct values, got {self.curve_alphas}")


def transform(latent, shift, alpha, normalize: str = "sample"):
    """T(z, alpha): `latent` [N, ...] + alpha [N] * `shift` (a latent-shaped step, e.g. space.embed(theta)),
    rescaled to the norm of `latent` per sample ('sample'), over the whole batch ('batch') or not ('none')."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    alpha = jnp.reshape(alpha, (-1,) + (1,) * (latent.ndim - 1))
    moved = latent + alpha * shift
    if normalize == "none":
        return moved
    axes = tuple(range(1, latent.ndim)) if normalize == "sample" else None
    return moved * (jnp.linalg.norm(latent, axis=axes, keepdims=axes is not None)
                    / jnp.linalg.norm(moved, axis=axes, keepdims=axes is not None))


def build_task(space: LatentSpace, scorer: Scorer, settings: GANalyzeConfig) -> Task:
    """The training task (the contract of `latentjax.directions.learned`, with the scorer given).

    State: "generator" and "scorer" (frozen params), "theta" [A, direction_dim], "opt" (Adam)."""
    if not scorer.differentiable:
        raise ValueError("GANalyze learns through the scorer's gradient: pass a differentiable Scorer "
                         "(an assessor network, e.g. lj.shapes.recognition.assessor_scorer), not a read-out")
    attributes = attribute_names(scorer, settings.attributes)
    columns = jnp.asarray(scorer.columns(attributes))
    G, A, D, B = space.generator, len(attributes), space.direction_dim, settings.batch_size
    C = space.num_classes if settings.class_dependent else 1
    if settings.class_dependent and not (C and space.name == "z"):
        raise ValueError(f"class_dependent GANalyze needs the z space of a class-conditional generator, got "
                         f"{space!r} with {space.num_classes} classes")
    tx = optax.adam(settings.lr)

    def draw_classes(key, n):
        """Per-sample class indices [n] (class-dependent), or None: the space's own class."""
        return jax.random.randint(key, (n,), 0, C) if settings.class_dependent else None

    def shifts(theta, classes, n):
        """[A, n, direction_dim]: each sample's theta, per attribute."""
        if settings.class_dependent:
            return theta[:, classes]
        return jnp.broadcast_to(theta[:, None], (A, n, D))

    def scores(state, latents, classes):
        images = space.decode(state["generator"], latents, classes=classes)
        return scorer.score(state["scorer"], images)[:, columns]  # [N, A]

    def moved_scores(state, theta, latents, classes, alpha, normalize=settings.normalize):
        """[N, A]: attribute a's score of T(z, alpha) along each sample's theta_a."""
        def one(shift, column):
            edited = transform(latents, space.embed(shift), alpha, normalize)
            return scores(state, edited, classes)[:, column]
        return jax.vmap(one, out_axes=1)(shifts(theta, classes, latents.shape[0]), jnp.arange(A))

    def init(key):
        shape = (A, C, D) if settings.class_dependent else (A, D)
        theta = (jax.random.normal(key, shape, jnp.float32) if settings.init == "normal"
                 else jnp.zeros(shape, jnp.float32))
        return {"generator": G.params, "scorer": scorer.params, "theta": theta, "opt": tx.init(theta)}

    def step(state, batch, key, step):
        k_z, k_alpha, k_class = jax.random.split(key, 3)
        latents = shard_batch(space.sample(k_z, B, state["generator"]))
        classes = draw_classes(k_class, B)
        classes = None if classes is None else shard_batch(classes)
        alpha = shard_batch(jax.random.uniform(k_alpha, (B,), jnp.float32, -settings.alpha_range,
                                               settings.alpha_range))
        target = scores(state, latents, classes) + alpha[:, None]  # frozen networks: no gradient to theta here

        def loss_fn(theta):
            per_attribute = jnp.mean((moved_scores(state, theta, latents, classes, alpha) - target) ** 2, axis=0)
            return jnp.sum(per_attribute), per_attribute

        (loss, per_attribute), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["theta"])
        updates, opt = tx.update(grads, state["opt"])
        metrics = {"loss": loss, **{f"loss/{a}": per_attribute[i] for i, a in enumerate(attributes)}}
        return {**state, "theta": optax.apply_updates(state["theta"], updates), "opt": opt}, metrics

    curve_alphas = jnp.asarray(settings.curve_alphas, jnp.float32)
    curve_normalize = "none" if settings.normalize == "none" else "sample"

    def curve(state):
        """[len(curve_alphas), A]: mean score of each attribute along its theta on the held-out latents
        (rescaled per sample unless normalize is 'none'), batch_size latents at a time."""
        key = jax.random.key(settings.eval_seed)
        latents = space.sample(key, settings.eval_samples, state["generator"])
        classes = draw_classes(jax.random.fold_in(key, 1), settings.eval_samples)
        classes = jnp.zeros(settings.eval_samples, jnp.int32) if classes is None else classes

        def per_latent(item):
            z, y = item
            copies = jnp.broadcast_to(z, curve_alphas.shape + z.shape)
            copy_classes = jnp.full(curve_alphas.shape, y) if settings.class_dependent else None
            return moved_scores(state, state["theta"], copies, copy_classes, curve_alphas, curve_normalize)

        return jnp.mean(jax.lax.map(per_latent, (latents, classes), batch_size=B), axis=0)

    def slopes(means):
        centred = curve_alphas - curve_alphas.mean()
        return centred @ (means - means.mean(axis=0)) / jnp.sum(centred ** 2)

    def evaluate(state, key):
        means = curve(state)
        return {f"slope/{a}": s for a, s in zip(attributes, slopes(means))}

    curve_jit = jax.jit(curve)

    def directions_of(train_state) -> Directions:
        """The directions of a train state `{"step", "state"}` (see the module docstring)."""
        state = train_state["state"]
        means = np.asarray(curve_jit(state), np.float64)
        slope = np.asarray(slopes(jnp.asarray(means)), np.float64)
        theta = np.asarray(state["theta"], np.float64).reshape(A * C, D)  # attribute-major rows
        names = [f"{a}@{c}" for a in attributes for c in range(C)] if settings.class_dependent else attributes
        norms = np.linalg.norm(theta, axis=1)
        if not np.all(norms > 0):
            raise ValueError(f"GANalyze: theta of {[a for a, n in zip(names, norms) if not n > 0]} is zero "
                             f"(init='zeros' and no step taken?)")
        settings_out = {**settings.to_dict(), "scorer": list(scorer.names), "directions": names,
                        "theta_norms": norms.tolist(), "step": int(train_state["step"]),
                        "curve": {a: means[:, i].tolist() for i, a in enumerate(attributes)}, "slopes": slope.tolist(),
                        "monotone": [bool(np.all(np.diff(means[:, i]) > 0)) for i in range(A)]}
        if settings.class_dependent:
            settings_out["classes"] = list(range(C)) * A
        return Directions(theta / norms[:, None], np.repeat(slope, C), space.spec,
                          "ganalyze", settings_out, layer_mask(space, "all", A * C))

    def export(state, workdir: Path, step: int):
        directions_of({"step": step, "state": state}).save(Path(workdir) / DIRECTIONS_FILE)

    return Task(init=init, step=step, evaluate=evaluate, export=export, result=directions_of)


def ganalyze(source, scorer: Scorer, config: GANalyzeConfig | dict | None = None, key=None, progress: bool = True,
             workdir=None, **overrides) -> Directions:
    """One GANalyze direction per attribute of `scorer` (a differentiable assessor) on a LatentSpace or
    a generator (its `z` space, as the reference), trained on the harness; attribute order.

    Scores are the slopes of the held-out score-vs-alpha curves (`settings["curve"]`). `key` seeds the
    run (default `jax.random.key(0)`); with a `workdir` the run checkpoints there and a second call
    resumes. The harness draws its own progress bar; `progress` is kept for the common signature.
    """
    settings = configure(GANalyzeConfig, config, overrides)
    space = as_space(source, "z")
    return train_directions(__name__, lambda space, settings: build_task(space, scorer, settings), space, settings,
                            key, workdir)
