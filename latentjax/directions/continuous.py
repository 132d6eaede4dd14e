"""Continuous factors of variation (Plumerault et al., ICLR 2020): directions from known image transforms.

For each transform in `TRANSFORMS` (horizontal or vertical translation, zoom, brightness), as in the
reference (AntoinePlumerault/Controlling-generative-models-with-continuous-factors-of-variations):
latents z0 are inverted onto transformed renders of themselves, T_t(G(z0)), by Adam on a blurred,
masked MSE warm-started along t; the records with the worst 10% of final errors are dropped; and a
monotone model t = g(<u, z_t>) - g(<u, z0>) is fitted. The direction is u / |u|, and `traverse` is
the reference's z - (z.u) u + alpha u. Codes are the space's direction coordinates (in w+ the one w
repeated on every layer). Scores are the fit's R² on the kept records; `settings` holds each
direction's transform and the kept / total counts.
Details: docs/methods.md#latentjaxdirectionscontinuous
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax.config import ConfigMixin, check_positive, configure
from latentjax.directions.base import Directions
from latentjax.latent import LatentSpace, as_space, layer_mask
from latentjax.progress import Progress

TRANSFORMS = ("translate_x", "translate_y", "zoom", "brightness")


@dataclasses.dataclass(frozen=True)
class ContinuousFactorsConfig(ConfigMixin):
    transforms: tuple[str, ...] = ("translate_x", "translate_y", "zoom")  # one direction each (`TRANSFORMS`)
    num_trajectories: int = 50  # latents z0 (the reference's example script)
    batch_size: int = 10
    t_values: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)  # magnitudes of t, walked with each sign
    inversion_steps: int = 50  # Adam steps per t (warm-started)
    inversion_lr: float = 0.01
    sigma: float = 3.0  # of the Gaussian that blurs the error (pixels)
    drop_worst: float = 0.1  # fraction of records with the largest final error dropped
    lattice_size: int = 101  # g's lattice points on [-lattice_range, lattice_range]
    lattice_range: float = 5.0
    smoothness: float = 1.0  # weight of the mean squared first difference of g's increments
    l2: float = 0.1  # weight of |u|^2
    fit_lr: float = 1e-3
    fit_batch_size: int = 32
    fit_epochs: int = 100

    def __post_init__(self):
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown or not self.transforms:
            raise ValueError(f"transforms {unknown or 'none given'}: expected names from {TRANSFORMS}")
        check_positive(self, "num_trajectories", "batch_size", "inversion_steps", "fit_batch_size", "fit_epochs")
        check_positive(self, "lattice_size", minimum=2, what="at least 2 lattice points")
        if not self.t_values or not all(0 < t < 1 for t in self.t_values):
            raise ValueError(f"t_values must be magnitudes in (0, 1), got {self.t_values}")
        if not 0 <= self.drop_worst < 1:
            raise ValueError(f"drop_worst must be in [0, 1), got {self.drop_worst}")
        for name in ("inversion_lr", "sigma", "lattice_range", "fit_lr"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be positive and finite, got {getattr(self, name)}")
        for name in ("smoothness", "l2"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be >= 0 and finite, got {getattr(self, name)}")


# --- transforms -----------------------------------------------------------------------------------
def transform(images, name: str, t: float):
    """(target, mask) of T_t on images [N, H, W, C] in [-1, 1], as the reference: translations by
    int(t * size) pixels with zero fill (mask 0 on the filled band); zoom: crop (t > 0) or zero-pad
    (t < 0) to int(size / (1 + t)), then resize back bilinearly (the mask goes through the same);
    brightness: clip(x + t, -1, 1) (mask all ones)."""
    n, h, w, c = images.shape
    ones = jnp.ones_like(images)
    if name in ("translate_x", "translate_y"):
        axis, size = (2, w) if name == "translate_x" else (1, h)
        shift = int(t * size)
        return _shift(images, shift, axis), _shift(ones, shift, axis)
    if name == "zoom":
        return _crop_or_pad_resize(images, t), _crop_or_pad_resize(ones, t)
    if name == "brightness":
        return jnp.clip(images + t, -1.0, 1.0), ones
    raise ValueError(f"unknown transform {name!r}; expected one of {TRANSFORMS}")


def _shift(x, shift: int, axis: int):
    """x moved by `shift` pixels along `axis` (positive: towards higher indices), zero-filled."""
    if shift == 0:
        return x
    size = x.shape[axis]
    kept = jax.lax.slice_in_dim(x, 0, size - shift, axis=axis) if shift > 0 else \
        jax.lax.slice_in_dim(x, -shift, size, axis=axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (shift, 0) if shift > 0 else (0, -shift)
    return jnp.pad(kept, pad)


def _crop_or_pad_resize(x, t: float):
    """tf.image.resize_with_crop_or_pad to int(size / (1 + t)) (centred), then bilinear resize back."""
    n, h, w, c = x.shape
    th, tw = max(int(h / (1 + t)), 1), max(int(w / (1 + t)), 1)

    def crop_or_pad(x, axis, size, target):
        if target <= size:
            start = (size - target) // 2
            return jax.lax.slice_in_dim(x, start, start + target, axis=axis)
        pad = [(0, 0)] * x.ndim
        before = (target - size) // 2
        pad[axis] = (before, target - size - before)
        return jnp.pad(x, pad)

    x = crop_or_pad(crop_or_pad(x, 1, h, th), 2, w, tw)
    return jax.image.resize(x, (n, h, w, c), "linear", antialias=False)


def blur_taps(sigma: float) -> np.ndarray:
    """The 1-D factor of the reference's 2-D Gaussian: exp(-x^2 / (2 sigma^2)) on linspace(-S/2, S/2, S),
    S = round(6 sigma). The 2-D kernel is its outer product times 1 / (sqrt(2 pi) sigma), a 1-D
    normaliser: it does not sum to 1."""
    size = max(int(round(6 * sigma)), 1)
    grid = np.linspace(-size / 2, size / 2, size)
    return np.exp(-grid ** 2 / (2 * sigma ** 2))


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """[n, n]: one axis of the reference's SAME-padded depthwise blur, (M @ x)[i] = sum_m k[m] x[i + m - before]
    with TensorFlow's padding (the extra row of an even kernel after). The kernel is separable, so
    blurring is M_h @ image @ M_w^T, fast and exact."""
    taps = blur_taps(sigma)
    before = (len(taps) - 1) // 2
    m = np.zeros((n, n), np.float32)
    for i in range(n):
        for k, tap in enumerate(taps):
            j = i + k - before
            if 0 <= j < n:
                m[i, j] = tap
    return m


def blurred_mse(images, target, mask, sigma: float):
    """Per-sample mean of the squared, blurred error times the mask, over the batch's mean mask."""
    error = images - target
    rows, cols = blur_matrix(error.shape[1], sigma), blur_matrix(error.shape[2], sigma)
    blurred = jnp.einsum("ih,nhwc,jw->nijc", rows, error, cols, precision=jax.lax.Precision.HIGHEST)
    blurred = blurred / (math.sqrt(2 * math.pi) * sigma)
    return jnp.mean(blurred ** 2 * mask, axis=(1, 2, 3)) / jnp.mean(mask)


# --- trajectories ---------------------------------------------------------------------------------
def inversion_programs(space: LatentSpace, settings: ContinuousFactorsConfig):
    """(decode, invert): `decode(params, codes)` -> images, jitted, and `invert(params, codes, target,
    mask)` -> (codes after `inversion_steps` Adam steps on the blurred, masked error from `codes`,
    their per-sample errors). The steps are one jitted program run in a Python loop, not a `lax.scan`:
    XLA on CPU runs a generator's convolutions several times slower inside a loop it compiles (one
    transform at the Quick start's settings on `builtin:shapes`, one core: 202 s in a scan, 51 s in a loop)."""
    tx = optax.adam(settings.inversion_lr)
    decode = lambda params, codes: space.decode(params, space.embed(codes))  # noqa: E731

    def errors(params, codes, target, mask):
        return blurred_mse(decode(params, codes), target, mask, settings.sigma)

    @jax.jit
    def step(params, codes, opt, target, mask):
        grad = jax.grad(lambda c: jnp.sum(errors(params, c, target, mask)))(codes)
        updates, opt = tx.update(grad, opt)
        return optax.apply_updates(codes, updates), opt

    final_errors = jax.jit(errors)

    def invert(params, codes, target, mask):
        opt = tx.init(codes)
        for _ in range(settings.inversion_steps):
            codes, opt = step(params, codes, opt, target, mask)
        return codes, final_errors(params, codes, target, mask)

    return jax.jit(decode), invert


def trajectories(space: LatentSpace, params, name: str, settings: ContinuousFactorsConfig, key,
                 progress: bool = True, programs=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(z0 [R, D], z_t [R, D], t [R], final error [R]) over every trajectory, sign and t (step 1).

    `programs`: `inversion_programs(space, settings)`, built here when not given. Every batch holds
    `batch_size` trajectories (a last, partial one is filled and trimmed), so one program serves all."""
    decode, invert = inversion_programs(space, settings) if programs is None else programs
    z0s, zts, ts, errors = [], [], [], []
    num_batches = -(-settings.num_trajectories // settings.batch_size)
    t_magnitudes = [float(t) for t in settings.t_values]
    with Progress(num_batches * 2 * len(t_magnitudes), f"trajectories {name}", enabled=None if progress else False) as bar:
        for b in range(num_batches):
            size = min(settings.batch_size, settings.num_trajectories - b * settings.batch_size)
            z0 = space.pool(space.sample(jax.random.fold_in(key, b), settings.batch_size, params))
            start = decode(params, z0)
            for sign in (-1.0, 1.0):
                codes = z0
                for magnitude in t_magnitudes:
                    target, mask = transform(start, name, sign * magnitude)
                    codes, error = invert(params, codes, target, mask)
                    z0s.append(np.asarray(z0[:size])), zts.append(np.asarray(codes[:size]))
                    ts.append(np.full(size, sign * magnitude, np.float32)), errors.append(np.asarray(error[:size]))
                    bar.update(1)
    return tuple(np.concatenate(a) for a in (z0s, zts, ts, errors))


# --- the monotone model ----------------------------------------------------------------------------
def lattice(theta, x, lattice_range: float):
    """g(x) = sum_j theta_j clip(x - p_j, -h, h): p_j the lattice points on [-range, range], h half
    their spacing; non-decreasing for theta >= 0."""
    points = jnp.linspace(-lattice_range, lattice_range, theta.shape[0])
    half = lattice_range / (theta.shape[0] - 1)
    return jnp.sum(theta * jnp.clip(x[..., None] - points, -half, half), axis=-1)


def fit_direction(z0, zt, t, settings: ContinuousFactorsConfig, key) -> tuple[np.ndarray, np.ndarray, float]:
    """(u [D], theta [lattice_size], R²) of t = g(<u, z_t>) - g(<u, z0>) (step 3)."""
    z0, zt, t = (jnp.asarray(a, jnp.float32) for a in (z0, zt, t))
    n, d = z0.shape
    k_init, k_shuffle = jax.random.split(key)
    limit = math.sqrt(6.0 / (d + 1))  # Keras's glorot_uniform for Dense(1)
    params = {"u": jax.random.uniform(k_init, (d,), jnp.float32, -limit, limit),
              "theta": jnp.ones((settings.lattice_size,), jnp.float32)}
    tx = optax.adam(settings.fit_lr)

    def predict(p, a, b):
        return lattice(p["theta"], b @ p["u"], settings.lattice_range) - lattice(p["theta"], a @ p["u"],
                                                                                settings.lattice_range)

    def loss(p, a, b, target):
        fit = jnp.mean((predict(p, a, b) - target) ** 2)
        return fit + settings.l2 * jnp.sum(p["u"] ** 2) + settings.smoothness * jnp.mean(jnp.diff(p["theta"]) ** 2)

    batches = -(-n // settings.fit_batch_size)

    @jax.jit
    def epoch(carry, k):
        order = jax.random.permutation(k, n)
        order = jnp.resize(order, batches * settings.fit_batch_size)  # the last batch wraps around

        def step(carry, idx):
            p, opt = carry
            grad = jax.grad(loss)(p, z0[idx], zt[idx], t[idx])
            updates, opt = tx.update(grad, opt)
            p = optax.apply_updates(p, updates)
            return ({**p, "theta": jnp.maximum(p["theta"], 0.0)}, opt), None  # Keras's NonNeg constraint

        return jax.lax.scan(step, carry, order.reshape(batches, settings.fit_batch_size))[0], None

    (params, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), jax.random.split(k_shuffle, settings.fit_epochs))
    residual = np.asarray(predict(params, z0, zt) - t)
    r2 = 1.0 - float(np.sum(residual ** 2) / max(float(np.sum((np.asarray(t) - np.mean(np.asarray(t))) ** 2)), 1e-12))
    return np.asarray(params["u"], np.float64), np.asarray(params["theta"]), r2


def traverse(codes, direction, alpha):
    """The reference's traversal: codes [N, D] with their coordinate along the unit `direction` set to alpha."""
    direction = jnp.asarray(direction)
    return codes - (codes @ direction)[:, None] * direction + jnp.reshape(alpha, (-1, 1)) * direction


def continuous_factors(source, config: ContinuousFactorsConfig | dict | None = None, key=None, progress: bool = True,
                       **overrides) -> Directions:
    """One direction per transform on a LatentSpace or a generator (its `z` space, as the reference);
    transform order. See the module docstring."""
    settings = configure(ContinuousFactorsConfig, config, overrides)
    space = as_space(source, "z")
    params = space.generator.params
    key = jax.random.key(0) if key is None else key
    vectors, scores, kept, lattices = [], [], [], {}
    programs = inversion_programs(space, settings)
    for i, name in enumerate(settings.transforms):
        k_traj, k_fit = jax.random.split(jax.random.fold_in(key, i))
        z0, zt, t, error = trajectories(space, params, name, settings, k_traj, progress, programs)
        keep = error < np.sort(error)[int(len(error) * (1 - settings.drop_worst))] if settings.drop_worst else \
            np.ones(len(error), bool)
        u, theta, r2 = fit_direction(z0[keep], zt[keep], t[keep], settings, k_fit)
        norm = np.linalg.norm(u)
        if not norm > 0:
            raise ValueError(f"continuous factors: the fitted direction of {name!r} is zero")
        vectors.append(u / norm), scores.append(r2), kept.append(int(keep.sum()))
        lattices[name] = theta.tolist()
    meta = {**settings.to_dict(), "directions": list(settings.transforms), "records_kept": kept,
            "records": 2 * len(settings.t_values) * settings.num_trajectories, "lattice": lattices}
    return Directions(np.stack(vectors), np.asarray(scores), space.spec, "continuous_factors", meta,
                      layer_mask(space, "all", len(vectors)))
