"""A source state dict as the key maps read it: each key used once, leftovers and mismatches reported."""

from __future__ import annotations

from typing import Mapping

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
        self.used.add(key)
        return value

    def check_all_used(self):
        left = sorted(set(self.arrays) - self.used)
        if left:
            raise ConversionError(f"{self.where}: unexpected keys {left[:10]}{' ...' if len(left) > 10 else ''} "
                                  f"({len(left)} in all) that this layout does not use")


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
