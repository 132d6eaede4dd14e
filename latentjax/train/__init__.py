"""One training harness for every learned method: a method supplies a `Task`, `train` does the rest."""

from latentjax.train.config import parse_arg
from latentjax.train.sharding import make_mesh, shard_batch, tree_shardings
from latentjax.train.task import Task
from latentjax.train.trainer import load_task, train

__all__ = ["Task", "load_task", "make_mesh", "parse_arg", "shard_batch", "train", "tree_shardings"]
