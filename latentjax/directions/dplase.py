"""DP-LaSE (Li et al., ACM MM 2021): density-preserving latent space exploration, on the harness.

Two stages in one checkpointed, resumable, sharded run (guanyuelee/DP-LaSE). First, K directions D
are learned so that walking a latent along each one (`latentjax.walks.density_preserving`) changes
the features strongly and differently from the other directions (see `build_task`). Then, by
default (`subspace="per_direction"`, the reference's), one self-expressive matrix per direction is
trained in the last `subspace_steps` of the run's `steps` on the channels of `subspace_layer`
(`latentjax.directions.subspace`) and clustered into channel groups. The `DPLaSEConfig` defaults
are the PGGAN reference's; the BigGAN and StyleGAN2 recipes are options set by `configs/dplase.py`.
Giving each direction one group (`channel_group="largest_change"`) is this module's heuristic (the
reference shows every group for a person to pick). `directions_of(train_state)` gives the unit rows
of D ordered by their share of the weighted feature change.
Details: docs/methods.md#latentjaxdirectionsdplase
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax import walks
from latentjax.config import ConfigMixin, configure
from latentjax.directions import subspace
from latentjax.directions.base import Directions
from latentjax.directions.learned import DIRECTIONS_FILE, task_from_config, train_directions
from latentjax.directions.voynov import ortho_matrix
from latentjax.latent import LatentSpace, as_space
from latentjax.sharding import DATA_AXIS, shard_batch
from latentjax.train.task import Task

HIGHEST = jax.lax.Precision.HIGHEST
SUBSPACES_FILE = "subspaces.npz"
EPS = 1e-16  # under the square roots of the cosine's norms (the reference's eps)
SCORE_SEED = 0  # latents and steps of the evaluation set behind the export's scores
SUBSPACE_RESOLUTION = 16  # the reference's s_layer 5: PGGAN's first 16x16 map
CHOICES = {"features": ("layer", "styles"), "parametrization": ("gram_schmidt", "expm"),
           "subspace": ("per_direction", "shared"), "clustering": subspace.CLUSTERINGS,
           "channel_group": ("largest_change", "none")}


@dataclasses.dataclass(frozen=True)
class DPLaSEConfig(ConfigMixin):
    # --- stage 1: the traverse -------------------------------------------------------------------
    k: int = 20  # number of directions
    layer: str | None = None  # feature map the traverse compares (G.layer_names); None: `default_layer(G)`
    features: Literal["layer", "styles"] = "layer"  # "styles": the styles of `style_layers` (StyleGAN2 ref.)
    style_layers: tuple[str, ...] | None = None  # "block.layer" names of the space's affine layers; None: all
    traverse_scale: float = 10.0  # t = traverse_scale * U(-1, 1)
    untruncated: bool = False  # latents from the prior without its truncation box, walked without it
    parametrization: Literal["gram_schmidt", "expm"] = "gram_schmidt"
    reorthogonalize: bool = False  # Gram-Schmidt on D's parameters after every step (StyleGAN2 ref.)
    weighted: bool = True  # P weighs each direction by a sorted |N(0, 1)| (PGGAN ref.)
    lr: float = 1e-4  # Adam on the directions
    weight_negative: float = 0.001  # N
    weight_orthogonal: float = 1.0  # O
    # --- stage 2: the subspaces ------------------------------------------------------------------
    subspace: Literal["per_direction", "shared"] = "per_direction"
    subspace_layer: str | None = None  # None: `default_subspace_layer`
    subspace_steps: int = 5000  # the last steps of the run, which train S; 0: no subspace stage
    subspace_batch_size: int = 4  # per direction and step ("per_direction")
    subspace_scale: float | None = None  # α = subspace_scale * U(-1, 1) ("per_direction"); None: traverse_scale
    subspace_chunk: int = 0  # directions whose S train in one pass (a divisor of k; 0: all k)
    subspace_lr: float = 1e-4  # Adam on S
    subspace_init: float = 1e-4  # S's initial entries
    weight_sparse: float = 0.1  # |S|^2
    num_groups: int = 6  # channel groups (the reference's n_subspaces)
    clustering: Literal["reference", "njw"] = "reference"  # `subspace.channel_groups` method
    threshold: float = 0.2  # the reference's thrC ρ (its --alpha)
    subspace_dim: int = 12  # the reference's post_proC d
    power: float = 3.0  # the reference's post_proC power
    channel_group: Literal["largest_change", "none"] = "largest_change"  # our direction -> group heuristic
    score_samples: int = 32  # latents of the evaluation set that scores the directions at export
    steps: int = 55_000  # every step: 50K of D, then 5K of S (per direction)
    batch_size: int = 16  # D's batch

    def __post_init__(self):
        name = "DPLaSEConfig"
        for field in ("k", "num_groups", "score_samples", "steps", "batch_size", "subspace_batch_size",
                      "subspace_dim"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{name}.{field} must be >= 1, got {getattr(self, field)}")
        for field in ("subspace_steps", "subspace_chunk"):
            if getattr(self, field) < 0:
                raise ValueError(f"{name}.{field} must be >= 0, got {getattr(self, field)}")
        for field in ("traverse_scale", "lr", "subspace_lr", "threshold", "power"):
            if not getattr(self, field) > 0:
                raise ValueError(f"{name}.{field} must be positive, got {getattr(self, field)}")
        if self.subspace_scale is not None and not self.subspace_scale > 0:
            raise ValueError(f"{name}.subspace_scale must be positive or None (= traverse_scale), "
                             f"got {self.subspace_scale}")
        for field, allowed in CHOICES.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"{name}.{field} must be one of {list(allowed)}, got {getattr(self, field)!r}")
        if self.subspace_steps > self.steps:
            raise ValueError(f"{name}.subspace_steps={self.subspace_steps} exceeds steps={self.steps}: steps counts the "
                             f"whole run, both stages (e.g. steps=2000, subspace_steps=200; subspace_steps=0: no "
                             f"subspace stage)")
        if self.subspace == "per_direction" and 0 < self.subspace_steps == self.steps:
            raise ValueError(f"{name}.subspace_steps={self.subspace_steps} must be less than steps={self.steps} with "
                             f"subspace='per_direction': the directions train for steps - subspace_steps steps first")
        if self.style_layers is not None and self.features != "styles":
            raise ValueError(f"{name}.style_layers is only used with features='styles', got features="
                             f"{self.features!r}")
        if self.layer is not None and self.features == "styles":
            raise ValueError(f"{name}.layer names the traverse's feature map; with features='styles' the traverse "
                             f"compares styles: leave layer unset (got {self.layer!r})")
        if self.reorthogonalize and self.parametrization != "gram_schmidt":
            raise ValueError(f"{name}.reorthogonalize needs parametrization='gram_schmidt' (expm is orthogonal "
                             f"already), got {self.parametrization!r}")


# --- the method --------------------------------------------------------------------------------
def default_layer(generator) -> str:
    """The generator's `default_feature_layer`: BigGAN `gen_z`, the first layer's 4x4 map (the
    reference's `--layer 1`); PGGAN and StyleGAN2 the block output at 32x32 (PGGAN's `--layer 8`
    at 256 and 1024 px), or at half the image size in generators below 64 px."""
    return generator.default_feature_layer


def default_subspace_layer(space: LatentSpace, fallback: str) -> str:
    """The first feature map of 16x16 in the generator's compute order (the reference's `s_layer` 5:
    for PGGAN the 16x16 block's first conv, `b16.conv0`), or `fallback` where there is none."""
    G = space.generator
    shapes = jax.eval_shape(lambda p, key: space.features(p, space.sample(key, 1, p), list(G.layer_names)),
                            G.params, jax.random.key(0))
    return next((name for name in G.layer_names if name in shapes and len(shapes[name].shape) == 4
                 and shapes[name].shape[1:3] == (SUBSPACE_RESOLUTION, SUBSPACE_RESOLUTION)), fallback)


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


def direction_matrix(parameters, k: int, parametrization: str = "gram_schmidt"):
    """D [k, dim] from the trained parameters: their unit rows (`gram_schmidt`: parameters [k, dim]),
    or the first k rows of expm((A - Aᵀ) / 2) (`expm`: A [dim, dim]), orthonormal."""
    if parametrization == "expm":
        return ortho_matrix(0.5 * parameters)[:k]
    return unit_rows(parameters)


def style_columns(space: LatentSpace, names) -> np.ndarray:
    """Indices into the styles `space.styles` concatenates of the affine layers `names` ("block.layer",
    in the space's `affine_layers`; None: all), in synthesis order."""
    if not hasattr(space, "affine_layers") or space.name == "s":
        raise ValueError(f"DPLaSEConfig.features='styles' needs a style-based generator's 'z', 'w' or 'w+' space, "
                         f"got the {space.name!r} space of a {getattr(space.generator, 'family', '?')} generator")
    known = [f"{block}.{layer}" for block, layer, _ in space.affine_layers]
    unknown = [name for name in (names or ()) if name not in known]
    if unknown:
        raise ValueError(f"DPLaSEConfig.style_layers {unknown} are not affine layers of this generator; expected "
                         f"names from {known}")
    offsets = np.cumsum((0,) + tuple(space.style_sizes))
    chosen = [i for i, name in enumerate(known) if names is None or name in names]
    return np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in chosen])


def latent_sampler(space: LatentSpace, untruncated: bool = False):
    """(sample(key, params, n) -> latents [n, *shape], the space the walks use). `untruncated`: a
    truncated prior (BigGAN's box) without its bound: latents unwhiten N(0, I) (at truncation 1,
    z ~ N(0, I) as the BigGAN reference draws), and walks ignore the box; else `space.sample` and `space`."""
    prior = space.prior
    if not (untruncated and prior.bound is not None):
        return (lambda key, params, n: space.sample(key, n, params)), space
    prior = dataclasses.replace(prior, bound=None)
    sample = lambda key, params, n: prior.unwhiten(jax.random.normal(key, (n,) + tuple(space.shape), jnp.float32))
    return sample, types.SimpleNamespace(prior=prior, embed=space.embed)


def linear_shifts(space: LatentSpace, sample, key, params, D, batch: int, scale: float):
    """The subspace stage's latents [K * batch] (direction-major): for each row d of D [K, dim], `batch`
    prior samples z0 (`sample(k_z, params, K * batch)` with k_z, k_α = split(key)) moved linearly,
    z0 + α d with α = scale * U(-1, 1) (`maximum_subspace.py`: z0 + d * alpha, t_scale 10)."""
    k_z, k_a = jax.random.split(key)
    n = D.shape[0] * batch
    alpha = scale * jax.random.uniform(k_a, (n,), minval=-1.0, maxval=1.0)
    owner = jnp.repeat(jnp.arange(D.shape[0]), batch)
    return jax.vmap(lambda z, d, a: walks.linear(space, z, d, a))(sample(k_z, params, n), D[owner], alpha)


def _split_over_data(x):
    """`shard_batch(x)` where its leading axis divides over the "data" devices (else left as it is)."""
    mesh = jax.sharding.get_abstract_mesh()
    ways = mesh.shape[DATA_AXIS] if DATA_AXIS in mesh.axis_names else 1
    return shard_batch(x) if x.shape[0] % ways == 0 else x


def build_task(space: LatentSpace, settings: DPLaSEConfig) -> Task:
    """The DP-LaSE task on `space`; `settings.steps` sets the stages' schedule.

    A traverse step: latents z [B] from the prior; each sample gets two random directions k1, k2 and
    one t = traverse_scale * U(-1, 1); f, f_1, f_2 are the features of z and of its walks along d_k1
    and d_k2 by t (at `layer` [B, H, W, C], or the chosen styles as [B, 1, S, 1]: one "channel");

        P = mean_b ( w_k1 mean_{hw,c} (f_1 - f)^2 + w_k2 mean_{hw,c} (f_2 - f)^2 )
        N = mean over samples with k1 != k2 and over channels c of cos^2(f_1 - f, f_2 - f), the
            cosine taken per channel over the positions hw
        O = mean((D Dᵀ - I)^2)
        loss = -P + weight_negative * N + weight_orthogonal * O

    with w = sorted |N(0, 1)| (ascending in k, drawn once; all 1 unless `weighted`) and D
    `direction_matrix` of the parameters. With `gram_schmidt`, as in the PGGAN reference, the
    parameters start as Gram-Schmidt-orthogonalised normal rows (not normalised: their norms, about
    sqrt(dim), scale how fast Adam turns them). Subspace steps: see the module doc. The metrics of
    the stage that is not running are logged as 0.
    """
    G = space.generator
    styles = settings.features == "styles"
    layer = None if styles else settings.layer or default_layer(G)
    if layer is not None and layer not in G.layer_names:
        raise ValueError(f"DPLaSEConfig.layer {layer!r} is not a layer of this generator; expected one of "
                         f"{list(G.layer_names)}")
    k, dim, batch_size = settings.k, space.direction_dim, settings.batch_size
    if k > dim:
        raise ValueError(f"DPLaSEConfig.k={k} exceeds the {dim} dimensions of the {space.name!r} space")
    columns = style_columns(space, settings.style_layers) if styles else None
    stage = settings.subspace_steps > 0
    per_direction = stage and settings.subspace == "per_direction"
    s_layer = None
    if stage:
        s_layer = settings.subspace_layer or default_subspace_layer(space, layer or default_layer(G))
        if s_layer not in G.layer_names:
            raise ValueError(f"DPLaSEConfig.subspace_layer {s_layer!r} is not a layer of this generator; expected "
                             f"one of {list(G.layer_names)}")
    _ = space.prior  # fit StyleGAN2's w Gaussian now (it is cached), not inside a traced step

    def observe(params, z, sub: bool):
        """(traverse features [N, H, W, C] or [N, 1, S, 1], features at the subspace layer or None): one pass."""
        names = list(dict.fromkeys(([layer] if layer else []) + ([s_layer] if sub else [])))
        maps = space.features(params, z, names) if names else {}
        f = space.styles(params, space.to_ws(params, z))[:, columns][:, None, :, None] if styles else maps[layer]
        return f, (maps[s_layer] if sub else None)

    latent = jax.eval_shape(lambda p, key: space.sample(key, 1, p), G.params, jax.random.key(0))
    shape = jax.eval_shape(lambda p, z: observe(p, z, False)[0], G.params, latent).shape
    if len(shape) != 4:
        raise ValueError(f"DPLaSEConfig.layer {layer!r} must be a feature map [N, H, W, C], got {shape}")
    num_channels = None
    if stage:
        s_shape = jax.eval_shape(lambda p, z: space.features(p, z, [s_layer])[s_layer], G.params, latent).shape
        if len(s_shape) != 4:
            raise ValueError(f"DPLaSEConfig.subspace_layer {s_layer!r} must be a feature map [N, H, W, C], "
                             f"got {s_shape}")
        num_channels = s_shape[-1]
        if settings.num_groups > num_channels:
            raise ValueError(f"DPLaSEConfig.num_groups={settings.num_groups} exceeds the {num_channels} channels "
                             f"of {s_layer!r}")
    chunk = settings.subspace_chunk or k
    if per_direction and k % chunk:
        raise ValueError(f"DPLaSEConfig.subspace_chunk={settings.subspace_chunk} must divide k={k}")

    sample, walk_space = latent_sampler(space, settings.untruncated)
    expm = settings.parametrization == "expm"
    matrix = lambda parameters: direction_matrix(parameters, k, settings.parametrization)
    tx, s_tx = optax.adam(settings.lr), optax.adam(settings.subspace_lr)
    s_start = settings.steps - settings.subspace_steps  # first step (0-based) that trains S
    s_batch, s_scale = settings.subspace_batch_size, settings.subspace_scale or settings.traverse_scale
    s_terms = ("subspace", "subspace_feature", "subspace_data", "subspace_sparse")

    # --- stage 1 ---------------------------------------------------------------------------------
    def draw(key, params, n):
        """Latents [n] from the prior, steps t [n], two direction indices per sample; split over "data"."""
        k_z, k_t, k_1, k_2 = jax.random.split(key, 4)
        t = settings.traverse_scale * jax.random.uniform(k_t, (n,), minval=-1.0, maxval=1.0)
        return shard_batch((sample(k_z, params, n), t, jax.random.randint(k_1, (n,), 0, k),
                            jax.random.randint(k_2, (n,), 0, k)))

    def loss_fn(parameters, weights, params, z, t, labels, labels2, sub=False):
        D = matrix(parameters)
        n = z.shape[0]
        walked = walks.density_preserving_batch(walk_space, z, D[labels], t)
        walked2 = walks.density_preserving_batch(walk_space, z, D[labels2], t)
        # one pass over [z, z_1, z_2] interleaved per sample, so that every device keeps its rows
        stacked = jnp.stack([z, walked, walked2], axis=1).reshape((3 * n,) + z.shape[1:])
        f, g = observe(params, stacked, sub)
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
        terms = {"loss": loss, "positive": positive, "negative": negative, "orthogonal": orthogonal}
        walked_features = None if g is None else jax.lax.stop_gradient(g.reshape((n, 3) + g.shape[1:])[:, 1])
        return loss, (terms, walked, walked_features)

    def traverse_step(state, key, sub=False):
        params = state["generator"]
        z, t, labels, labels2 = draw(key, params, batch_size)
        (_, (terms, walked, g)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["directions"], state["weights"], params, z, t, labels, labels2, sub)
        updates, opt = tx.update(grads, state["opt"], state["directions"])
        parameters = optax.apply_updates(state["directions"], updates)
        if settings.reorthogonalize:
            parameters = gram_schmidt(parameters)
        return {**state, "directions": parameters, "opt": opt}, terms, (walked, g)

    # --- stage 2 ---------------------------------------------------------------------------------
    def post(params, z):
        """The generator after the subspace layer, for the latents z (whose later inputs it keeps)."""
        return lambda x: space.decode(params, z, hooks={s_layer: lambda _: x})

    subspace_latents = lambda key, params, D: linear_shifts(space, sample, key, params, D, s_batch, s_scale)

    def subspace_objective(S, params, z):
        """(sum over directions of their losses, terms [n_dirs]) for S [n_dirs, C, C] and latents z
        [n_dirs * s_batch] (direction-major)."""
        z = _split_over_data(z)
        f = space.features(params, z, [s_layer])[s_layer]
        return subspace.self_expressive_losses(S, f.reshape((S.shape[0], s_batch) + f.shape[1:]), post(params, z),
                                               settings.weight_sparse)

    def over_chunks(fn, S, z):
        """fn(S_c, z_c) -> (value, terms [chunk]) over chunks of `chunk` directions; values stacked."""
        if chunk == k:
            return fn(S, z)
        value, terms = jax.lax.map(lambda args: fn(*args), (S.reshape((k // chunk, chunk) + S.shape[1:]),
                                                             z.reshape((k // chunk, chunk * s_batch) + z.shape[1:])))
        return value, jax.tree.map(lambda x: x.reshape(k), terms)

    def subspace_step(state, key):
        params = state["generator"]
        z = subspace_latents(key, params, matrix(state["directions"]))
        grad_and_terms = lambda S_c, z_c: jax.grad(subspace_objective, has_aux=True)(S_c, params, z_c)
        grads, terms = over_chunks(grad_and_terms, state["subspace"], z)
        updates, s_opt = s_tx.update(grads.reshape(state["subspace"].shape), state["subspace_opt"], state["subspace"])
        return {**state, "subspace": optax.apply_updates(state["subspace"], updates), "subspace_opt": s_opt}, terms

    def summary(terms):
        """Per-direction terms -> their means, and the weighted loss."""
        mean = {name: jnp.mean(value) for name, value in terms.items()}
        loss = mean["feature"] + mean["data"] + settings.weight_sparse * mean["sparse"]
        return {"subspace": loss, **{f"subspace_{name}": value for name, value in mean.items()}}

    zeros = lambda names: {name: jnp.zeros((), jnp.float32) for name in names}

    # --- the task --------------------------------------------------------------------------------
    def init(key):
        k_dirs, k_weights = jax.random.split(key)
        parameters = (jax.random.normal(k_dirs, (dim, dim), jnp.float32) if expm
                      else gram_schmidt(jax.random.normal(k_dirs, (k, dim), jnp.float32)))
        weights = (jnp.sort(jnp.abs(jax.random.normal(k_weights, (k,), jnp.float32))) if settings.weighted
                   else jnp.ones((k,), jnp.float32))
        state = {"generator": G.params, "directions": parameters, "weights": weights,
                 "opt": tx.init(jnp.zeros_like(parameters))}
        if stage:
            S = subspace.init_self_expressive(num_channels, settings.subspace_init)
            S = jnp.broadcast_to(S, (k,) + S.shape) if per_direction else S
            state.update(subspace=S, subspace_opt=s_tx.init(jnp.zeros_like(S)))
        return state

    def step(state, batch, key, step):
        if not stage:
            return traverse_step(state, key)[:2]
        if per_direction:
            # D's update is computed every step and kept in its stage only, S's runs in a conditional:
            # XLA:CPU runs convolution gradients inside a conditional several times slower (measured
            # 5-8x on a DP-LaSE traverse step), and D's step is the cheaper one of the two.
            new, d_metrics, _ = traverse_step(state, key)
            trains = step < s_start
            keep = lambda x, y: jnp.where(trains, x, y)
            new = {name: jax.tree.map(keep, new[name], state[name]) for name in ("directions", "opt")}

            def subspaces(S, s_opt):
                new, terms = subspace_step({**state, "subspace": S, "subspace_opt": s_opt}, key)
                return new["subspace"], new["subspace_opt"], summary(terms)

            S, s_opt, s_metrics = jax.lax.cond(trains, lambda *a: (*a, zeros(s_terms)), subspaces,
                                               state["subspace"], state["subspace_opt"])
            return ({**state, **new, "subspace": S, "subspace_opt": s_opt},
                    {**jax.tree.map(lambda v: jnp.where(trains, v, 0.0), d_metrics), **s_metrics})
        state, terms, (walked, g) = traverse_step(state, key, sub=True)

        def train_shared(S, s_opt):
            grads, s_terms_ = jax.grad(lambda S: subspace.self_expressive_loss(
                S, g, post(state["generator"], walked), settings.weight_sparse), has_aux=True)(S)
            updates, s_opt = s_tx.update(grads, s_opt, S)
            return optax.apply_updates(S, updates), s_opt, summary({n: v[None] for n, v in s_terms_.items()})

        args = state["subspace"], state["subspace_opt"]
        S, s_opt, s_metrics = train_shared(*args) if s_start == 0 else jax.lax.cond(
            step >= s_start, train_shared, lambda *a: (*a, zeros(s_terms)), *args)
        return {**state, "subspace": S, "subspace_opt": s_opt}, {**terms, **s_metrics}

    def evaluate(state, key):
        params = state["generator"]
        k_d, k_s = jax.random.split(key)
        z, t, labels, labels2 = draw(k_d, params, batch_size)
        _, (metrics, walked, g) = loss_fn(state["directions"], state["weights"], params, z, t, labels, labels2,
                                          stage and not per_direction)
        if per_direction:
            z = subspace_latents(k_s, params, matrix(state["directions"]))
            metrics.update(summary(over_chunks(lambda S_c, z_c: subspace_objective(S_c, params, z_c),
                                               state["subspace"], z)[1]))
        elif stage:
            _, terms = subspace.self_expressive_loss(state["subspace"], g, post(params, walked), settings.weight_sparse)
            metrics.update(summary({n: v[None] for n, v in terms.items()}))
        return metrics

    @jax.jit
    def feature_change(params, D):
        """On the evaluation set, along each row of D [K, dim] (the density-preserving walk): per channel,
        the mean over samples and positions of (f_t - f)^2 of the traverse features [K, C] and of the
        subspace layer's [K, C_s], and the variance over samples of the latter [C_s] (averaged over positions)."""
        z = sample(jax.random.key(SCORE_SEED), params, settings.score_samples)
        t = settings.traverse_scale * jax.random.uniform(jax.random.key(SCORE_SEED + 1), (settings.score_samples,),
                                                         minval=-1.0, maxval=1.0)
        f, g = observe(params, z, stage)
        change = lambda a, b: None if a is None else jnp.mean(jnp.square(a - b), axis=(0, 1, 2))

        def along(d):
            f_t, g_t = observe(params, walks.density_preserving_batch(walk_space, z, d, t), stage)
            return change(f_t, f), change(g_t, g)

        changes, sub_changes = jax.lax.map(along, D)
        return changes, sub_changes, None if g is None else jnp.mean(jnp.var(g, axis=0), axis=(0, 1))

    def directions_and_groups(train_state) -> tuple[Directions, np.ndarray | None]:
        """The directions of a train state `{"step", "state"}` and the channel groups (None before S trains)."""
        state = train_state["state"]
        D = np.asarray(unit_rows(matrix(jnp.asarray(state["directions"]))))
        change, sub_change, variance = (None if x is None else np.asarray(x, np.float64)
                                        for x in feature_change(state["generator"], D))
        scores = np.asarray(state["weights"], np.float64) * change.mean(axis=1)
        order = np.argsort(-scores, kind="stable")
        channels = groups = None
        if stage and int(train_state["step"]) > s_start:  # S has trained
            group = lambda S: subspace.channel_groups(S, settings.num_groups, method=settings.clustering,
                                                      threshold=settings.threshold,
                                                      subspace_dim=settings.subspace_dim, power=settings.power)
            S = np.asarray(state["subspace"])
            groups = np.stack([group(S_k) for S_k in S]) if per_direction else group(S)
            if settings.channel_group == "largest_change":
                channels = largest_change_group(groups if per_direction else np.broadcast_to(groups, (k,) + groups.shape),
                                                sub_change / np.maximum(variance, 1e-12))[order]
            groups = groups[order] if per_direction else groups
        resolved = {"layer": s_layer if stage else layer, "traverse_layer": layer, "subspace_layer": s_layer}
        directions = Directions(D[order], scores[order], space.spec, "dplase", {**settings.to_dict(), **resolved},
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
                np.savez(f, groups=groups, layer=np.array(s_layer), subspace=np.array(settings.subspace))
        directions.save(Path(workdir) / DIRECTIONS_FILE)

    return Task(init=init, step=step, evaluate=evaluate, export=export, result=directions_of)


def largest_change_group(groups, relative_change) -> np.ndarray:
    """Our direction -> group heuristic: for groups [K, G, C] (each direction's partition) and each
    channel's change along each direction relative to its spread [K, C], the group [K, C] whose
    channels change most on average (empty groups never chosen)."""
    sizes = groups.sum(axis=2)
    mean = np.einsum("kc,kgc->kg", relative_change, groups) / np.maximum(sizes, 1)
    pick = np.argmax(np.where(sizes > 0, mean, -np.inf), axis=1)
    return groups[np.arange(len(groups)), pick]


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
