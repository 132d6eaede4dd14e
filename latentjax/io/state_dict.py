"""A source state dict as the key maps read it: each key used once, leftovers and mismatches reported."""

from __future__ import annotations

from typing import Mapping

import jax
import numpy as np

from latentjax.errors import ConversionError


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
