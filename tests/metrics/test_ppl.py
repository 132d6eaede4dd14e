"""Perceptual path length: the reference's interpolation, image preparation and outlier filter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from latentjax.metrics.lpips import load_lpips
from latentjax.metrics.ppl import filtered_mean, path_distances, prepare_images, slerp


def mse(x, y):
    return jnp.mean(jnp.square(x - y), axis=(1, 2, 3))


def test_slerp_moves_along_the_great_circle():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 4, 6))
    t = np.array([[0.0], [0.25], [0.5], [1.0]])
    out = np.asarray(slerp(jnp.asarray(a), jnp.asarray(b), jnp.asarray(t)), np.float64)
    ua, ub = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    angle = np.arccos(np.sum(ua * ub, axis=1))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.arccos(np.clip(np.sum(out * ua, axis=1), -1, 1)), t[:, 0] * angle, atol=1e-3)
    np.testing.assert_allclose(out[3], ub[3], atol=1e-5)


def test_prepare_images_crops_the_face_region_and_box_downsamples():
    x = np.arange(2 * 64 * 64 * 3, dtype=np.float32).reshape(2, 64, 64, 3)
    np.testing.assert_array_equal(prepare_images(x, crop=True), x[:, 24:56, 16:48])
    big = np.random.default_rng(1).normal(size=(1, 512, 512, 3)).astype(np.float32)
    small = np.asarray(prepare_images(jnp.asarray(big), crop=False))
    assert small.shape == (1, 256, 256, 3)
    np.testing.assert_allclose(small[0, 3, 5], big[0, 6:8, 10:12].mean(axis=(0, 1)), rtol=1e-5)


@pytest.mark.parametrize("space_name", ["w", "z"])
def test_path_distances_follow_the_reference_recipe(sg2, space_name):
    space = lj.latent_space(sg2, space_name)
    key = jax.random.key(3)
    got = np.asarray(path_distances(space, sg2.params, mse, key, 4, sampling="full", epsilon=1e-2))
    k_lat, k_t = jax.random.split(key)
    lat = np.asarray(space.sample(k_lat, 8, sg2.params), np.float64)
    t = np.asarray(jax.random.uniform(k_t, (4,)), np.float64)[:, None]
    a, b = lat[0::2], lat[1::2]
    if space_name == "w":  # lerp
        e0, e1 = a + (b - a) * t, a + (b - a) * (t + 1e-2)
    else:  # slerp, written out
        ua, ub = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
        angle = np.arccos(np.sum(ua * ub, axis=1, keepdims=True))
        c = ub - np.sum(ua * ub, axis=1, keepdims=True) * ua
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        e0, e1 = (ua * np.cos(s * angle) + c * np.sin(s * angle) for s in (t, t + 1e-2))
    images = np.asarray(space.decode(sg2.params, jnp.asarray(np.concatenate([e0, e1]), jnp.float32)), np.float64)
    expected = np.mean(np.square(images[:4] - images[4:]), axis=(1, 2, 3)) / 1e-4
    np.testing.assert_allclose(got, expected, rtol=2e-3)


def test_filtered_mean_drops_the_outer_percentiles():
    d = np.concatenate([np.arange(1.0, 99.0), [1e6, -1e6]])
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    assert filtered_mean(d) == pytest.approx(np.mean(d[(d >= lo) & (d <= hi)]))
    assert filtered_mean(d) < 100


def test_ppl_is_the_filtered_mean_of_the_batches_and_takes_an_lpips_model(sg2, fixtures_dir):
    key = jax.random.key(0)
    # epsilon 1e-2: at 1e-4 the float32 image differences carry ~0.3% rounding noise that differs between
    # compiled and eager runs (as in the reference, which is float32 too)
    value = lj.metrics.ppl(sg2, distance=mse, key=key, num_samples=10, batch_size=4, epsilon=1e-2, progress=False)
    space = lj.latent_space(sg2, "w")
    parts = [np.asarray(path_distances(space, sg2.params, mse, jax.random.fold_in(key, i), 4, epsilon=1e-2))
             for i in range(3)]
    assert value == pytest.approx(filtered_mean(np.concatenate(parts)[:10]), rel=1e-4)
    lpips = load_lpips(fixtures_dir / "lpips" / "vgg16_random.pth", fixtures_dir / "lpips" / "lpips_vgg_narrow_lin.pth")
    z_full = lj.metrics.ppl(sg2, distance=lpips, key=key, space="z", sampling="full", num_samples=8, batch_size=4,
                            progress=False)
    assert np.isfinite(z_full) and z_full > 0


def test_bad_settings_are_refused(sg2):
    for kwargs, match in [({"space": "w+"}, "space"), ({"sampling": "mid"}, "sampling"), ({"epsilon": 0}, "epsilon"),
                          ({"num_samples": 0}, "num_samples"), ({"distance": 3}, "distance")]:
        with pytest.raises(ValueError, match=match):
            lj.metrics.ppl(sg2, **{"distance": mse, "key": jax.random.key(0), **kwargs})
