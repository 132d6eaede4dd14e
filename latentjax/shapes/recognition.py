"""Recognition on the shapes world: class labels and regression targets from factors, a
recognizer's accuracy and errors, and the assessor as a `Scorer`.

A class head names a factor: 'shape' has one class per shape, every other factor `bins` equal
bins of [0, 1) (e.g. 'hue' with 6 bins: which sixth of the hue circle). A value head (one output)
regresses a factor: a non-periodic one by its value ('x'), a periodic one by the cosine and sine
of its angle ('hue_cos', 'hue_sin'), so that 0 and 1 are the same target. `accuracy` and
`value_errors` score a `latentjax.nn.recognizer.Recognizer` on fresh true renders, optionally from
held-out factor ranges (the shifted test set of the disentanglement study). `assessor_scorer`
turns a network's value heads into a differentiable `Scorer` (GANalyze's assessor).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.metrics.scorer import Scorer
from latentjax.shapes.world import FACTOR_NAMES, PERIODIC_FACTORS, SHAPES, check_ranges, render, sample_factors

VALUE_HEADS = tuple(name for f in FACTOR_NAMES[1:]
                    for name in ((f"{f}_cos", f"{f}_sin") if f in PERIODIC_FACTORS else (f,)))


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


def check_value_heads(heads: Sequence[str]) -> tuple[str, ...]:
    """`heads` as a tuple, each a name from `VALUE_HEADS`, or a ValueError naming the unknown ones."""
    heads = tuple(heads)
    unknown = [h for h in heads if h not in VALUE_HEADS]
    if unknown:
        raise ValueError(f"value heads {unknown}: expected names from {VALUE_HEADS}")
    return heads


def value_targets(factors: Mapping[str, jax.Array], heads: Sequence[str]) -> dict[str, jax.Array]:
    """{head: float32 regression targets [n]} of a batch of factors (see the module docstring)."""
    out = {}
    for h in check_value_heads(heads):
        factor, _, part = h.rpartition("_") if h.endswith(("_cos", "_sin")) else (h, "", "")
        value = factors[factor].astype(jnp.float32)
        out[h] = value if not part else (jnp.cos if part == "cos" else jnp.sin)(2 * jnp.pi * value)
    return out


def accuracy(recognizer, params, key, *, heads: Sequence[str], bins: int, num_samples: int = 2048,
             batch_size: int = 256, ranges: Mapping[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """{head: fraction of `num_samples` true renders (factors in `ranges`) classified correctly}."""
    def correct(logits, factors):
        labels = factor_labels(factors, heads, bins)
        return {h: (jnp.argmax(logits[h], axis=-1) == labels[h]).astype(jnp.float32) for h in heads}
    return _mean_over_renders(recognizer, params, key, correct, num_samples, batch_size, ranges)


def value_errors(recognizer, params, key, *, heads: Sequence[str], num_samples: int = 2048, batch_size: int = 256,
                 ranges: Mapping[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """{value head: mean absolute error over `num_samples` true renders (factors in `ranges`)}."""
    def error(outputs, factors):
        return {h: jnp.abs(outputs[h][:, 0] - t) for h, t in value_targets(factors, heads).items()}
    return _mean_over_renders(recognizer, params, key, error, num_samples, batch_size, ranges)


def _mean_over_renders(recognizer, params, key, per_sample, num_samples: int, batch_size: int, ranges) -> dict:
    """Means of `per_sample(outputs, factors) -> {head: [n]}` over whole batches of fresh true renders."""
    check_ranges(ranges)
    resolution = recognizer.config.img_resolution

    @jax.jit
    def sums(params, k):
        factors = sample_factors(k, batch_size, ranges)
        values = per_sample(recognizer.logits(params, render(factors, resolution).images), factors)
        return {h: jnp.sum(v) for h, v in values.items()}

    num_batches = -(-num_samples // batch_size)
    totals = {}
    for i in range(num_batches):
        for h, total in sums(params, jax.random.fold_in(key, i)).items():
            totals[h] = totals.get(h, 0.0) + float(total)
    return {h: total / (num_batches * batch_size) for h, total in totals.items()}


def assessor_scorer(recognizer) -> Scorer:
    """The network's value heads as a differentiable `Scorer` (columns in head order): images in
    [-1, 1] at its resolution -> the regressed factors. Raises if it has no value head."""
    heads = recognizer.config.value_heads
    if not heads:
        raise ValueError(f"{recognizer} has no value head (a head with one output) to score with")

    def apply(params, images):
        outputs = recognizer.logits(params, images)
        return jnp.concatenate([outputs[h] for h in heads], axis=-1)

    return Scorer(apply, heads, recognizer.params, differentiable=True)
