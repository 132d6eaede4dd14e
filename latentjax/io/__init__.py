"""Reading checkpoints without torch or code execution, and latentjax's native format."""

from latentjax.io.load import from_checkpoint, load_generator
from latentjax.io.native import load_native, save_generator
from latentjax.io.torch_pickle import CheckpointError, PersistentObject, UnsafeGlobalError

__all__ = ["CheckpointError", "PersistentObject", "UnsafeGlobalError", "from_checkpoint", "load_generator",
           "load_native", "save_generator"]
