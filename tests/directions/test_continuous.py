"""Continuous factors (Plumerault et al.): the transforms and their masks, the blurred masked error
against a direct 2-D convolution, the monotone lattice, the fit recovering a planted direction, and
the method on a tiny generator."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.directions import ContinuousFactorsConfig, continuous_factors
from latentjax.directions.continuous import (blur_taps, blurred_mse, fit_direction, lattice, transform,
                                             traverse)


def test_translations_shift_with_zero_fill_and_mask_the_band():
    images = jax.random.uniform(jax.random.key(0), (2, 10, 10, 3), minval=-1, maxval=1)
    target, mask = transform(images, "translate_x", 0.3)  # int(0.3 * 10) = 3 pixels to the right
    np.testing.assert_array_equal(target[:, :, 3:], images[:, :, :7])
    assert float(jnp.abs(target[:, :, :3]).max()) == 0 and float(mask[:, :, :3].max()) == 0
    assert float(mask[:, :, 3:].min()) == 1
    target, mask = transform(images, "translate_y", -0.2)  # 2 pixels up
    np.testing.assert_array_equal(target[:, :8], images[:, 2:])
    assert float(mask[:, 8:].max()) == 0
    target, mask = transform(images, "brightness", 0.5)
    np.testing.assert_allclose(target, jnp.clip(images + 0.5, -1, 1))
    assert float(mask.min()) == 1
    with pytest.raises(ValueError, match="rotate"):
        transform(images, "rotate", 0.1)


def test_zoom_crops_in_and_pads_out():
    images = jnp.broadcast_to(jnp.linspace(-1, 1, 12)[None, None, :, None], (1, 12, 12, 1))
    zoomed_in, mask_in = transform(images, "zoom", 0.5)  # crop the central 8 columns, stretch them to 12
    assert float(zoomed_in[0, 6, 0, 0]) > float(images[0, 6, 0, 0]) and float(mask_in.min()) > 1 - 1e-6
    zoomed_out, mask_out = transform(images, "zoom", -0.25)  # pad to 16 with zeros, shrink to 12
    assert float(mask_out[0, 6, 0, 0]) < 1 and float(mask_out[0, 6, 6, 0]) == 1
    np.testing.assert_allclose(transform(images, "zoom", 0.0)[0], images, atol=1e-6)


def test_blurred_error_is_the_references_2d_convolution():
    sigma = 1.5
    taps = blur_taps(sigma)
    assert len(taps) == 9
    kernel = np.outer(taps, taps) / (math.sqrt(2 * math.pi) * sigma)  # the reference's unnormalised kernel
    error = jax.random.normal(jax.random.key(1), (2, 12, 10, 3))
    depthwise = jnp.tile(jnp.asarray(kernel, jnp.float32)[:, :, None, None], (1, 1, 1, 3))
    blurred = jax.lax.conv_general_dilated(error, depthwise, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                           feature_group_count=3, precision=jax.lax.Precision.HIGHEST)
    mask = jnp.ones_like(error).at[1, :, :4].set(0.0)
    expected = jnp.mean(blurred ** 2 * mask, axis=(1, 2, 3)) / jnp.mean(mask)  # the batch's mean mask
    np.testing.assert_allclose(blurred_mse(error, jnp.zeros_like(error), mask, sigma), expected, rtol=1e-5)


def test_lattice_is_monotone_piecewise_linear():
    theta = jnp.array([1.0, 0.0, 2.0])  # points -1, 0, 1 (half spacing 0.5)
    x = jnp.linspace(-2, 2, 41)
    g = lattice(theta, x, 1.0)
    assert bool(jnp.all(jnp.diff(g) >= -1e-7))
    # g(x) = 1 clip(x + 1) + 0 clip(x) + 2 clip(x - 1), each clip to [-0.5, 0.5]
    np.testing.assert_allclose(lattice(theta, jnp.array([-1.0, 0.0, 1.0, 3.0]), 1.0), [-1.0, -0.5, 0.5, 1.5], atol=1e-6)


def test_fit_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    u = np.zeros(6)
    u[2] = 1.0
    z0 = rng.normal(size=(400, 6))
    t = rng.choice([-0.5, -0.3, -0.1, 0.1, 0.3, 0.5], size=400)
    zt = z0 + np.outer(2.0 * t, u) + 0.01 * rng.normal(size=(400, 6))  # moving 2 units along u adds t
    settings = ContinuousFactorsConfig(fit_epochs=200)  # from a random start, u needs ~2,500 Adam steps at 1e-3
    found, theta, r2 = fit_direction(z0, zt, t, settings, jax.random.key(0))
    assert abs(found @ u) / np.linalg.norm(found) > 0.95 and r2 > 0.9 and bool(np.all(theta >= 0))


@pytest.mark.parametrize("changes, message", [
    (dict(transforms=("rotate",)), "transforms"), (dict(t_values=(0.0,)), "t_values"),
    (dict(drop_worst=1.0), "drop_worst"), (dict(lattice_size=1), "lattice"), (dict(sigma=0.0), "sigma"),
])
def test_config_refuses_nonsense(changes, message):
    with pytest.raises(ValueError, match=message):
        ContinuousFactorsConfig.from_dict(changes)


def test_directions_on_a_tiny_generator():
    config = StyleGAN2Config(z_dim=6, w_dim=6, img_resolution=16, img_channels=3, channels=(8, 8, 8), mapping_layers=1)
    G = StyleGAN2.init(config, jax.random.key(0))
    d = continuous_factors(G, transforms=("translate_x", "brightness"), num_trajectories=5, batch_size=3,
                           inversion_steps=5, t_values=(0.2, 0.4), fit_epochs=5, progress=False)
    assert d.method == "continuous_factors" and d.space["name"] == "z" and d.vectors.shape == (2, 6)
    assert d.settings["directions"] == ["translate_x", "brightness"] and d.settings["records"] == 20
    assert d.settings["records_kept"] == [18, 18]  # the worst 10% of 5 trajectories x 2 signs x 2 t dropped
    np.testing.assert_allclose(np.linalg.norm(d.vectors, axis=1), 1.0, rtol=1e-6)
    codes = jax.random.normal(jax.random.key(2), (4, 6))
    moved = traverse(codes, d.vectors[0], jnp.full(4, 1.5))
    np.testing.assert_allclose(moved @ d.vectors[0], 1.5, rtol=1e-5)
    np.testing.assert_allclose(moved - codes, np.outer((moved - codes) @ d.vectors[0], d.vectors[0]), atol=1e-5)
