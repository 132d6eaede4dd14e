"""Voynov & Babenko (ICML 2020): directions learned so that a reconstructor can tell them apart.

A deformator A maps a shift eps along basis vector k of R^K to a latent edit; a reconstructor R sees
G(z) and G(z + A(eps e_k)) and predicts k (cross-entropy) and eps (L1); both train together on the
harness, the generator frozen, as in GANLatentDiscovery (`trainer.py`, `latent_deformator.py`).
The deformator kinds are listed in `Deformator`, the method in README.md ("Learned directions");
deviations from the reference are named in `VoynovConfig`'s comments. `directions_of(train_state)`
gives the normalised edits A(shift_scale e_k) - A(0), ordered by per-direction RCA, and keeps the
trained edit scale in `settings`, so `trained_shift` reproduces the trained edit. StyleGAN2 shifts
live in `w`.
Details: docs/methods.md#latentjaxdirectionsvoynov
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax.config import ConfigMixin, configure
from latentjax.directions.base import Directions
from latentjax.directions.learned import DIRECTIONS_FILE, task_from_config, train_directions
from latentjax.latent import LatentSpace, latent_space, layer_mask
from latentjax.nn.reconstructor import TorchDense, batch_norm, make_reconstructor, resolve, torch_default_bias
from latentjax.sharding import shard_batch
from latentjax.train.task import Task

DEFORMATORS = ("fc", "linear", "ortho", "proj", "id", "random")
FIXED_DEFORMATORS = ("id", "random")  # not trained
SHIFT_DISTRIBUTIONS = ("uniform", "normal")


@dataclasses.dataclass(frozen=True)
class VoynovConfig(ConfigMixin):
    k: int = 0  # directions K; 0 = the space's direction_dim (the reference's default)
    deformator: str = "ortho"  # one of DEFORMATORS
    # linear/proj: weight 0.1 * randn, not identity; ortho: log-matrix randn, not 0.001 randn. True is the reference
    # run script's default; False starts at the coordinate directions (the author recommends it for BigBiGAN, issue #11)
    random_init: bool = True
    bias: bool = True  # linear / proj deformators have a bias (the reference's default)
    fc_inner_dim: int = 1024  # width of the `fc` deformator
    shift_scale: float = 6.0  # eps = shift_scale * U(-1, 1) (or N(0, 1))
    min_shift: float = 0.5  # |eps| is raised to at least this (sign kept)
    shift_distribution: str = "uniform"  # 'uniform' or 'normal'
    label_weight: float = 1.0  # weight of the cross-entropy on k
    shift_weight: float = 0.25  # weight of the L1 on eps
    deformator_lr: float = 1e-4  # Adam
    reconstructor_lr: float = 1e-4  # Adam
    # 'resnet18' (the reference's default), 'lenet' (its MNIST choice) or 'auto' (LeNet up to 32 px, ResNet-18 above)
    reconstructor: str = "resnet18"
    reconstructor_size: int = 0  # images resized to this before the reconstructor (0: as generated)
    eval_per_direction: int = 8  # RCA samples per direction (evaluate and export)
    eval_seed: int = 0  # key of the export's RCA samples and of the sample grid's latent
    grid_size: int = 7  # sample grid: directions (rows) x shifts over [-3, 3] * shift_scale (0: no grid)
    steps: int = 100_000
    batch_size: int = 32


# --- shifts --------------------------------------------------------------------------------------
def sample_shifts(key, n: int, scale: float, min_shift: float, distribution: str = "uniform"):
    """Shift magnitudes [n]: scale * U(-1, 1) (or N(0, 1)), with 0 < |eps| < min_shift set to +-min_shift."""
    if distribution not in SHIFT_DISTRIBUTIONS:
        raise ValueError(f"shift_distribution must be one of {SHIFT_DISTRIBUTIONS}, got {distribution!r}")
    if distribution == "uniform":
        eps = jax.random.uniform(key, (n,), jnp.float32, -1.0, 1.0)
    else:
        eps = jax.random.normal(key, (n,), jnp.float32)
    eps = scale * eps
    eps = jnp.where((eps > 0) & (eps < min_shift), min_shift, eps)
    return jnp.where((eps < 0) & (eps > -min_shift), -min_shift, eps)


def make_shifts(key, n: int, k: int, scale: float, min_shift: float, distribution: str = "uniform"):
    """(indices [n] uniform in [0, k), shifts [n]) as the reference's `make_shifts`; the deformator's
    input is `one_hot(indices, k) * shifts[:, None]`."""
    k_index, k_shift = jax.random.split(key)
    indices = jax.random.randint(k_index, (n,), 0, k)
    return indices, sample_shifts(k_shift, n, scale, min_shift, distribution)


# --- deformator ----------------------------------------------------------------------------------
def _pad(x, dim: int):
    """Zero-pad the last axis (K) to `dim` (D >= K), as the reference pads to the shift dimension."""
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, dim - x.shape[-1])])


def ortho_matrix(log_mat_half):
    """expm(L - Lᵀ): orthogonal. Matrix products in full float32 (TF32 / bf16 defaults would spoil it)."""
    with jax.default_matmul_precision("float32"):
        return jax.scipy.linalg.expm(log_mat_half - log_mat_half.T)


def _identity_padded(key, shape, dtype=jnp.float32):
    return jnp.eye(*shape, dtype=dtype)


def _scaled_normal(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return scale * jax.random.normal(key, shape, dtype)

    return init


class Deformator(nn.Module):
    """One-hot shifts [N, K] -> latent edits [N, D] (`dim`, 1 <= K <= D), as the reference's kinds:

    `linear` (D x K weight, identity-padded, or 0.1 randn with `random_init`; with a bias), `proj`
    (linear, output rescaled to the input's norm), `ortho` (the first K columns of expm(L - Lᵀ), L
    D x D from 0.001 randn, or randn with `random_init`), `fc` (three residual Dense-BN-ELU layers of
    `inner_dim`, plus the input), `id` (the coordinate axes), `random` (a fixed random orthonormal
    D x K matrix). The reference's `ortho` and `fc` need K = D; here inputs are zero-padded to D,
    which is the same for K = D. The bias of `linear` / `proj` is an offset common to every shift.

    Parameters are in PyTorch's (out, in) layout: `weight` [D, K] (linear / proj),
    `log_mat_half` [D, D] (ortho); `random` keeps its fixed matrix [D, K] in the "constants"
    collection; `fc` has batch norm (`batch_stats`), in train mode with `train=True`.
    """

    kind: str
    num_directions: int
    dim: int
    random_init: bool = False
    bias: bool = True
    inner_dim: int = 1024

    @nn.compact
    def __call__(self, x, train: bool = True):
        k, d = self.num_directions, self.dim
        if not 1 <= k <= d or x.shape[-1] != k:
            raise ValueError(f"a deformator maps K directions to D >= K latent dimensions; got K={k}, D={d} and "
                             f"shifts of shape {x.shape}")
        if self.kind == "id":
            return _pad(x, d)
        if self.kind in ("linear", "proj"):
            weight = self.param("weight", _scaled_normal(0.1) if self.random_init else _identity_padded, (d, k))
            out = x @ weight.T
            if self.bias:
                out = out + self.param("bias", torch_default_bias(k), (d,))
            if self.kind == "proj":
                norm = jnp.linalg.norm(out, axis=-1, keepdims=True)
                out = out * (jnp.linalg.norm(x, axis=-1, keepdims=True) / jnp.maximum(norm, 1e-30))
            return out
        if self.kind == "ortho":
            log_mat = self.param("log_mat_half", _scaled_normal(1.0 if self.random_init else 0.001), (d, d))
            return _pad(x, d) @ ortho_matrix(log_mat).T
        if self.kind == "random":
            matrix = self.variable("constants", "matrix",
                                   lambda: nn.initializers.orthogonal()(self.make_rng("params"), (d, k)))
            return x @ matrix.value.T
        if self.kind == "fc":
            x1 = TorchDense(self.inner_dim)(x)
            h = nn.elu(batch_norm(train)(x1))
            x2 = TorchDense(self.inner_dim)(h)
            h = nn.elu(batch_norm(train)(x2 + x1))
            x3 = TorchDense(self.inner_dim)(h)
            h = nn.elu(batch_norm(train)(x3 + x2 + x1))
            return TorchDense(d)(h) + _pad(x, d)
        raise ValueError(f"deformator must be one of {DEFORMATORS}, got {self.kind!r}")


def make_deformator(settings: VoynovConfig, dim: int) -> Deformator:
    return Deformator(settings.deformator, num_directions(settings, dim), dim, settings.random_init, settings.bias,
                      settings.fc_inner_dim)


def num_directions(settings: VoynovConfig, dim: int) -> int:
    """K: `settings.k`, or the latent dimension when it is 0."""
    return settings.k or dim


def trained_edits(deformator: Deformator, variables, shift_scale: float):
    """(edits [K, D], offset [D]): each basis vector's eval-mode edit A(shift_scale e_k) - A(0), and
    A(0), the offset every shift adds (the bias of `linear` / `proj`, the constant part of `fc`)."""
    k = deformator.num_directions
    out = deformator.apply(variables, jnp.concatenate([shift_scale * jnp.eye(k), jnp.zeros((1, k))]), train=False)
    return out[:k] - out[k], out[k]


def trained_shift(directions: Directions, eps):
    """The latent edit [K, D] the trained deformator makes for shifts `eps` (scalar or [K]) along each
    exported direction: shift_offset + eps * shift_norm * vector (exact for the linear deformator kinds)."""
    if directions.method != "voynov" or "shift_norms" not in directions.settings:
        raise ValueError(f"trained_shift needs Voynov & Babenko directions with their trained scale "
                         f"(settings['shift_norms']), got method {directions.method!r}")
    norms = np.asarray(directions.settings["shift_norms"], np.float32)
    offset = np.asarray(directions.settings["shift_offset"], np.float32)
    eps = np.broadcast_to(np.asarray(eps, np.float32), norms.shape)
    return offset + (eps * norms)[:, None] * directions.vectors


# --- the task ------------------------------------------------------------------------------------
def _check(settings: VoynovConfig, space: LatentSpace) -> None:
    dim = space.direction_dim
    if settings.deformator not in DEFORMATORS:
        raise ValueError(f"deformator must be one of {DEFORMATORS}, got {settings.deformator!r}")
    if settings.shift_distribution not in SHIFT_DISTRIBUTIONS:
        raise ValueError(f"shift_distribution must be one of {SHIFT_DISTRIBUTIONS}, "
                         f"got {settings.shift_distribution!r}")
    if not 0 <= settings.k <= dim:
        raise ValueError(f"k must be in [0, {dim}] (0: all {dim} latent dimensions of {space!r}), got {settings.k}")
    for name in ("steps", "batch_size", "eval_per_direction", "fc_inner_dim"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(settings, name)}")
    if settings.shift_scale <= 0 or settings.min_shift < 0:
        raise ValueError(f"shift_scale must be > 0 and min_shift >= 0, got shift_scale={settings.shift_scale}, "
                         f"min_shift={settings.min_shift}")
    if settings.grid_size < 0:
        raise ValueError(f"grid_size must be >= 0, got {settings.grid_size}")


def build_task(space: LatentSpace, settings: VoynovConfig) -> Task:
    """The training task on `space` (see `latentjax.directions.learned` for the contract).

    State: "generator" (frozen params), "deformator" and "reconstructor" (flax variables: params,
    batch_stats, constants), "reconstructor_opt" and, for trained deformators, "deformator_opt".
    """
    _check(settings, space)
    G = space.generator
    dim = space.direction_dim
    K = num_directions(settings, dim)
    B = settings.batch_size
    deformator = make_deformator(settings, dim)
    trained = settings.deformator not in FIXED_DEFORMATORS
    image = jax.eval_shape(lambda: space.decode(G.params, space.sample(jax.random.key(0), B, G.params)))
    resolution = int(image.shape[1])
    reconstructor = make_reconstructor(settings.reconstructor, K, resolution, settings.reconstructor_size)
    d_tx, r_tx = optax.adam(settings.deformator_lr), optax.adam(settings.reconstructor_lr)
    shifts = lambda key, n: make_shifts(key, n, K, settings.shift_scale, settings.min_shift,
                                        settings.shift_distribution)

    def init(key):
        k_d, k_r = jax.random.split(key)
        d_vars = deformator.init(k_d, jnp.zeros((B, K)), train=False)
        x = jnp.zeros(image.shape, jnp.float32)
        r_vars = reconstructor.init(k_r, x, x, train=False)
        state = {"generator": G.params, "deformator": d_vars, "reconstructor": r_vars,
                 "reconstructor_opt": r_tx.init(r_vars["params"])}
        if trained:
            state["deformator_opt"] = d_tx.init(d_vars["params"])
        return state

    def edited(generator, d_vars, latent, indices, eps, train: bool):
        """Images of `latent` shifted by eps along direction `indices`, and the deformator's updates."""
        basis = jax.nn.one_hot(indices, K, dtype=jnp.float32) * eps[:, None]
        delta, d_updates = deformator.apply(d_vars, basis, train=train, mutable=["batch_stats"])
        return space.decode(generator, latent + space.embed(delta)), d_updates

    def step(state, batch, key, step):
        generator = state["generator"]
        k_z, k_shift = jax.random.split(key)
        latent = shard_batch(space.sample(k_z, B, generator))
        indices, eps = shard_batch(shifts(k_shift, B))
        images = space.decode(generator, latent)  # no gradient flows here: outside the loss

        def loss_fn(params):
            d_vars = {**state["deformator"], "params": params["deformator"]} if trained else state["deformator"]
            shifted, d_updates = edited(generator, d_vars, latent, indices, eps, train=True)
            (logits, predicted), r_updates = reconstructor.apply(
                {**state["reconstructor"], "params": params["reconstructor"]}, images, shifted, train=True,
                mutable=["batch_stats"])
            label_loss = settings.label_weight * jnp.mean(
                optax.softmax_cross_entropy_with_integer_labels(logits, indices))
            shift_loss = settings.shift_weight * jnp.mean(jnp.abs(predicted - eps))
            accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == indices)
            return label_loss + shift_loss, (d_updates, r_updates, label_loss, shift_loss, accuracy)

        params = {"reconstructor": state["reconstructor"]["params"]}
        if trained:
            params["deformator"] = state["deformator"]["params"]
        (loss, (d_updates, r_updates, label_loss, shift_loss, accuracy)), grads = \
            jax.value_and_grad(loss_fn, has_aux=True)(params)
        new = dict(state)
        updates, new["reconstructor_opt"] = r_tx.update(grads["reconstructor"], state["reconstructor_opt"])
        new["reconstructor"] = {**state["reconstructor"], **r_updates,
                                "params": optax.apply_updates(params["reconstructor"], updates)}
        new["deformator"] = {**state["deformator"], **d_updates}
        if trained:
            updates, new["deformator_opt"] = d_tx.update(grads["deformator"], state["deformator_opt"])
            new["deformator"]["params"] = optax.apply_updates(params["deformator"], updates)
        metrics = {"loss": loss, "label_loss": label_loss, "shift_loss": shift_loss, "accuracy": accuracy}
        return new, metrics

    num_chunks = math.ceil(K * settings.eval_per_direction / B)

    def rca(state, key):
        """RCA over num_chunks batches that cycle through the directions (eval-mode batch norm)."""
        generator = state["generator"]

        def chunk(i):
            k_z, k_shift = jax.random.split(jax.random.fold_in(key, i))
            latent = shard_batch(space.sample(k_z, B, generator))
            indices = shard_batch((i * B + jnp.arange(B)) % K)
            _, eps = shard_batch(shifts(k_shift, B))
            shifted, _ = edited(generator, state["deformator"], latent, indices, eps, train=False)
            logits, predicted = reconstructor.apply(state["reconstructor"], space.decode(generator, latent),
                                                    shifted, train=False)
            return jnp.argmax(logits, axis=-1) == indices, indices, jnp.abs(predicted - eps)

        correct, indices, errors = jax.lax.map(chunk, jnp.arange(num_chunks))
        correct, indices = correct.reshape(-1).astype(jnp.float32), indices.reshape(-1)
        per_direction = (jax.ops.segment_sum(correct, indices, K)
                         / jax.ops.segment_sum(jnp.ones_like(correct), indices, K))
        return jnp.mean(correct), per_direction, jnp.mean(errors)

    def evaluate(state, key):
        overall, per_direction, shift_l1 = rca(state, key)
        return {"rca": overall, "shift_l1": shift_l1, "rca_min": jnp.min(per_direction),
                **{f"rca_dir/{k}": per_direction[k] for k in range(K)}}

    rca_jit = jax.jit(rca)

    def directions_of(train_state) -> Directions:
        """The directions of a train state `{"step", "state"}` (see the module docstring)."""
        state = train_state["state"]
        overall, per_direction, _ = (np.asarray(x) for x in rca_jit(state, jax.random.key(settings.eval_seed)))
        edits, offset = (np.asarray(x, np.float64) for x in trained_edits(deformator, state["deformator"],
                                                                          settings.shift_scale))
        norms = np.linalg.norm(edits, axis=1)
        vectors = edits / norms[:, None]
        order = np.argsort(-per_direction, kind="stable")
        meta = {**settings.to_dict(), "num_directions": K, "reconstructor": resolve(
            settings.reconstructor, resolution, settings.reconstructor_size)[0], "rca": float(overall),
            "step": int(train_state["step"]), "deformator_index": order.tolist(),
            "shift_norms": (norms[order] / settings.shift_scale).tolist(), "shift_offset": offset.tolist()}
        return Directions(vectors[order], per_direction[order], space.spec, "voynov", meta,
                          layer_mask(space, "all", K))

    def export(state, workdir: Path, step: int):
        directions_of({"step": step, "state": state}).save(Path(workdir) / DIRECTIONS_FILE)

    def sample(state):
        """grid_size directions (rows) x grid_size shifts over [-3, 3] * shift_scale, one fixed latent."""
        n = settings.grid_size
        generator = state["generator"]
        latent = space.sample(jax.random.key(settings.eval_seed), 1, generator)
        indices = jnp.repeat(jnp.arange(n) % K, n)
        eps = jnp.tile(jnp.linspace(-3.0, 3.0, n) * settings.shift_scale, n)
        latents = jnp.broadcast_to(latent, (n * n,) + latent.shape[1:])
        return edited(generator, state["deformator"], latents, indices, eps, train=False)[0]

    return Task(init=init, step=step, evaluate=evaluate, export=export, result=directions_of,
                sample=sample if settings.grid_size else None)


def make_task(config) -> Task:
    """`latentjax train` entry point (see `configs/voynov.py`)."""
    return task_from_config(config, VoynovConfig, build_task)


def voynov(source, config: VoynovConfig | dict | None = None, key=None, progress: bool = True, workdir=None,
           **overrides) -> Directions:
    """Directions [K, D] of a generator (StyleGAN2: in `w`) or a LatentSpace, trained on the harness.

    `lj.directions.voynov(G, k=16, steps=2000)`: keyword overrides apply on top of `config`. `key` seeds
    the run (default `jax.random.key(0)`); with a `workdir`, checkpoints go there and a second call
    resumes. The harness draws its own progress bar; `progress` is kept for the common method signature.
    """
    settings = configure(VoynovConfig, config, overrides)
    space = source if isinstance(source, LatentSpace) else latent_space(source, "w" if source.style_based else None)
    return train_directions(__name__, build_task, space, settings, key, workdir)
