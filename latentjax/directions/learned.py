"""Learned direction methods on the training harness (`latentjax.train`): one contract, one runner.

A learned method module (`latentjax.directions.voynov`, `latentjax.directions.dplase`) provides a
frozen-dataclass `Config` (its fields, `steps` and `batch_size` included) and
`build_task(space, settings) -> Task` whose train state holds the frozen generator's params under
"generator", whose `result` is the method's pure `directions_of(train_state) -> Directions`, and
whose `export` saves that to `DIRECTIONS_FILE` at checkpoints of `latentjax train` runs
(`make_task(config) = task_from_config(config, Config, build_task)`).

`train_config` is the one train-config schema: `settings` is the method's `Config` (the same block
as in `latentjax discover` configs) and the harness's `total_steps` / `batch_size` follow its
`steps` / `batch_size`. `train_directions` runs a method from code and returns its directions.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections

from latentjax.config import configure
from latentjax.directions.base import Directions
from latentjax.latent import LatentSpace, space_from_spec
from latentjax.load import load_generator
from latentjax.train.task import Task
from latentjax.train.trainer import harness_config, to_host, train

DIRECTIONS_FILE = "directions.npz"


def train_config(task_module: str, settings, **harness) -> ml_collections.ConfigDict:
    """The train config of a learned method: `settings` (its `Config` dataclass) as `config.settings`,
    every harness field at its default, then `harness`. `config.total_steps` and `config.batch_size`
    refer to `settings.steps` / `settings.batch_size`: setting either spelling sets both."""
    config = harness_config(task_module, settings=settings.to_dict())
    config.total_steps = config.settings.get_ref("steps")
    config.batch_size = config.settings.get_ref("batch_size")
    config.update(harness)
    return config


def task_from_config(config, settings_cls, build_task: Callable[[LatentSpace, object], Task]) -> Task:
    """`make_task` of a learned method: load `config.generator`, build `config.space`, run `build_task`
    with `config.settings`."""
    if not config.get("generator"):
        raise ValueError("config.generator is empty: pass --config.generator=PATH (or builtin:shapes)")
    settings = configure(settings_cls, config.settings)
    if (int(config.total_steps), int(config.batch_size)) != (settings.steps, settings.batch_size):
        raise ValueError(f"config.total_steps / batch_size ({config.total_steps}, {config.batch_size}) differ from "
                         f"config.settings.steps / batch_size ({settings.steps}, {settings.batch_size}); build the "
                         f"config with latentjax.directions.learned.train_config, which ties them")
    return build_task(space_from_spec(load_generator(config.generator), config.space), settings)


def train_directions(task_module: str, build_task, space: LatentSpace, settings, key=None,
                     workdir=None) -> Directions:
    """Train a learned method on `space` with the harness and return `directions_of(final state)`.

    `key` seeds the run (default: `jax.random.key(0)`). With a `workdir`, checkpoints go there and a
    second call (with the same key) resumes; without one, nothing is written.
    """
    task = dataclasses.replace(build_task(space, settings), export=None)  # the value is returned, not saved
    config = train_config(task_module, settings, log_every=100, ckpt_every=0, keep_ckpts=1)
    return task.result(to_host(train(config, workdir, task=task, key=key)))
