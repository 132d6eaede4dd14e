"""One training harness for every learned method: a method supplies a `Task`, `train` does the rest."""

from latentjax.train.task import Task
from latentjax.train.trainer import load_task, train

__all__ = ["Task", "load_task", "train"]
