"""Learned direction methods on the training harness (`latentjax.train`): one contract, one runner.

A learned method module (`latentjax.directions.voynov`, `latentjax.directions.dplase`) provides

- a frozen-dataclass settings class (`ConfigMixin`) with the method's fields plus `steps` and
  `batch_size`;
- `build_task(space, settings) -> Task`: the train state holds the frozen generator's params under
  "generator" (the step returns them unchanged), and `export` writes the current directions to
  `DIRECTIONS_FILE` in the work dir;
- `make_task(config)` for `latentjax train`: `task_from_config(config, Settings, build_task)`.

A train config (`configs/voynov.py`, ...) has the harness fields, `generator` (a path or
`builtin:` name), `space` (a `latent_space` spec) and `settings` (the method's fields without
`steps` and `batch_size`, which are the harness's `total_steps` and `batch_size`). From code (and
in `latentjax discover`) `train_directions` runs the same task in a work dir (a temporary one by
default) and returns the `Directions`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import jax
import ml_collections
from ml_collections import config_dict

from latentjax.config import parse_arg
from latentjax.directions.base import Directions
from latentjax.latent import LatentSpace, space_from_spec
from latentjax.load import load_generator
from latentjax.train.task import Task
from latentjax.train.trainer import train

DIRECTIONS_FILE = "directions.npz"
HARNESS_FIELDS = ("steps", "batch_size")  # settings fields that the harness owns in a train config


def settings_from_config(config, settings_cls):
    """The method settings of a train config: `config.settings` plus the harness's steps and batch."""
    fields = dict(config.settings.to_dict())
    clash = sorted(set(fields) & set(HARNESS_FIELDS))
    if clash:
        raise ValueError(f"config.settings.{clash[0]}: set it as config.total_steps / config.batch_size instead")
    return settings_cls.from_dict({**fields, "steps": int(config.total_steps), "batch_size": int(config.batch_size)})


def task_from_config(config, settings_cls, build_task: Callable[[LatentSpace, object], Task]) -> Task:
    """`make_task` of a learned method: load `config.generator`, build `config.space`, run `build_task`."""
    if not config.get("generator"):
        raise ValueError("config.generator is empty: pass --config.generator=PATH (or builtin:shapes)")
    space = space_from_spec(load_generator(config.generator), config.space)
    return build_task(space, settings_from_config(config, settings_cls))


def train_config(task_module: str, settings, **harness) -> ml_collections.ConfigDict:
    """A harness config that runs `task_module` with `settings` (a settings dataclass) as given."""
    fields = settings.to_dict()
    config = ml_collections.ConfigDict({"task": task_module, "total_steps": fields.pop("steps"),
                                        "batch_size": fields.pop("batch_size"), "settings": fields,
                                        "log_every": 100, "ckpt_every": 0, "keep_ckpts": 1})
    config.update(harness)
    return config


def train_directions(task_module: str, build_task, space: LatentSpace, settings, key=None,
                     workdir=None) -> Directions:
    """Train a learned method on `space` with the harness and return its directions.

    The seed comes from `key` (default 0). With a `workdir`, checkpoints go there and a second call
    resumes; without one, the run uses a temporary directory.
    """
    seed = 0 if key is None else int(jax.random.randint(key, (), 0, 2 ** 31 - 1))
    config = train_config(task_module, settings, seed=seed)
    if workdir is not None:
        train(config, workdir, task=build_task(space, settings))
        return Directions.load(Path(workdir) / DIRECTIONS_FILE)
    with tempfile.TemporaryDirectory(prefix="latentjax-") as tmp:
        train(config, tmp, task=build_task(space, settings))
        return Directions.load(Path(tmp) / DIRECTIONS_FILE)


def model_config(config_file: str, task_module: str, arg, models: dict):
    """The shared head of a learned method's train config (`configs/voynov.py`, `configs/dplase.py`).

    `models` maps a variant word to (generator, space name, class_index); `arg` holds at most one
    such word (default: the first) and optionally `smoke`. Returns (config with task, seed,
    generator, space and mesh set; the chosen word; the parsed arg).
    """
    arg = parse_arg(arg, **{word: False for word in models})
    words = [word for word in models if arg[word]]
    if len(words) > 1:
        raise ValueError(f"{config_file}: pick one model of {list(models)}, got {words}")
    model = words[0] if words else next(iter(models))
    generator, space, class_index = models[model]
    config = ml_collections.ConfigDict()
    config.task = task_module
    config.seed = 0
    config.generator = generator
    config.space = ml_collections.ConfigDict({
        "name": space,
        "class_index": config_dict.placeholder(int) if class_index is None else class_index,
        "truncation_psi": config_dict.placeholder(float),
        "fit_samples": config_dict.placeholder(int),  # StyleGAN2 w / w+ only
    })
    config.mesh = (("data", -1),)  # all devices
    return config, model, arg
