"""State dicts: read from a torch file (`read_state_dict`), and as the key maps read them (`Source`):
each key used once, leftovers and mismatches reported."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.errors import CheckpointError, ConversionError
from latentjax.io.torch_pickle import load


def read_state_dict(path, key: str | None = None) -> dict[str, np.ndarray]:
    """{name: array} of a `torch.save` file (read through the allow-list reader, no torch): a state
    dict, or with `key` also a dict that holds one under that key (e.g. {'state_dict': ...,
    'epoch': ...}). DataParallel's 'module.' prefix is dropped when every name has it."""
    obj = load(path)
    if key is not None and isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
        obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, np.ndarray) for v in obj.values()):
        found = type(obj).__name__ if not isinstance(obj, Mapping) else f"a dict with keys {sorted(map(str, obj))[:6]}"
        raise CheckpointError(f"{path}: expected a state dict of tensors{f' (or a dict with one under {key!r})' if key else ''}, "
                              f"got {found}")
    if all(str(k).startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


class Source:
    """A state dict that records which keys were used, so that leftovers can be reported."""

    def __init__(self, state_dict: Mapping[str, np.ndarray], where: str):
        self.arrays = dict(state_dict)
        self.where = where
        self.used: set[str] = set()

    def __contains__(self, key):
        return key in self.arrays

    def get(self, key: str, ndim: int | None = None) -> np.ndarray:
        if key not in self.arrays:
            raise ConversionError(f"{self.where}: missing key {key!r}")
        value = np.asarray(self.arrays[key])
        if ndim is not None and value.ndim != ndim:
            raise ConversionError(f"{self.where}: key {key!r} has shape {value.shape}, expected {ndim} dimensions")
        check_weights(value, key, self.where)
        self.used.add(key)
        return value

    def check_all_used(self):
        left = sorted(set(self.arrays) - self.used)
        if left:
            raise ConversionError(f"{self.where}: unexpected keys {left[:10]}{' ...' if len(left) > 10 else ''} "
                                  f"({len(left)} in all) that this layout does not use")


def check_weights(value: np.ndarray, key: str, where: str) -> None:
    """A ConversionError naming `key` unless `value` holds finite floating-point numbers: an integer or
    boolean weight, or a NaN / infinity, would give a model that computes garbage without a word."""
    if not (np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16"):
        raise ConversionError(f"{where}: key {key!r} holds {value.dtype} values; expected floating-point weights")
    if value.size and not np.all(np.isfinite(value.astype(np.float32))):
        bad = int(np.sum(~np.isfinite(value.astype(np.float32))))
        raise ConversionError(f"{where}: key {key!r} holds {bad} non-finite value(s) (NaN or infinity); the "
                              f"checkpoint is damaged")


def check(condition: bool, where: str, message: str):
    if not condition:
        raise ConversionError(f"{where}: {message}")


def unique_filter(src: Source, keys: list[str]) -> np.ndarray | None:
    """All FIR buffers must hold the same filter; returns it normalised to sum 1."""
    filters = [src.get(k, ndim=2) for k in keys]
    if not filters:
        return None
    for key, f in zip(keys, filters):
        check(f.shape == filters[0].shape and np.allclose(f / f.sum(), filters[0] / filters[0].sum()),
               src.where, f"resample filter {key!r} differs from {keys[0]!r}; mixed filters are not supported")
    return filters[0] / filters[0].sum()


def fill_params(src: Source, abstract, transposes: dict[str, tuple[int, ...]] | None = None):
    """The params tree of `abstract` (ShapeDtypeStructs) filled from NVIDIA-named arrays (key = the
    leaf's path joined by '.'), moved to our layouts: 2-D weights (out, in) -> (in, out), 4-D weights
    OIHW -> HWIO, and leaves named in `transposes` by their axis order. A missing `w_avg` is zeros
    (the caller estimates it); any other missing key, or a shape that does not fit, names the key."""
    transposes = transposes or {}

    def fill(path, leaf):
        names = [p.key for p in path]
        key = ".".join(names)
        if names[-1] == "w_avg" and key not in src:
            return np.zeros(leaf.shape, np.float32)
        value = src.get(key)
        if names[-1] == "weight" and value.ndim == 2:
            value = value.T
        elif names[-1] == "weight" and value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)
        elif names[-1] in transposes:
            value = value.transpose(transposes[names[-1]])
        check(value.shape == leaf.shape, src.where,
              f"key {key!r} has shape {value.shape} after layout change, expected {leaf.shape}")
        return np.array(value, dtype=np.float32, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)

    return jax.tree_util.tree_map_with_path(fill, abstract)


TORCH_LEAF = {("params", "kernel"): "weight", ("params", "scale"): "weight", ("params", "bias"): "bias",
              ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}


def fill_flax_variables(src: Source, abstract, module_key, what: str):
    """Flax variables ({"params", "batch_stats"} of Conv / Dense / BatchNorm leaves) shaped like
    `abstract`, filled from a torch state dict: a leaf's key is `module_key(its module names)` + '.'
    + torch's leaf name (weight, bias, running_mean, running_var); conv kernels OIHW -> HWIO, dense
    kernels transposed. A missing key, or a shape that does not fit `what`, names the key."""
    def fill(path, leaf):
        names = [p.key for p in path]
        key = f"{module_key(names[1:-1])}.{TORCH_LEAF[names[0], names[-1]]}"
        value = src.get(key)
        if names[-1] == "kernel":
            value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        check(value.shape == leaf.shape, src.where,
              f"key {key!r} has shape {value.shape} after layout change, expected {leaf.shape} for {what}")
        return jnp.asarray(np.asarray(value, np.float32))

    return jax.tree_util.tree_map_with_path(fill, abstract)
