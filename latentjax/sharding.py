"""Mesh and shardings: a "data" mesh from the config, and `(regex, PartitionSpec)` rules on state paths.

Sharding is declared, not hand-coded: every leaf of the train state gets the spec of the first rule
whose regex matches its path ("g/params/synthesis/b4/conv1/weight"); leaves that no rule matches
are replicated. The batch is split over the "data" axis.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
Rules = Sequence[tuple[str, P]]


def make_mesh(axes: Sequence[tuple[str, int]], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over `devices` (default: all) from `[(name, size), ...]`; one size may be -1 (the rest).

    Axes are `Auto`: shardings are hints to the compiler, and model code stays sharding-agnostic.
    A mesh smaller than the device list uses its first devices (e.g. `[("data", 1)]` for one device).
    """
    devices = list(jax.devices() if devices is None else devices)
    names = tuple(str(name) for name, _ in axes)
    sizes = [int(size) for _, size in axes]
    if DATA_AXIS not in names:
        raise ValueError(f"config.mesh must have a {DATA_AXIS!r} axis, got axes {names}")
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"config.mesh sizes must be positive, with at most one -1; got {list(axes)}")
    if -1 in sizes:
        rest = math.prod(s for s in sizes if s != -1)
        if len(devices) % rest:
            raise ValueError(f"config.mesh {list(axes)}: {len(devices)} devices are not divisible by {rest}")
        sizes[sizes.index(-1)] = len(devices) // rest
    count = math.prod(sizes)
    if count > len(devices):
        raise ValueError(f"config.mesh {list(axes)} needs {count} devices, only {len(devices)} are available")
    return jax.make_mesh(tuple(sizes), names, axis_types=(AxisType.Auto,) * len(names), devices=devices[:count])


def path_name(path) -> str:
    """A pytree key path as 'a/b/0/mu' (dict keys, attribute names and sequence indices joined by '/')."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def spec_for(name: str, ndim: int, rules: Rules) -> P:
    """The PartitionSpec of the first rule whose regex matches `name` in full; P() if none does."""
    for pattern, spec in rules:
        if re.fullmatch(pattern, name):
            if len(spec) > ndim:
                raise ValueError(f"sharding rule ({pattern!r}, {spec}) has {len(spec)} axes but {name!r} "
                                 f"has only {ndim} dimensions")
            return spec
    return P()


def tree_shardings(tree: Any, mesh: Mesh, rules: Rules = ()) -> Any:
    """A NamedSharding for every leaf of `tree` (arrays or ShapeDtypeStructs) from the rules."""
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: NamedSharding(mesh, spec_for(path_name(path), len(leaf.shape), rules)), tree)


def shard_batch(x):
    """Inside a step: constrain `x` (or a pytree) to be split along its first axis over "data".

    Use it on batches a step samples itself (latents, noise) so that every device works on its part.
    It acts under a mesh context with a "data" axis (`train` traces steps in one) and returns `x`
    unchanged otherwise, so a task's functions also run outside the harness.
    """
    if DATA_AXIS not in jax.sharding.get_abstract_mesh().axis_names:
        return x
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, P(DATA_AXIS)), x)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis "data" mesh over `devices` (default: all): the mesh of every batched job outside training."""
    return make_mesh(((DATA_AXIS, -1),), devices)


def data_sharding(batch_size: int, mesh: Mesh | None = None) -> tuple[int, NamedSharding]:
    """`batch_size` rounded up to a multiple of the mesh's "data" axis (default mesh: every device),
    and the sharding that splits a batch over that axis: how every batched job places its batches."""
    mesh = data_mesh() if mesh is None else mesh
    ways = mesh.shape[DATA_AXIS]
    return -(-int(batch_size) // ways) * ways, NamedSharding(mesh, P(DATA_AXIS))


def batched_map(fn: Callable, xs, batch_size: int, mesh: Mesh | None = None, *, progress=None):
    """`fn(batch)` over the leading axis of `xs` (an array or pytree) in batches of `batch_size`, concatenated.

    Each batch is padded to `batch_size` (rounded up to a multiple of the "data" axis) so that `fn`
    compiles once, split over that axis, and trimmed after; `fn` is jitted by the caller. `progress` (a `Progress`) is advanced per batch.
    """
    batch_size, sharding = data_sharding(batch_size, mesh)
    leaves = jax.tree.leaves(xs)
    total = leaves[0].shape[0] if leaves else 0
    outputs = []
    for lo in range(0, total, batch_size):
        batch = jax.tree.map(lambda x: np.asarray(x[lo:lo + batch_size]), xs)
        count = jax.tree.leaves(batch)[0].shape[0]
        padded = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], batch_size - count, axis=0)]), batch)
        out = fn(jax.device_put(padded, sharding))
        outputs.append(jax.tree.map(lambda y: np.asarray(y[:count]), out))
        if progress is not None:
            progress.update(count)
    return jax.tree.map(lambda *ys: np.concatenate(ys), *outputs)
