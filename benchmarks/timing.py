"""The one timing rule every benchmark uses: median wall time after a warm-up call."""

from __future__ import annotations

import statistics
import time

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
