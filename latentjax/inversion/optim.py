"""The NVIDIA projector's optimisation recipe as optax pieces that compose with `optax.chain`.

stylegan2-ada-pytorch `projector.py` optimises a latent and the generator's noise maps with Adam
under a ramped learning rate, perturbs the latent with decaying Gaussian noise, penalises spatial
autocorrelation of the noise maps at several scales, and renormalises each map to zero mean and
unit variance after every step. Here the schedules are optax schedules (functions of the step
count) and the two noise-map operations are `GradientTransformation`s, so they can be masked to
the noise leaves and chained around any optimiser. `constant_optimizer` is torch's plain SGD or
Adam at a constant learning rate, which the in-domain and multi-code references use.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam")


def projector_lr_schedule(peak_lr: float, steps: int, rampup: float = 0.05, rampdown: float = 0.25) -> optax.Schedule:
    """lr(step) = peak_lr * min(1, t / rampup) * cosine ramp-down over the last `rampdown`, t = step / steps.

    The ramp-down factor is 0.5 - 0.5 cos(pi * min(1, (1 - t) / rampdown)); the learning rate is
    0 at step 0, as in the reference. Ramp lengths are fractions of `steps`; 0 disables a ramp.
    """
    def schedule(count):
        t = jnp.asarray(count, jnp.float32) / steps
        ramp = 0.5 - 0.5 * jnp.cos(jnp.pi * jnp.minimum(1.0, (1.0 - t) / rampdown)) if rampdown > 0 else 1.0
        if rampup > 0:
            ramp = ramp * jnp.minimum(1.0, t / rampup)
        return peak_lr * ramp

    return schedule


def latent_noise_schedule(scale: float, steps: int, ramp: float = 0.75) -> optax.Schedule:
    """std(step) = scale * max(0, 1 - t / ramp)^2, t = step / steps: the latent perturbation's decay."""
    def schedule(count):
        t = jnp.asarray(count, jnp.float32) / steps
        return scale * jnp.square(jnp.maximum(0.0, 1.0 - t / ramp))

    return schedule


def noise_regularization(noise_maps) -> jax.Array:
    """Sum over maps and scales of the squared mean products with the 1-pixel-shifted map (both axes).

    Each [H, W] map is compared with itself rolled (cyclically) by one pixel along W and along H;
    the map is then 2x2 average-pooled and compared again, down to 8x8 (maps of 8x8 or smaller
    are compared once). White noise scores about 0.
    """
    total = jnp.zeros((), jnp.float32)
    for n in jax.tree.leaves(noise_maps):
        while True:
            total += jnp.square(jnp.mean(n * jnp.roll(n, 1, axis=1))) + jnp.square(jnp.mean(n * jnp.roll(n, 1, axis=0)))
            if n.shape[0] <= 8:
                break
            h, w = n.shape[0] // 2, n.shape[1] // 2
            n = n[:2 * h, :2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    return total


def add_noise_regularization(weight: float) -> optax.GradientTransformation:
    """Adds `weight * grad(noise_regularization)(params)` to the updates (apply to noise-map leaves)."""
    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_noise_regularization needs params (call update(updates, state, params))")
        reg_grad = jax.grad(noise_regularization)(params)
        return jax.tree.map(lambda u, g: u + weight * g, updates, reg_grad), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def renormalize(x):
    """x with zero mean and unit mean square (the reference's per-map renormalisation)."""
    x = x - jnp.mean(x)
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x)))


def renormalize_noise() -> optax.GradientTransformation:
    """Rewrites the updates so that each leaf of `params + updates` is renormalised (a projection step)."""
    def update(updates, state, params=None):
        if params is None:
            raise ValueError("renormalize_noise needs params (call update(updates, state, params))")
        return jax.tree.map(lambda u, p: renormalize(p + u) - p, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def projector_optimizer(steps: int, lr: float = 0.1, lr_rampup: float = 0.05, lr_rampdown: float = 0.25,
                        betas: tuple[float, float] = (0.9, 0.999), noise_weight: float = 1e5,
                        noise_mask=None) -> optax.GradientTransformation:
    """Adam under `projector_lr_schedule`; with `noise_mask` (a pytree of bools or a callable, as for
    `optax.masked`) selecting the noise maps, the noise regularisation is added to their gradients
    before Adam and they are renormalised after it."""
    adam = optax.adam(projector_lr_schedule(lr, steps, lr_rampup, lr_rampdown), b1=betas[0], b2=betas[1], eps=1e-8)
    if noise_mask is None:
        return adam
    return optax.chain(optax.masked(add_noise_regularization(noise_weight), noise_mask), adam,
                       optax.masked(renormalize_noise(), noise_mask))


def constant_optimizer(name: str, lr: float) -> optax.GradientTransformation:
    """torch.optim's defaults at a constant learning rate `lr`: 'sgd' (no momentum, no weight decay:
    x -= lr * grad) or 'adam' (betas (0.9, 0.999), eps 1e-8)."""
    if name == "sgd":
        return optax.sgd(lr)
    if name == "adam":
        return optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
