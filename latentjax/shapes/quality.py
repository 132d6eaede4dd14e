"""How faithfully a generator reproduces the shapes world (`latentjax.shapes.world`).

Two numbers per generator, both from the analytic read-out (`latentjax.shapes.reading`):
- the valid fraction: samples read as exactly one clean shape (`reading.is_valid`: one connected
  object, and re-rendering the read-out factors reproduces the image);
- per factor, the distance between the read-out distribution of the valid samples and the true
  prior: for `shape`, the total-variation distance between the class frequencies and the uniform
  1/3; for every other factor (uniform on [0, 1] by construction), the 1-Wasserstein distance
  W1 = integral over p of |F^-1(p) - p|, computed exactly for the empirical quantile function
  (0: the same distribution; 0.5: all mass at an end). `rotation` is measured on non-circles
  only. `hue` is periodic, and the linear W1 used here is an upper bound of the circular one.
The same numbers for true renders give the sampling noise floor for the same sample count.
To show how far a generator is from the bar, the summary also gives the valid fraction at looser
tolerances (`TOLERANCES`) and percentiles of the rerender error of one-object samples.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax.latent import latent_space
from latentjax.shapes import reading, world

TOLERANCES = (reading.VALID_TOL, 0.02, 0.05, 0.1)  # rerender-error tolerances the summary reports
PERCENTILES = (10, 50, 90)


def w1_to_uniform(values) -> float:
    """Exact 1-Wasserstein distance between the empirical distribution of `values` and U(0, 1)."""
    u = np.sort(np.asarray(values, np.float64).ravel())
    if u.size == 0:
        return float("nan")
    edges = np.arange(u.size + 1) / u.size
    a, b = edges[:-1], edges[1:]
    # integral over [a, b] of |c - p| dp, with c = u_(i) the empirical quantile on that interval
    integral = ((b - u) * np.abs(b - u) - (a - u) * np.abs(a - u)) / 2.0
    return float(integral.sum())


def factor_distances(estimates: dict, valid) -> dict[str, float]:
    """Distance of each factor's read-out distribution (valid samples only) from the true prior."""
    valid = np.asarray(valid, bool)
    shape = np.asarray(estimates["shape"])[valid]
    if shape.size == 0:
        return {name: float("nan") for name in world.FACTOR_NAMES}
    counts = np.bincount(shape, minlength=len(world.SHAPES)) / shape.size
    distances = {"shape": float(0.5 * np.abs(counts - 1.0 / len(world.SHAPES)).sum())}
    not_circle = shape != world.SHAPES.index("circle")
    for name in world.FACTOR_NAMES[1:]:
        values = np.asarray(estimates[name])[valid]
        distances[name] = w1_to_uniform(values[not_circle] if name == "rotation" else values)
    return distances


def factor_histograms(estimates: dict, valid, bins: int = 10) -> dict[str, list[int]]:
    """Counts of the valid samples' values of each continuous factor in `bins` equal bins of [0, 1)
    (rotation: non-circles), to show where a distance comes from (the prior puts as many in each)."""
    valid = np.asarray(valid, bool)
    not_circle = np.asarray(estimates["shape"]) != world.SHAPES.index("circle")
    return {name: np.histogram(np.asarray(estimates[name])[valid & (not_circle | (name != "rotation"))], bins,
                               (0.0, 1.0))[0].tolist() for name in world.FACTOR_NAMES[1:]}


def summarize(images_batches) -> dict:
    """Read out batches of images ([-1, 1] NHWC) and return the valid fraction (also at each of
    `TOLERANCES`), rerender-error percentiles of one-object images, the factor distances of the
    valid images (and of all one-object images) and their `factor_histograms`."""
    readout = jax.jit(reading.readout)
    keys = (*world.FACTOR_NAMES, "valid", "num_objects", "rerender_error")
    parts = {name: [] for name in keys}
    for images in images_batches:
        out = readout(images)
        for name in keys:
            parts[name].append(np.asarray(out[name]))
    out = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    one_object, error = out["num_objects"] == 1, out["rerender_error"]
    return {"num_samples": int(error.size), "valid_fraction": float(out["valid"].mean()),
            "valid_fraction_at": {str(tol): float(np.mean(one_object & (error < tol))) for tol in TOLERANCES},
            "rerender_error_percentiles": {str(p): float(np.percentile(error[one_object], p)) if one_object.any()
                                           else float("nan") for p in PERCENTILES},
            "distances": factor_distances(out, out["valid"]),
            "histograms": factor_histograms(out, out["valid"]),
            "distances_one_object": factor_distances(out, one_object)}


def generated_batches(generator, key, num_samples: int, batch_size: int, truncation_psi: float = 1.0):
    """Batches (z [batch_size, z_dim], images clipped to [-1, 1]) of `num_samples` samples from the
    generator's `z` prior, batch i drawn with `fold_in(key, i)`."""
    if num_samples % batch_size:
        raise ValueError(f"num_samples ({num_samples}) must be a multiple of batch_size ({batch_size})")
    space = latent_space(generator, "z", truncation_psi=truncation_psi)
    decode = jax.jit(space.decode)
    for i in range(num_samples // batch_size):
        z = space.sample(jax.random.fold_in(key, i), batch_size)
        yield z, jnp.clip(decode(generator.params, z), -1.0, 1.0)


def generator_quality(generator, key, num_samples: int = 10_000, batch_size: int = 250,
                      truncation_psi: float = 1.0) -> dict:
    """Valid fraction and factor distances of `num_samples` samples of a shapes generator.

    Samples come from the generator's `z` prior (no truncation by default: the whole distribution).
    """
    return summarize(images for _, images in generated_batches(generator, key, num_samples, batch_size,
                                                               truncation_psi))


def factor_agreement(pairs) -> dict:
    """Read-out against given factors over pairs (images [n, H, W, 3] in [-1, 1], factors {name: [n]}),
    counted on the valid images: `num_valid`, shape accuracy and the mean error of every other factor
    (`reading.summarize_errors`; rotation on non-circles)."""
    errors, valid = [], []
    for images, factors in pairs:
        out = reading.readout(images)
        errors.append({k: np.asarray(v) for k, v in reading.factor_errors(out, factors).items()})
        valid.append(np.asarray(out["valid"]))
    valid = np.concatenate(valid)
    if not valid.any():
        return {"num_valid": 0}
    merged = {name: jnp.asarray(np.concatenate([e[name] for e in errors])[valid]) for name in errors[0]}
    return {"num_valid": int(valid.sum()), **reading.summarize_errors(merged)}


def factor_bias(pairs, bins: int = 10, tol: float = reading.VALID_TOL) -> dict[str, list[float]]:
    """Mean signed error (read-out minus given; periodic factors wrapped into [-0.5, 0.5)) of the images
    valid at rerender tolerance `tol`, over pairs (images, factors) as in `factor_agreement`, by `bins`
    equal bins of the given value of each continuous factor (rotation: non-circles; NaN for an empty
    bin). A generator that draws its range narrower than asked shows positive errors in the low bins
    and negative ones in the high bins, which a mean absolute error does not tell apart from noise."""
    return _binned_by_given(pairs, bins, tol, lambda error, valid: (error, valid))


def valid_by_factor(pairs, bins: int = 10, tol: float = reading.VALID_TOL) -> dict[str, list[float]]:
    """Share of the images valid at rerender tolerance `tol`, over pairs (images, factors) as in
    `factor_bias`, by `bins` equal bins of the given value of each continuous factor (rotation:
    non-circles; NaN for an empty bin): which asked values a generator fails to draw cleanly."""
    return _binned_by_given(pairs, bins, tol, lambda error, valid: (valid.astype(np.float64), np.ones_like(valid)))


def _binned_by_given(pairs, bins: int, tol: float, measure) -> dict[str, list[float]]:
    """Per continuous factor, the mean by `bins` equal bins of its given value of `measure(error, valid)`'s
    first array over the samples its second (a mask) keeps; error is the read-out minus the given value,
    periodic factors wrapped, and rotation counts non-circles only."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    values = {name: [] for name in world.FACTOR_NAMES[1:]}
    given = {name: [] for name in world.FACTOR_NAMES[1:]}
    for images, factors in pairs:
        out = {k: np.asarray(v) for k, v in reading.readout(images, tol).items()}
        polygon = np.asarray(factors["shape"]) != world.SHAPES.index("circle")
        for name in values:
            truth = np.asarray(factors[name])
            error = out[name] - truth
            if name in world.PERIODIC_FACTORS:
                error = (error + 0.5) % 1.0 - 0.5
            value, keep = measure(error, out["valid"].astype(bool))
            counted = keep & polygon if name == "rotation" else keep
            values[name].append(value[counted])
            given[name].append(truth[counted])
    means = {}
    for name in values:
        value, truth = np.concatenate(values[name]), np.concatenate(given[name])
        index = np.minimum((truth * bins).astype(int), bins - 1)
        means[name] = [float(value[index == b].mean()) if (index == b).any() else float("nan") for b in range(bins)]
    return means


@functools.partial(jax.jit, static_argnames=("steps",))
def refitted_errors(images: jax.Array, steps: int = 300, lr: float = 2e-3) -> dict[str, jax.Array]:
    """Is an image off, or only its read-out? The read-out's factors of each image refined by `steps`
    Adam steps on the L1 difference to the image (shape class kept, factors kept in [0, 1)), and the
    rerender error (`reading.render_error`) before and after: {"readout", "refitted"} [n] errors,
    with "shape" [n] and "one_object" [n] from the read-out."""
    out = reading.readout(images)
    continuous = [name for name in world.FACTOR_NAMES if name != "shape"]
    factors = {name: out[name] for name in continuous}
    tx = optax.adam(lr)

    def l1(f):
        rendered = world.render({**f, "shape": out["shape"]}, images.shape[1]).images
        return jnp.sum(jnp.mean(jnp.abs(rendered - images), axis=(1, 2, 3)))

    def step(carry, _):
        f, state = carry
        updates, state = tx.update(jax.grad(l1)(f), state)
        return (jax.tree.map(lambda v, u: jnp.clip(v + u, 0.0, 1.0 - 1e-6), f, updates), state), None

    (refitted, _), _ = jax.lax.scan(step, (factors, tx.init(factors)), None, steps)
    return {"readout": out["rerender_error"], "shape": out["shape"], "one_object": out["num_objects"] == 1,
            "refitted": reading.render_error(images, {**refitted, "shape": out["shape"]})}


def wrap_paths(generator, key, factor: str, space: str = "w", num_samples: int = 4000, band: float = 0.1,
               points: int = 9, batch_size: int = 250) -> dict:
    """`wrap_excursions` of `num_samples` samples of a generator's `space` (batch i from `fold_in(key, i)`)."""
    if num_samples % batch_size:
        raise ValueError(f"num_samples ({num_samples}) must be a multiple of batch_size ({batch_size})")
    latents = latent_space(generator, space)
    decode = jax.jit(latents.decode)
    draws = np.concatenate([np.asarray(latents.sample(jax.random.fold_in(key, i), batch_size, generator.params))
                            for i in range(num_samples // batch_size)])
    return wrap_excursions(lambda z: jnp.clip(decode(generator.params, z), -1.0, 1.0), draws, factor, band, points,
                           batch_size)


def wrap_excursions(decode, latents, factor: str, band: float = 0.1, points: int = 9, batch_size: int = 250) -> dict:
    """Does a latent space join a periodic factor's ends (`world.PERIODIC_FACTORS`: 0 and 1 are the
    same image)? `decode` maps latents [n, ...] to images. Valid samples of the same shape (not
    circles for rotation) are paired across the wrap (one value in [1 - band, 1), the other in
    [0, band)) and, as a control, across 0.5 ([0.5 - band, 0.5) with [0.5, 0.5 + band)). Each pair's
    straight latent path is decoded at `points` interior points; its excursion is the largest
    circular distance of a valid point's value from the pair's circular midpoint. Returns, for
    "wrap" and "control": the number of pairs, the share that goes the long way round (excursion
    > 0.25) and the median excursion. Where a space lays the factor on a line (the seeding decoder's
    normal CDF), the wrap pairs sit at its two ends, and a continuous map into the space (a mapper,
    a walk) must pass every other value to get from one to the other."""
    if factor not in world.PERIODIC_FACTORS:
        raise ValueError(f"factor must be one of the periodic factors {world.PERIODIC_FACTORS}, got {factor!r}")
    if not 0 < band < 0.25 or points < 1:
        raise ValueError(f"need 0 < band < 0.25 and points >= 1, got band {band}, points {points}")
    latents, readout = np.asarray(latents), jax.jit(reading.readout)
    read = [readout(decode(jnp.asarray(latents[i:i + batch_size]))) for i in range(0, len(latents), batch_size)]
    values, shapes, valid = (np.concatenate([np.asarray(out[k]) for out in read]) for k in (factor, "shape", "valid"))
    keep = valid & ((shapes != world.SHAPES.index("circle")) | (factor != "rotation"))
    t = np.linspace(0.0, 1.0, points + 2)[1:-1].reshape(-1, *([1] * (latents.ndim - 1)))
    result = {}
    for name, centre in (("wrap", 0.0), ("control", 0.5)):
        excursions = []
        for shape in np.unique(shapes[keep]):
            low = np.flatnonzero(keep & (shapes == shape) & ((values - (centre - band)) % 1.0 < band))
            high = np.flatnonzero(keep & (shapes == shape) & ((values - centre) % 1.0 < band))
            for a, b in zip(low, high):
                out = readout(decode(jnp.asarray((1 - t) * latents[a] + t * latents[b])))
                distance = np.abs((np.asarray(out[factor]) - centre + 0.5) % 1.0 - 0.5)[np.asarray(out["valid"])]
                if distance.size:
                    excursions.append(float(distance.max()))
        excursions = np.asarray(excursions)
        result[name] = {"pairs": int(excursions.size),
                        "long_way": float(np.mean(excursions > 0.25)) if excursions.size else float("nan"),
                        "median_excursion": float(np.median(excursions)) if excursions.size else float("nan")}
    return result


def true_render_quality(key, resolution: int, num_samples: int = 10_000, batch_size: int = 250) -> dict:
    """The same numbers for true renders: the noise floor of `num_samples` samples."""
    return summarize(world.sample(jax.random.fold_in(key, i), batch_size, resolution)[0]
                     for i in range(num_samples // batch_size))


def training_metrics(images: jax.Array) -> dict[str, jax.Array]:
    """Jittable quality numbers of one batch, for a training run's periodic evaluation: the valid
    fraction at the read-out's tolerance and at 0.05, and the median rerender error of one-object images."""
    out = reading.readout(images)
    one_object, error = out["num_objects"] == 1, out["rerender_error"]
    return {"valid": jnp.mean(out["valid"]), "valid_at_0.05": jnp.mean(one_object & (error < 0.05)),
            "rerender_error_p50": jnp.nanmedian(jnp.where(one_object, error, jnp.nan))}
