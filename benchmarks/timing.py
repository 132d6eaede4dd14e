"""The one timing rule every benchmark uses (median wall time after a warm-up call), and how a
benchmark describes the machine it ran on and writes its JSON record (references.py imports the
optional reference checkouts)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax


def median_seconds(run, repeats: int, budget_s: float | None = None) -> float:
    """Median seconds of `run()` over `repeats` calls, after one untimed call (JAX compilation);
    with `budget_s`, fewer calls (at least one) once the timed ones have taken that long.

    Results are waited for with `jax.block_until_ready` (other values, e.g. torch tensors, pass through).
    """
    jax.block_until_ready(run())
    times = []
    while len(times) < repeats and (budget_s is None or not times or sum(times) < budget_s):
        start = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def environment() -> dict:
    """The machine and JAX a benchmark ran on: the fields every benchmark record starts with."""
    return {"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__, "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "platform": platform.platform()}


def describe_environment() -> str:
    """One line for a benchmark's header: device, backend, device count and JAX version."""
    env = environment()
    return f"device: {env['device']} ({env['backend']}, {env['device_count']} devices), jax {env['jax']}"


def write_record(path, benchmark: str, **fields) -> Path:
    """Write the JSON record `{"benchmark": benchmark, **environment(), **fields}` to `path` (parent
    directories created) and say so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": benchmark, **environment(), **fields}, indent=1, default=str) + "\n")
    print(f"\nwrote {path}")
    return path
