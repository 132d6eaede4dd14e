"""Recognition on the shapes world: class labels from factors, and a recognizer's accuracy.

A label head names a factor: 'shape' has one class per shape, every other factor `bins` equal
bins of [0, 1) (e.g. 'hue' with 6 bins: which sixth of the hue circle). `accuracy` scores a
`latentjax.nn.recognizer.Recognizer` on fresh true renders, optionally from held-out factor
ranges (the shifted test set of the disentanglement study).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.shapes.world import FACTOR_NAMES, SHAPES, check_ranges, render, sample_factors


def head_classes(heads: Sequence[str], bins: int) -> tuple[int, ...]:
    """Classes of each head: len(SHAPES) for 'shape', `bins` for the other factors."""
    unknown = [h for h in heads if h not in FACTOR_NAMES]
    if unknown or not heads:
        raise ValueError(f"heads {unknown or 'none given'}: expected factor names from {FACTOR_NAMES}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    return tuple(len(SHAPES) if h == "shape" else int(bins) for h in heads)


def factor_labels(factors: Mapping[str, jax.Array], heads: Sequence[str], bins: int) -> dict[str, jax.Array]:
    """{head: int32 class labels [n]} of a batch of factors (see the module docstring)."""
    head_classes(heads, bins)
    return {h: factors["shape"].astype(jnp.int32) if h == "shape"
            else jnp.clip(jnp.floor(factors[h] * bins).astype(jnp.int32), 0, bins - 1) for h in heads}


def accuracy(recognizer, params, key, *, heads: Sequence[str], bins: int, num_samples: int = 2048,
             batch_size: int = 256, ranges: Mapping[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """{head: fraction of `num_samples` true renders (factors in `ranges`) classified correctly}."""
    check_ranges(ranges)
    resolution = recognizer.config.img_resolution

    @jax.jit
    def correct(params, k):
        factors = sample_factors(k, batch_size, ranges)
        logits = recognizer.logits(params, render(factors, resolution).images)
        labels = factor_labels(factors, heads, bins)
        return {h: jnp.sum(jnp.argmax(logits[h], axis=-1) == labels[h]) for h in heads}

    num_batches = -(-num_samples // batch_size)
    totals = {h: 0 for h in heads}
    for i in range(num_batches):
        for h, c in correct(params, jax.random.fold_in(key, i)).items():
            totals[h] += int(c)
    return {h: totals[h] / (num_batches * batch_size) for h in heads}
