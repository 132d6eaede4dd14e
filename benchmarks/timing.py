"""The one timing rule every benchmark uses (median wall time after a warm-up call), and how a
benchmark imports an optional reference checkout to time beside ours."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import jax


def median_seconds(run, repeats: int) -> float:
    """Median seconds of `run()` over `repeats` calls, after one untimed call (JAX compilation).

    Results are waited for with `jax.block_until_ready` (other values, e.g. torch tensors, pass through).
    """
    jax.block_until_ready(run())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_reference(path: str | None, name: str, load):
    """`load()` run with the checkout at `path` importable (torch using every core), or None, with the
    reason printed, when there is no path or it cannot run here (the reference is optional)."""
    if not path:
        return None
    try:
        sys.path.insert(0, str(Path(path).absolute()))
        import torch

        loaded = load()
    except Exception as e:  # report why the reference is skipped and go on
        print(f"reference not timed: cannot import {name} from {path} ({e!r})")
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return loaded
