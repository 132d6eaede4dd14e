"""Batch norm from a table of precomputed statistics, selected by the truncation value.

BigGAN-deep stores `n_stats` rows of running means and variances, measured at truncations
0, 1/(n_stats-1), ..., 1. pytorch-pretrained-BigGAN picks them as
`coef, i = math.modf(t / step)` (float64, `step = 1.0 / (n_stats - 1)`) and uses row `i` when
`coef == 0`, otherwise `coef * row[i] + (1 - coef) * row[i + 1]`. The fractional part weights
row `i`, the reverse of a textbook lerp, and float64 rounding decides the row at grid points
(0.58 / 0.02 = 28.999999999999996 mixes rows 28 and 29 with weights 1 - 4e-15 and 4e-15).
We reproduce that rule exactly; `statistics_weights` says how for Python floats and for
traced (float32) values.

XLA fuses these element-wise steps, so there is a single path: it is its own reference.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def _reference_rows(t: float, n_stats: int) -> tuple[int, float, float]:
    """The reference's selection for a Python float: (row, weight of row, weight of row + 1)."""
    coef, start = math.modf(t / (1.0 / (n_stats - 1)))
    if coef == 0.0:
        return int(start), 1.0, 0.0
    return int(start), coef, 1.0 - coef


def check_truncation(truncation) -> None:
    """A ValueError unless a concrete truncation lies in (0, 1] (NaN included); traced values pass
    (they are clipped to the statistics table, see `statistics_weights`)."""
    if isinstance(truncation, jax.core.Tracer):
        return
    values = np.asarray(truncation, np.float64)
    if not np.all((values > 0) & (values <= 1)):
        raise ValueError(f"truncation must be in (0, 1] (the statistics table covers [0, 1]), got {truncation}")


def statistics_weights(truncation, n_stats: int):
    """(row, w_row, w_next) such that the statistics are `w_row * T[row] + w_next * T[row + 1]`.

    A Python number follows the reference in float64 exactly (it must lie in (0, 1], as the
    reference asserts). Anything else (a jax/numpy array, a tracer under `jit`/`vmap`) is
    float32: at the float32 values of the grid points k/(n_stats-1) the float64 choice of the
    reference for the Python float k/(n_stats-1) is looked up in a table (so `0.58` gives the
    same rows traced or not); elsewhere `t * (n_stats - 1)` is split in float32, which moves the
    weights by about 1e-7. Values within one float32 step of a grid point, but not on it, may
    resolve to a neighbouring row there (the reference itself jumps between rows at every grid
    point). Traced values outside (0, 1] are clipped to the table, not rejected.
    """
    if n_stats < 2:
        raise ValueError(f"n_stats must be at least 2, got {n_stats}")
    check_truncation(truncation)
    if isinstance(truncation, (int, float)):
        row, w_row, w_next = _reference_rows(float(truncation), n_stats)
        return np.int32(row), np.float32(w_row), np.float32(w_next)
    grid = [_reference_rows(k / (n_stats - 1), n_stats) for k in range(n_stats)]
    grid_t = np.array([k / (n_stats - 1) for k in range(n_stats)], np.float32)
    t = jnp.asarray(truncation, jnp.float32)
    q = t * (n_stats - 1)
    k = jnp.clip(jnp.round(q), 0, n_stats - 1).astype(jnp.int32)
    on_grid = t == jnp.asarray(grid_t)[k]
    start = jnp.clip(jnp.floor(q), 0, n_stats - 1)
    coef = jnp.clip(q - start, 0.0, 1.0)
    row = jnp.where(on_grid, jnp.asarray([g[0] for g in grid], jnp.int32)[k], start.astype(jnp.int32))
    w_row = jnp.where(on_grid, jnp.asarray([g[1] for g in grid], jnp.float32)[k],
                      jnp.where(coef == 0, 1.0, coef))
    w_next = jnp.where(on_grid, jnp.asarray([g[2] for g in grid], jnp.float32)[k],
                       jnp.where(coef == 0, 0.0, 1.0 - coef))
    return row, w_row, w_next


def select_statistics(table, weights):
    """Interpolate a [n_stats, C] table with the weights of `statistics_weights` -> [C]."""
    row, w_row, w_next = weights
    table = jnp.asarray(table)
    following = jnp.minimum(row + 1, table.shape[0] - 1)  # row n_stats-1 (t = 1) has weight 0 on its successor
    return table[row] * w_row + table[following] * w_next


def batch_norm(x, mean, var, gain, bias, eps: float):
    """(x - mean) / sqrt(var + eps) * gain + bias on NHWC `x`; every other argument broadcasts over it."""
    return (x - mean) / jnp.sqrt(var + eps) * gain + bias

