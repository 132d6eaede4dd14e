"""The shapes read-out: its constants match a fine raster, components are counted right, clean
renders are valid and corrupted ones are not, errors respect periodicity, batches are independent.
Per-factor accuracy on renders is tested in test_world.py."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax import shapes
from latentjax.shapes import reading as F


def single(shape, resolution, **values):
    factors = {"shape": shapes.SHAPES.index(shape), "x": 0.5, "y": 0.5, "scale": 1.0, "rotation": 0.0,
               "hue": 0.3, "background": 0.2}
    factors.update(values)
    return {name: np.asarray([v], np.int32 if name == "shape" else np.float32) for name, v in factors.items()}


@pytest.mark.parametrize("shape,k,constant", [("square", 4, F.SQUARE_C4), ("triangle", 3, F.TRIANGLE_C3)])
def test_shape_moment_constants_and_phases_match_a_fine_raster(shape, k, constant):
    """|c_k| / A^(1 + k/2) of the ideal shape, and arg(c_k) at rotation 0 = k * vertex angle."""
    res = 512
    mask = np.asarray(shapes.render(single(shape, res), res).object_mask[0], np.float64)
    coords = np.arange(res) + 0.5
    area = mask.sum()
    cx, cy = (mask.sum(0) * coords).sum() / area, (mask.sum(1) * coords).sum() / area
    z = (coords[None, :] - cx) - 1j * (coords[:, None] - cy)
    moment = (mask * z ** k).sum()
    np.testing.assert_allclose(abs(moment) / area ** (1 + k / 2), constant, rtol=2e-3)
    vertex = np.pi / 4 if shape == "square" else np.pi / 2
    np.testing.assert_allclose(np.exp(1j * np.angle(moment)), np.exp(1j * k * vertex), atol=1e-3)
    idx = shapes.SHAPES.index(shape)
    np.testing.assert_allclose(area, F.SHAPE_AREA[idx] * (res * shapes.RADIUS_RANGE[1]) ** 2, rtol=1e-3)


def test_rgb_to_hue_matches_colorsys():
    rgb = np.random.default_rng(0).uniform(size=(200, 3)).astype(np.float32)
    expected = [colorsys.rgb_to_hsv(*c)[0] for c in rgb]
    np.testing.assert_allclose(jax.jit(F.rgb_to_hue)(rgb), expected, atol=1e-5)
    hues = np.linspace(0, 1, 50, endpoint=False, dtype=np.float32)
    circular = np.abs(np.asarray(jax.jit(lambda h: F.rgb_to_hue(shapes.hsv_to_rgb(h)))(hues)) - hues)
    assert np.minimum(circular, 1 - circular).max() < 1e-5


def _masks(*pictures):
    return jnp.asarray(np.stack([np.array([[c == "#" for c in row] for row in p]) for p in pictures]))


def test_count_objects_uses_8_connectivity_and_follows_long_paths():
    spiral = ["#########",
              "........#",
              ".######.#",
              ".#....#.#",
              ".#.##.#.#",
              ".#..#.#.#",
              ".####.#.#",
              "......#.#",
              "#######.#"]
    combs = ["#.#.#.#.#",
             "#.#.#.#.#",
             "#########",
             ".........",
             "#########",
             "#.#.#.#.#",
             "#.#.#.#.#",
             ".........",
             "........."]
    diagonal_and_dots = ["#........",
                         ".#.......",
                         "..#...#..",
                         ".........",
                         "#.......#",
                         ".........",
                         "....#....",
                         ".........",
                         "........#"]
    empty = ["." * 9] * 9
    counts = F.count_objects(_masks(spiral, combs, diagonal_and_dots, empty))
    # an outer hook around an inner spiral that never touches it, even diagonally; two combs;
    # a diagonal line and five dots
    np.testing.assert_array_equal(counts, [2, 2, 6, 0])


@pytest.fixture(scope="module")
def renders32():
    images, factors = shapes.sample(jax.random.key(6), 64, 32)
    return images, {name: np.asarray(value) for name, value in factors.items()}


def test_clean_renders_are_valid(renders32):
    images, _ = renders32
    out = F.readout(images)
    assert np.all(out["num_objects"] == 1) and np.all(out["valid"])
    assert float(out["rerender_error"].max()) < 0.5 * F.VALID_TOL
    # small noise is below the noise floor: still valid
    noisy = images + 0.01 * np.random.default_rng(0).standard_normal(images.shape, np.float32)
    assert np.all(F.is_valid(noisy))


def test_corrupted_renders_are_invalid(renders32):
    images, factors = renders32
    # a half-way blend with another shape at the same place
    other = shapes.render({**factors, "shape": (factors["shape"] + 1) % 3}, 32).images
    assert not np.any(F.is_valid(0.5 * images + 0.5 * other))
    # two separate objects: top-left and bottom-right corners of the centre range
    zeros, ones = np.zeros(64, np.float32), np.ones(64, np.float32)
    a = shapes.render({**factors, "x": zeros, "y": zeros, "scale": zeros}, 32)
    b = shapes.render({**factors, "x": ones, "y": ones, "scale": zeros, "hue": (factors["hue"] + 0.3) % 1}, 32)
    two = np.where(np.asarray(b.object_mask)[..., None] > 0, b.images, a.images)
    out = F.readout(two)
    np.testing.assert_array_equal(out["num_objects"], 2)
    assert not np.any(out["valid"])
    # a blank background: no object, finite estimates
    blank = np.broadcast_to(np.asarray(images)[:, :1, :1], images.shape)
    out = F.readout(blank)
    np.testing.assert_array_equal(out["num_objects"], 0)
    assert not np.any(out["valid"])
    assert all(np.isfinite(np.asarray(out[name], np.float32)).all() for name in shapes.FACTOR_NAMES)


def test_readout_is_per_image_and_tol_is_applied(renders32):
    images, _ = renders32
    batch = F.readout(images)
    shuffled = F.readout(images[::-1])  # the same images at other positions in the batch
    for name in shapes.FACTOR_NAMES + ("num_objects", "rerender_error"):
        np.testing.assert_allclose(shuffled[name][::-1], batch[name], rtol=1e-5, atol=1e-6)
    assert not np.any(F.is_valid(images, tol=0.0))


def test_factor_errors_are_circular_and_skip_circle_rotation():
    truth = {"shape": np.array([0, 1, 2]), "x": np.array([0.2, 0.5, 0.9]), "y": np.zeros(3), "scale": np.zeros(3),
             "rotation": np.array([0.3, 0.95, 0.5]), "hue": np.array([0.98, 0.1, 0.5]), "background": np.zeros(3)}
    estimate = {**truth, "shape": np.array([0, 2, 2]), "x": np.array([0.25, 0.5, 0.8]),
                "rotation": np.array([0.9, 0.05, 0.75]), "hue": np.array([0.03, 0.6, 0.5])}
    errors = F.factor_errors(estimate, truth)
    np.testing.assert_allclose(errors["shape"], [0, 1, 0])
    np.testing.assert_allclose(errors["x"], [0.05, 0, 0.1], atol=1e-6)
    np.testing.assert_allclose(errors["rotation"], [np.nan, 0.1, 0.25], atol=1e-6)
    np.testing.assert_allclose(errors["hue"], [0.05, 0.5, 0], atol=1e-6)
    summary = F.summarize_errors(errors)
    np.testing.assert_allclose([summary["shape_accuracy"], summary["rotation_mae"]], [2 / 3, 0.175], atol=1e-6)


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match=r"square RGB \[n, H, W, 3\]"):
        F.readout(jnp.zeros((2, 32, 16, 3)))
    with pytest.raises(ValueError, match="at least 8 pixels"):
        F.readout(jnp.zeros((2, 4, 4, 3)))
