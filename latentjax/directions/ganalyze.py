"""GANalyze (Goetschalckx et al., ICCV 2019): a direction learned so that an assessor's score moves by alpha.

For each attribute a of a differentiable `Scorer` (the assessor), a vector theta_a is trained so that
`A(G(T(z, alpha))) = A(G(z)) + alpha`, minimising the squared error with alpha ~ U(-alpha_range,
alpha_range) drawn per sample, the generator and the assessor frozen, Adam (lr 2e-4, batch 4: the
PyTorch reference's `train_pytorch.py`). `T(z, alpha) = z + alpha theta`, then rescaled to |z|
(`normalize`): per sample by default, as the paper and the TensorFlow code do; 'batch' is the
PyTorch reference's norm over the whole batch tensor (a quirk, kept as an option); 'none' a plain
shift, for spaces that are not Gaussian (w, w+). theta starts at N(0, I) as in the PyTorch code
('zeros' is the TensorFlow code's start). Attributes train side by side on the same z and alpha,
each its own theta: independent problems in one program.

The evaluation the paper plots is the mean assessor score against alpha on held-out z
(`curve_alphas`: the released test's "bigger step" alphas, 0.1 apart, from the original z):
`directions_of` computes it on `eval_samples` fixed latents (rescaled per sample unless
`normalize` is 'none'), and `Directions.settings["curve"]`
holds it per attribute, with `monotone` and the slope (its least-squares line, 1 when alpha is met
exactly) as each direction's score. The unit vectors are theta / |theta|; `theta_norms` keeps the
trained lengths, so `transform(latent, space.embed(norm * vector), alpha, normalize)` is the
trained edit. Not built: the reference's class-dependent theta (`Linear(onehot(y))`).
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
    tx = optax.adam(settings.lr)

    def scores(state, latents):
        images = space.decode(state["generator"], latents)
        return scorer.score(state["scorer"], images)[:, columns]  # [N, A]

    def moved_scores(state, theta, latents, alpha, normalize=settings.normalize):
        """[N, A]: attribute a's score of T(z, alpha) along theta_a."""
        def one(theta_a, column):
            edited = transform(latents, space.embed(theta_a), alpha, normalize)
            return scores(state, edited)[:, column]
        return jax.vmap(one, out_axes=1)(theta, jnp.arange(A))

    def init(key):
        theta = (jax.random.normal(key, (A, D), jnp.float32) if settings.init == "normal"
                 else jnp.zeros((A, D), jnp.float32))
        return {"generator": G.params, "scorer": scorer.params, "theta": theta, "opt": tx.init(theta)}

    def step(state, batch, key, step):
        k_z, k_alpha = jax.random.split(key)
        latents = shard_batch(space.sample(k_z, B, state["generator"]))
        alpha = shard_batch(jax.random.uniform(k_alpha, (B,), jnp.float32, -settings.alpha_range,
                                               settings.alpha_range))
        target = scores(state, latents) + alpha[:, None]  # frozen networks: no gradient to theta here

        def loss_fn(theta):
            per_attribute = jnp.mean((moved_scores(state, theta, latents, alpha) - target) ** 2, axis=0)
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
        latents = space.sample(jax.random.key(settings.eval_seed), settings.eval_samples, state["generator"])

        def per_latent(z):
            copies = jnp.broadcast_to(z, curve_alphas.shape + z.shape)
            return moved_scores(state, state["theta"], copies, curve_alphas, curve_normalize)

        return jnp.mean(jax.lax.map(per_latent, latents, batch_size=B), axis=0)

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
        theta = np.asarray(state["theta"], np.float64)
        norms = np.linalg.norm(theta, axis=1)
        if not np.all(norms > 0):
            raise ValueError(f"GANalyze: theta of {[a for a, n in zip(attributes, norms) if not n > 0]} is zero "
                             f"(init='zeros' and no step taken?)")
        settings_out = {**settings.to_dict(), "scorer": list(scorer.names), "directions": attributes,
                        "theta_norms": norms.tolist(), "step": int(train_state["step"]),
                        "curve": {a: means[:, i].tolist() for i, a in enumerate(attributes)},
                        "monotone": [bool(np.all(np.diff(means[:, i]) > 0)) for i in range(A)]}
        return Directions(theta / norms[:, None], np.asarray(slopes(jnp.asarray(means))), space.spec, "ganalyze",
                          settings_out, layer_mask(space, "all", A))

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
