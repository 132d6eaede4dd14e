"""Identity swaps scored against the truth: does an image made from an identity image and an attribute
image keep the one's identity and follow the other's attributes?

In the shapes world identity is shape and hue (`IDENTITY_FACTORS`) and the attributes are x, y,
scale, rotation and background (`ATTRIBUTE_FACTORS`). Both inputs are true renders of fresh
factors, so the factors the output should have are known exactly. `swap_scores(swap, key, n,
resolution)` scores any `swap(identity_images, attribute_images) -> images`; `failure_profile` of
`swapped`'s result shows for which values of a factor it misses that factor; `sequence_scores`
scores a sequence made for one identity from driver frames.
Details: docs/shapes.md#latentjaxshapesswaps
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.identity.sequence import jitter
from latentjax.shapes.reading import VALID_TOL, factor_distance, factor_errors, readout
from latentjax.shapes.world import FACTOR_NAMES, PERIODIC_FACTORS, SHAPES, render, sample_factors

IDENTITY_FACTORS = ("shape", "hue")
ATTRIBUTE_FACTORS = ("x", "y", "scale", "rotation", "background")


def swap_truth(identity: Mapping[str, jax.Array], attributes: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The factors a swap should have: identity factors from `identity`, the others from `attributes`."""
    return {name: (identity if name in IDENTITY_FACTORS else attributes)[name] for name in FACTOR_NAMES}


def swap_errors(outputs, identity: Mapping[str, jax.Array], attributes: Mapping[str, jax.Array],
                tol: float = VALID_TOL) -> dict[str, np.ndarray]:
    """Per output [n]: `valid`, and each factor's error against `swap_truth` (NaN where not counted)."""
    estimates = readout(outputs, tol)
    truth = swap_truth(identity, attributes)
    errors = {k: np.asarray(v, np.float64) for k, v in factor_errors(estimates, truth).items()}
    valid = np.asarray(estimates["valid"])
    rotation_counts = (np.asarray(estimates["shape"] == truth["shape"]) & np.asarray(truth["shape"] != 0)
                       & np.asarray(attributes["shape"] != 0))
    errors["rotation"] = np.where(rotation_counts, errors["rotation"], np.nan)
    return {"valid": valid, **{k: np.where(valid, v, np.nan) for k, v in errors.items()}}


def swap_pairs(key, n: int, ranges: Mapping[str, tuple[float, float]] | None = None):
    """(identity factors, attribute factors): n fresh factor vectors each, drawn from `key` in `ranges`."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k_id, k_attr = jax.random.split(key)
    return sample_factors(k_id, n, ranges), sample_factors(k_attr, n, ranges)


def summarize_swaps(errors: Mapping[str, np.ndarray]) -> dict[str, float]:
    """`swap_errors` (or several concatenated) -> `valid` (the share of outputs the read-out accepts),
    `shape_accuracy` and `hue_error` (identity kept), `x_error` ... `background_error` and
    `rotation_error` (attributes followed), over valid outputs (NaN where none counts)."""
    out = {"valid": float(np.mean(errors["valid"]))}
    mean = lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")  # noqa: E731
    out["shape_accuracy"] = 1.0 - mean(errors["shape"])
    out.update({f"{f}_error": mean(errors[f]) for f in FACTOR_NAMES[1:]})
    return out


def swap_scores(swap: Callable, key, n: int, resolution: int, *, tol: float = VALID_TOL, batch_size: int = 256,
                ranges: Mapping[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """`summarize_swaps` of `swap` on n pairs of true renders of fresh factors (`swapped`)."""
    return summarize_swaps(swapped(swap, key, n, resolution, tol=tol, batch_size=batch_size, ranges=ranges)[0])


def swapped(swap: Callable, key, n: int, resolution: int, *, tol: float = VALID_TOL, batch_size: int = 256,
            ranges: Mapping[str, tuple[float, float]] | None = None):
    """`swap` on n pairs of true renders of fresh factors (`swap_pairs(key, n, ranges)`), `batch_size`
    pairs per call: (their `swap_errors`, concatenated; the identity factors; the attribute factors)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    identity, attributes = swap_pairs(key, n, ranges)
    parts = []
    for start in range(0, n, batch_size):
        take = lambda factors: {k: v[start:start + batch_size] for k, v in factors.items()}  # noqa: E731
        a, b = take(identity), take(attributes)
        outputs = swap(render(a, resolution).images, render(b, resolution).images)
        parts.append(swap_errors(jnp.asarray(outputs), a, b, tol))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, identity, attributes


def failure_profile(errors: Mapping[str, np.ndarray], identity: Mapping[str, jax.Array],
                    attributes: Mapping[str, jax.Array], factor: str, *, threshold: float = 0.05,
                    bins: int = 10) -> list[float]:
    """Where a swap misses one factor, from `swapped`'s (errors, identity, attributes): the share of
    valid outputs whose `factor` error exceeds `threshold` (shape: is wrong), by `bins` equal bins of
    the value the output should have (`swap_truth`; shape: by class). NaN where a bin holds no valid
    output."""
    if factor not in FACTOR_NAMES:
        raise ValueError(f"factor must be one of {FACTOR_NAMES}, got {factor!r}")
    intended = np.asarray(swap_truth(identity, attributes)[factor])
    if intended.shape != errors[factor].shape:
        raise ValueError(f"errors[{factor!r}] has shape {errors[factor].shape}, the factors {intended.shape}: "
                         f"pass one `swapped` result")
    where = intended if factor == "shape" else np.minimum((intended * bins).astype(int), bins - 1)
    missed, counted = errors[factor] > (0.5 if factor == "shape" else threshold), np.isfinite(errors[factor])
    return [float(np.mean(missed[counted & (where == b)])) if (counted & (where == b)).any() else float("nan")
            for b in range(len(SHAPES) if factor == "shape" else bins)]


def sequence_scores(frames, identity: Mapping[str, jax.Array], drivers: Mapping[str, jax.Array],
                    tol: float = VALID_TOL, hue_tol: float = 0.05) -> dict[str, float]:
    """Scores of frames [T, H, W, C] made for one identity (factors of one object: scalars) from driver
    frames with factors `drivers` ([T] each): `valid`, `identity_kept` (the share of all frames the
    read-out accepts as the identity's shape with its hue within `hue_tol`), the attribute errors
    over valid frames (`x_error`, ...), and each attribute's `jitter` against its driver
    (`x_jitter`, ...; consecutive valid frames; rotation where the identity is not a circle)."""
    frames = jnp.asarray(frames)
    count = frames.shape[0]
    same = {k: jnp.broadcast_to(jnp.asarray(identity[k]).reshape(-1)[:1], (count,)) for k in IDENTITY_FACTORS}
    errors = swap_errors(frames, {**drivers, **same}, drivers, tol)
    read = readout(frames, tol)
    valid = errors["valid"]
    kept = valid & (np.asarray(read["shape"]) == np.asarray(same["shape"])) & (
        np.asarray(factor_distance("hue", read["hue"], same["hue"])) <= hue_tol)
    out = {"frames": int(count), "valid": float(np.mean(valid)), "identity_kept": float(np.mean(kept))}
    for f in ATTRIBUTE_FACTORS:
        finite = np.isfinite(errors[f])
        out[f"{f}_error"] = float(np.nanmean(errors[f])) if finite.any() else float("nan")
        measured = np.where(valid, np.asarray(read[f], np.float64), np.nan)
        if f == "rotation" and int(np.asarray(same["shape"])[0]) == 0:
            measured = np.full(count, np.nan)
        out[f"{f}_jitter"] = jitter(measured, np.asarray(drivers[f]), 1.0 if f in PERIODIC_FACTORS else None)
    return out
