"""The compiled per-target program that every inversion method runs.

A method subclasses `Program` with the optimisation of one target: `init_one(params, aux, target,
key, inputs) -> state`, `step_one(params, aux, state, step) -> (state, loss)` and
`finish_one(params, aux, state) -> outputs`. `Program` vmaps them over targets and jits them with
the targets split over the "data" axis of a mesh (params and `aux`, e.g. an LPIPS model,
replicated); `run` feeds padded batches of one compiled shape through `sharding.batched_map`.
Every target has its own key, so its result does not depend on the batch it runs in. The
checks every method applies to its arguments (`check_targets`, `target_keys`, `program_mesh`)
live here too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from latentjax.metrics.image import check_float_images
from latentjax.progress import Progress
from latentjax.sharding import DATA_AXIS, batched_map, data_mesh


def program_mesh(mesh: Mesh | None = None) -> Mesh:
    """`mesh` (default: `sharding.data_mesh()`, every device), which must have the "data" axis targets split over."""
    mesh = data_mesh() if mesh is None else mesh
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh needs a {DATA_AXIS!r} axis to shard targets over, got axes {mesh.axis_names}")
    return mesh


def check_targets(G, targets) -> np.ndarray:
    """Targets as float32 [N, H, W, C] in [-1, 1] at the generator's size, or a ValueError."""
    shape = tuple(np.shape(targets))
    expected = (G.img_resolution, G.img_resolution, G.img_channels)
    if len(shape) != 4 or shape[1:] != expected or shape[0] == 0:
        raise ValueError(f"targets must be images [N, {expected[0]}, {expected[1]}, {expected[2]}] (NHWC, this "
                         f"generator's resolution and channels, N >= 1), got shape {shape}")
    check_float_images(targets if hasattr(targets, "dtype") else np.asarray(targets), "targets")
    return np.asarray(targets, np.float32)


def target_keys(key, n: int):
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


def descend(tx: optax.GradientTransformation, objective, state: dict):
    """One `tx` step of `state['variables']` (optimiser state `state['opt']`) down `objective(variables)`.

    Returns (the new state, the objective before the step)."""
    loss, grads = jax.value_and_grad(objective)(state["variables"])
    updates, opt = tx.update(grads, state["opt"], state["variables"])
    return {**state, "variables": optax.apply_updates(state["variables"], updates), "opt": opt}, loss


class Program:
    """The jitted, vmapped and sharded `init` / `step` / `finish` of one per-target optimisation on one mesh.

    `params` (e.g. the generator's) are placed on the mesh once, replicated, and passed to every
    function first; subclasses implement `init_one`, `step_one` and `finish_one` for one target.
    """

    def __init__(self, params, mesh: Mesh | None = None):
        self.mesh = program_mesh(mesh)
        self.shards = self.mesh.shape[DATA_AXIS]
        batch = NamedSharding(self.mesh, P(DATA_AXIS))
        self.replicated = replicated = NamedSharding(self.mesh, P())
        self.params = jax.device_put(params, replicated)
        self.init = jax.jit(jax.vmap(self.init_one, in_axes=(None, None, 0, 0, 0)),
                            in_shardings=(replicated, replicated, batch, batch, batch), out_shardings=batch)
        self.step = jax.jit(jax.vmap(self.step_one, in_axes=(None, None, 0, None)),
                            in_shardings=(replicated, replicated, batch, replicated), out_shardings=batch,
                            donate_argnums=(2,))
        self.finish = jax.jit(jax.vmap(self.finish_one, in_axes=(None, None, 0)),
                              in_shardings=(replicated, replicated, batch), out_shardings=batch)

    def replicate(self, tree):
        """`tree` (e.g. an LPIPS model) placed on every device of the mesh."""
        return jax.device_put(tree, self.replicated)

    # --- one target (subclasses) -----------------------------------------------------------------
    def init_one(self, params, aux, target, key, inputs) -> dict:
        raise NotImplementedError

    def step_one(self, params, aux, state, step):
        raise NotImplementedError

    def finish_one(self, params, aux, state) -> dict:
        raise NotImplementedError

    # --- many targets ----------------------------------------------------------------------------
    def run(self, aux, targets, keys, inputs: dict, steps: int, batch_size: int | None = None, *,
            progress: bool = True, desc: str = "invert") -> dict:
        """`finish(steps x step(init(...)))` for targets [N, ...] with keys [N] and per-target `inputs`
        ({name: [N, ...]}), `batch_size` targets at a time; the outputs as numpy arrays [N, ...].

        Every batch is padded to `batch_size` (rounded up to a multiple of the mesh's "data" axis),
        so a job compiles one step whatever the number of targets.
        """
        n = targets.shape[0]
        batch_size = batch_size or n
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        padded = -(-batch_size // self.shards) * self.shards  # the batch `batched_map` runs
        counts = iter([min(padded, n - lo) for lo in range(0, n, padded)])
        impl = jax.random.key_impl(keys)
        report_every = max(1, steps // 20)

        def one_batch(batch):
            count = next(counts)  # the real targets in this batch; the rest repeat the last one
            keys = jax.random.wrap_key_data(batch["key"], impl=impl)
            state = self.init(self.params, aux, batch["target"], keys, batch["inputs"])
            for step in range(steps):
                state, loss = self.step(self.params, aux, state, step)
                report = step % report_every == 0 or step == steps - 1
                bar.update(1, **({"loss": float(jnp.mean(loss[:count]))} if report else {}))
            return self.finish(self.params, aux, state)

        per_target = {"target": targets, "key": np.asarray(jax.random.key_data(keys)), "inputs": inputs}
        with Progress(steps * -(-n // padded), desc=desc, unit="step", enabled=None if progress else False) as bar:
            return batched_map(one_batch, per_target, batch_size, self.mesh)
