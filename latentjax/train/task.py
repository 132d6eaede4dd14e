"""`Task`: what a learned method hands to the training harness.

A method supplies pure functions over its own train-state pytree; the harness (`train.trainer`)
owns everything else: mesh, shardings, `jit`, step keys, checkpoints, metrics, progress, resume.
A method module exposes `make_task(config) -> Task`; `config.task` names that module.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
from jax.sharding import PartitionSpec as P

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Task:
    """Pure functions of a train state; all but `export` run under `jax.jit` on the mesh.

    init(key) -> state                               fresh train state (params, optimiser states, ...)
    step(state, batch, key, step) -> (state, metrics) one update; metrics: dict of scalar arrays
    batch(key) -> batch                              the global batch for one step (None: no data);
                                                     the harness splits its leading axis over "data"
    sample(state) -> images [N, H, W, C] in [-1, 1]  for the periodic image grid (fixed inputs)
    evaluate(state, key) -> metrics                  periodic evaluation, logged with an "eval/" prefix
    export(state, workdir, step)                     host-side export (numpy state), on every process
    result(train_state) -> value                     what a train state {"step", "state"} (host arrays)
                                                     stands for, e.g. a learned method's Directions; pure,
                                                     for callers of `train` (not called by the harness)
    sharding_rules                                   (regex, PartitionSpec) on state paths; default replicate
    """

    init: Callable[[jax.Array], PyTree]
    step: Callable[[PyTree, PyTree, jax.Array, jax.Array], tuple[PyTree, dict]]
    batch: Callable[[jax.Array], PyTree] | None = None
    sample: Callable[[PyTree], jax.Array] | None = None
    evaluate: Callable[[PyTree, jax.Array], dict] | None = None
    export: Callable[[PyTree, Path, int], None] | None = None
    result: Callable[[PyTree], Any] | None = None
    sharding_rules: Sequence[tuple[str, P]] = ()
