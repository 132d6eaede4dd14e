"""Reading checkpoints without torch or code execution (`torch_pickle`), source state dicts as key maps
read them (`state_dict`), and latentjax's own directory format (`native`)."""

from latentjax.io.torch_pickle import PersistentObject, load

__all__ = ["PersistentObject", "load"]
