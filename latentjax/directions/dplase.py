"""DP-LaSE (Li et al., ACM MM 2021): density-preserving latent space exploration, on the harness.

K directions are learned so that walking a latent along each one changes the features at one
generator layer strongly (P) and differently from the other directions (N), while they stay close
to orthonormal (O); the walk keeps the prior density (`latentjax.walks.density_preserving`). A step follows
guanyuelee/DP-LaSE `maximum_traverse_for_PGGAN.py` (see `build_task`). During the last
`subspace_steps` steps the same run trains a self-expressive matrix S on the layer's channels
(`latentjax.directions.subspace`): one S for all directions, trained alongside (the reference trains
one per direction afterwards), so the method is one checkpointed, resumable, sharded run.

`directions_of(train_state)` (the task's `result`): the unit rows of D ordered by their weighted
feature change on a fixed evaluation set (their share of P), `settings["layer"]`, and once S has
trained each direction's channel group in `Directions.channels`; `latentjax train` runs also write
the whole partition to `WORKDIR/subspaces.npz` (`groups` [num_groups, C], largest first; `layer`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax import walks
from latentjax.config import ConfigMixin, configure
from latentjax.directions import subspace
from latentjax.directions.base import Directions
from latentjax.directions.learned import DIRECTIONS_FILE, task_from_config, train_directions
from latentjax.latent import LatentSpace, as_space
from latentjax.sharding import shard_batch
from latentjax.train.task import Task

HIGHEST = jax.lax.Precision.HIGHEST
SUBSPACES_FILE = "subspaces.npz"
EPS = 1e-16  # under the square roots of the cosine's norms (the reference's eps)
SCORE_SEED = 0  # latents and steps of the evaluation set behind the export's scores


@dataclasses.dataclass(frozen=True)
class DPLaSEConfig(ConfigMixin):
    k: int = 20  # number of directions
    layer: str | None = None  # feature layer (G.layer_names); None: `default_layer(G)`
    traverse_scale: float = 10.0  # t = traverse_scale * U(-1, 1)
    lr: float = 1e-4  # Adam on the directions
    weight_negative: float = 0.001  # N
    weight_orthogonal: float = 1.0  # O
    num_groups: int = 6  # channel groups (the reference's n_subspaces)
    subspace_steps: int = 5000  # the last steps that also train S; 0: no subspace stage
    subspace_lr: float = 1e-4  # Adam on S
    subspace_init: float = 1e-4  # S's initial off-diagonal entries
    weight_sparse: float = 0.1  # |S|^2
    score_samples: int = 32  # latents of the evaluation set that scores the directions at export
    steps: int = 50_000
    batch_size: int = 16

    def __post_init__(self):
        for name in ("k", "num_groups", "score_samples", "steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DPLaSEConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.subspace_steps < 0:
            raise ValueError(f"DPLaSEConfig.subspace_steps must be >= 0, got {self.subspace_steps}")
        for name in ("traverse_scale", "lr", "subspace_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DPLaSEConfig.{name} must be positive, got {getattr(self, name)}")


# --- walks -------------------------------------------------------------------------------------
# --- the method --------------------------------------------------------------------------------
def default_layer(generator) -> str:
    """The generator's `default_feature_layer`: BigGAN `gen_z`, the first layer's 4x4 map (the
    reference's `--layer 1`); PGGAN and StyleGAN2 the block output at 32x32 (PGGAN's `--layer 8`
    at 256 and 1024 px), or at half the image size in generators below 64 px."""
    return generator.default_feature_layer


def unit_rows(x):
    return x / jnp.sqrt(EPS + jnp.sum(jnp.square(x), axis=-1, keepdims=True))


def gram_schmidt(x):
    """Rows made orthogonal in order (each minus its projections on the rows before), not normalised."""
    rows = []
    for row in x:
        for prev in rows:
            row = row - jnp.dot(row, prev, precision=HIGHEST) / (EPS + jnp.dot(prev, prev, precision=HIGHEST)) * prev
        rows.append(row)
    return jnp.stack(rows)


def build_task(space: LatentSpace, settings: DPLaSEConfig) -> Task:
    """The DP-LaSE task on `space`; `settings.steps` sets the subspace schedule.

    One step: latents z [B] from the prior; each sample gets two random directions k1, k2 and one
    t = traverse_scale * U(-1, 1); f, f_1, f_2 are the features at `layer` of z and of its walks
    along d_k1 and d_k2 by t;

        P = mean_b ( w_k1 mean_{hw,c} (f_1 - f)^2 + w_k2 mean_{hw,c} (f_2 - f)^2 )
        N = mean over samples with k1 != k2 and over channels c of cos^2(f_1 - f, f_2 - f), the
            cosine taken per channel over the positions hw
        O = mean((D Dᵀ - I)^2)
        loss = -P + weight_negative * N + weight_orthogonal * O

    with w = sorted |N(0, 1)| (ascending in k, drawn once) and D the parameters with unit rows. As in
    the reference, the parameters start as Gram-Schmidt-orthogonalised normal rows (not normalised:
    their norms, about sqrt(dim), scale how fast Adam turns them). S trains on the features of the
    walked latents (f_1), with its own Adam. Channel groups cluster |S| + |S|ᵀ into `num_groups`;
    each direction gets the group whose channels its walk moves most relative to their spread (mean
    over the group's channels of E(f_t - f)^2 / Var f on the evaluation set).
    """
    G = space.generator
    layer = settings.layer or default_layer(G)
    if layer not in G.layer_names:
        raise ValueError(f"DPLaSEConfig.layer {layer!r} is not a layer of this generator; expected one of "
                         f"{list(G.layer_names)}")
    k, dim, batch_size = settings.k, space.direction_dim, settings.batch_size
    if k > dim:
        raise ValueError(f"DPLaSEConfig.k={k} exceeds the {dim} dimensions of the {space.name!r} space")
    _ = space.prior  # fit StyleGAN2's w Gaussian now (it is cached), not inside a traced step
    features = lambda params, latent: space.features(params, latent, [layer])[layer]
    shape = jax.eval_shape(lambda p, key: features(p, space.sample(key, 1, p)), G.params, jax.random.key(0)).shape
    if len(shape) != 4:
        raise ValueError(f"DPLaSEConfig.layer {layer!r} must be a feature map [N, H, W, C], got {shape}")
    num_channels = shape[-1]
    if settings.subspace_steps and settings.num_groups > num_channels:
        raise ValueError(f"DPLaSEConfig.num_groups={settings.num_groups} exceeds the {num_channels} channels of "
                         f"{layer!r}")
    tx, s_tx = optax.adam(settings.lr), optax.adam(settings.subspace_lr)
    s_start = max(settings.steps - settings.subspace_steps, 0)  # first step (0-based) that trains S

    def draw(key, params, n):
        """Latents [n] from the prior, steps t [n], two direction indices per sample; split over "data"."""
        k_z, k_t, k_1, k_2 = jax.random.split(key, 4)
        t = settings.traverse_scale * jax.random.uniform(k_t, (n,), minval=-1.0, maxval=1.0)
        return shard_batch((space.sample(k_z, n, params), t, jax.random.randint(k_1, (n,), 0, k),
                            jax.random.randint(k_2, (n,), 0, k)))

    def loss_fn(directions, weights, params, z, t, labels, labels2):
        D = unit_rows(directions)
        n = z.shape[0]
        walked = walks.density_preserving_batch(space, z, D[labels], t)
        walked2 = walks.density_preserving_batch(space, z, D[labels2], t)
        # one pass over [z, z_1, z_2] interleaved per sample, so that every device keeps its rows
        stacked = jnp.stack([z, walked, walked2], axis=1).reshape((3 * n,) + z.shape[1:])
        f = features(params, stacked)
        f, f_1, f_2 = jnp.moveaxis(f.reshape((n, 3) + f.shape[1:]), 1, 0)
        diff, diff2 = f_1 - f, f_2 - f
        positive = jnp.mean(weights[labels] * jnp.mean(jnp.square(diff), axis=(1, 2, 3))
                            + weights[labels2] * jnp.mean(jnp.square(diff2), axis=(1, 2, 3)))
        unit = lambda x: x / jnp.sqrt(EPS + jnp.sum(jnp.square(x), axis=(1, 2), keepdims=True))
        cosine = jnp.sum(unit(diff) * unit(diff2), axis=(1, 2))  # [n, C]
        different = (labels != labels2).astype(jnp.float32)
        negative = (jnp.sum(jnp.square(cosine) * different[:, None]) / jnp.maximum(jnp.sum(different), 1.0)
                    / cosine.shape[1])
        orthogonal = jnp.mean(jnp.square(jnp.matmul(D, D.T, precision=HIGHEST) - jnp.eye(k)))
        loss = -positive + settings.weight_negative * negative + settings.weight_orthogonal * orthogonal
        terms = {"positive": positive, "negative": negative, "orthogonal": orthogonal}
        return loss, (terms, walked, jax.lax.stop_gradient(f_1))

    def subspace_loss(S, params, latent, feats):
        post = lambda x: space.decode(params, latent, hooks={layer: lambda _: x})
        return subspace.self_expressive_loss(S, feats, post, settings.weight_sparse)

    def init(key):
        k_dirs, k_weights = jax.random.split(key)
        return {"generator": G.params,
                "directions": gram_schmidt(jax.random.normal(k_dirs, (k, dim), jnp.float32)),
                "weights": jnp.sort(jnp.abs(jax.random.normal(k_weights, (k,), jnp.float32))),
                "opt": tx.init(jnp.zeros((k, dim), jnp.float32)),
                "subspace": subspace.init_self_expressive(num_channels, settings.subspace_init),
                "subspace_opt": s_tx.init(jnp.zeros((num_channels, num_channels), jnp.float32))}

    def step(state, batch, key, step):
        params = state["generator"]
        z, t, labels, labels2 = draw(key, params, batch_size)
        (loss, (terms, walked, f_1)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["directions"], state["weights"], params, z, t, labels, labels2)
        updates, opt = tx.update(grads, state["opt"], state["directions"])
        state = {**state, "directions": optax.apply_updates(state["directions"], updates), "opt": opt}

        def train_subspace(S, s_opt):
            grads = jax.grad(lambda S: subspace_loss(S, params, walked, f_1)[0])(S)
            updates, s_opt = s_tx.update(grads, s_opt, S)
            return optax.apply_updates(S, updates), s_opt

        S, s_opt = state["subspace"], state["subspace_opt"]
        if settings.subspace_steps and s_start == 0:
            S, s_opt = train_subspace(S, s_opt)
        elif settings.subspace_steps:
            S, s_opt = jax.lax.cond(step >= s_start, train_subspace, lambda *args: args, S, s_opt)
        return {**state, "subspace": S, "subspace_opt": s_opt}, {"loss": loss, **terms}

    def evaluate(state, key):
        params = state["generator"]
        z, t, labels, labels2 = draw(key, params, batch_size)
        loss, (terms, walked, f_1) = loss_fn(state["directions"], state["weights"], params, z, t, labels, labels2)
        metrics = {"loss": loss, **terms}
        if settings.subspace_steps:
            s_loss, s_terms = subspace_loss(state["subspace"], params, walked, f_1)
            metrics.update(subspace=s_loss, **{f"subspace_{name}": v for name, v in s_terms.items()})
        return metrics

    @jax.jit
    def feature_change(params, D):
        """On the evaluation set: per channel, the mean over samples and positions of (f_t - f)^2 along
        each row of D [K, C], and the variance of f over samples [C] (averaged over positions)."""
        z = space.sample(jax.random.key(SCORE_SEED), settings.score_samples, params)
        t = settings.traverse_scale * jax.random.uniform(jax.random.key(SCORE_SEED + 1), (settings.score_samples,),
                                                         minval=-1.0, maxval=1.0)
        f = features(params, z)
        along = lambda d: jnp.mean(jnp.square(features(params, walks.density_preserving_batch(space, z, d, t)) - f),
                                   axis=(0, 1, 2))
        return jax.lax.map(along, D), jnp.mean(jnp.var(f, axis=0), axis=(0, 1))

    def directions_and_groups(train_state) -> tuple[Directions, np.ndarray | None]:
        """The directions of a train state `{"step", "state"}` and the channel groups (None before S trains)."""
        state = train_state["state"]
        D = np.asarray(unit_rows(jnp.asarray(state["directions"])))
        change, variance = (np.asarray(x, np.float64) for x in feature_change(state["generator"], D))
        scores = np.asarray(state["weights"], np.float64) * change.mean(axis=1)
        order = np.argsort(-scores, kind="stable")
        channels = groups = None
        if settings.subspace_steps and int(train_state["step"]) > s_start:  # S has trained
            groups = subspace.channel_groups(state["subspace"], settings.num_groups)
            relative = change / np.maximum(variance, 1e-12)  # each channel's change in units of its spread
            channels = groups[np.argmax(relative @ groups.T / groups.sum(1), axis=1)][order]
        directions = Directions(D[order], scores[order], space.spec, "dplase", {**settings.to_dict(), "layer": layer},
                                channels=channels)
        return directions, groups

    def directions_of(train_state) -> Directions:
        return directions_and_groups(train_state)[0]

    def export(state, workdir: Path, step: int):
        if jax.process_index() != 0:  # every process holds the same state; one writes
            return
        directions, groups = directions_and_groups({"step": step, "state": state})
        if groups is not None:
            with open(Path(workdir) / SUBSPACES_FILE, "wb") as f:
                np.savez(f, groups=groups, layer=np.array(layer))
        directions.save(Path(workdir) / DIRECTIONS_FILE)

    return Task(init=init, step=step, evaluate=evaluate, export=export, result=directions_of)


def make_task(config) -> Task:
    """`latentjax train` entry: see `configs/dplase.py`."""
    return task_from_config(config, DPLaSEConfig, build_task)


def dplase(source, config: DPLaSEConfig | dict | None = None, key=None, progress: bool = True, workdir=None,
           **overrides) -> Directions:
    """Train DP-LaSE directions on a generator (in its `z` space, as the reference) or a LatentSpace.

    `key` seeds the run (default `jax.random.key(0)`); with a `workdir` the run checkpoints there and
    resumes. `progress` is kept for the common method signature (the harness shows its own progress).
    """
    settings = configure(DPLaSEConfig, config, overrides)
    return train_directions(__name__, build_task, as_space(source, "z"), settings, key, workdir)
