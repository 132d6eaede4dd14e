"""The procedural shapes world: geometry and colours as documented, masks consistent with the
images, determinism, jit == eager, clear errors, and factors that survive a render -> read-out trip."""

import colorsys
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax import shapes
from latentjax.shapes import reading as readout_lib

# Read-out accuracy on exact renders (normalised factor units; rotation as a fraction of the
# symmetry period, circles excluded): (mean abs error, max abs error) per factor and resolution.
# Measured with benchmarks/shapes_readout.py on 2048 samples: 32 px means 0.0007 (x, y), 0.004
# (scale), 0.002 (rotation), max 0.02; 64 px about 4x smaller. Hue and background are exact.
READOUT_TOLERANCE = {
    32: {"x": (0.002, 0.01), "y": (0.002, 0.01), "scale": (0.008, 0.03), "rotation": (0.005, 0.03),
         "hue": (1e-4, 1e-3), "background": (1e-4, 1e-3)},
    64: {"x": (0.001, 0.005), "y": (0.001, 0.005), "scale": (0.003, 0.012), "rotation": (0.0015, 0.01),
         "hue": (1e-4, 1e-3), "background": (1e-4, 1e-3)},
}


def one(shape, **values):
    """A single factor vector: centred, mid-sized, unrotated red on mid grey unless overridden."""
    factors = {"shape": shapes.SHAPES.index(shape), "x": 0.5, "y": 0.5, "scale": 0.5, "rotation": 0.0,
               "hue": 0.0, "background": 0.5}
    factors.update(values)
    return {name: np.asarray([value], np.int32 if name == "shape" else np.float32)
            for name, value in factors.items()}


def render_one(shape, resolution=64, **values):
    return jax.tree.map(lambda x: np.asarray(x[0]), shapes.render(one(shape, **values), resolution))


@pytest.mark.parametrize("resolution", [32, 64])
def test_sample_shapes_dtypes_and_ranges(resolution):
    images, factors = shapes.sample(jax.random.key(0), 64, resolution)
    assert images.shape == (64, resolution, resolution, 3) and images.dtype == jnp.float32
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
    assert set(factors) == set(shapes.FACTOR_NAMES)
    assert factors["shape"].dtype == jnp.int32 and set(np.unique(factors["shape"])) == {0, 1, 2}
    for name in shapes.FACTOR_NAMES[1:]:
        assert factors[name].shape == (64,) and factors[name].dtype == jnp.float32
        assert 0.0 <= float(factors[name].min()) and float(factors[name].max()) < 1.0


def test_masks_recompose_the_image_from_documented_colours():
    """image = object_mask * HSV(hue, S, V) + background_mask * grey, checked against colorsys."""
    images, factors = shapes.sample(jax.random.key(1), 64, 32)
    out = shapes.render(factors, 32)
    np.testing.assert_array_equal(out.images, images)
    np.testing.assert_allclose(out.object_mask + out.background_mask, 1.0, atol=1e-6)
    assert float(out.object_mask.min()) >= 0.0 and float(out.object_mask.max()) <= 1.0
    colours = np.array([colorsys.hsv_to_rgb(h, shapes.SATURATION, shapes.VALUE) for h in np.asarray(factors["hue"])])
    greys = np.interp(np.asarray(factors["background"]), [0, 1], shapes.GREY_RANGE)
    recomposed = (np.asarray(out.object_mask)[..., None] * colours[:, None, None, :]
                  + np.asarray(out.background_mask)[..., None] * greys[:, None, None, None])
    np.testing.assert_allclose(images, 2 * recomposed - 1, atol=1e-5)
    # fully covered pixels exist in every image, and the one-pixel border is pure background
    assert np.all(np.asarray(out.object_mask).max(axis=(1, 2)) == 1.0)
    mask = np.asarray(out.object_mask)
    border = np.concatenate([mask[:, [0, -1]].reshape(64, -1), mask[:, :, [0, -1]].reshape(64, -1)], 1)
    assert np.all(border == 0.0)


@pytest.mark.parametrize("shape,area_per_r2",
                         [("circle", math.pi), ("square", 2.0), ("triangle", 3 * math.sqrt(3) / 4)])
@pytest.mark.parametrize("x,y,scale,rotation", [(0.0, 1.0, 0.0, 0.3), (0.7, 0.2, 1.0, 0.8)])
def test_geometry_matches_documented_ranges(shape, area_per_r2, x, y, scale, rotation):
    """Mask area = shape area at the documented circumradius; mask centroid = documented centre."""
    res = 64
    mask = render_one(shape, res, x=x, y=y, scale=scale, rotation=rotation).object_mask
    radius = res * np.interp(scale, [0, 1], shapes.RADIUS_RANGE)
    np.testing.assert_allclose(mask.sum(), area_per_r2 * radius ** 2, rtol=0.01)
    coords = np.arange(res) + 0.5
    centre = res * np.interp([x, y], [0, 1], shapes.CENTER_RANGE)
    np.testing.assert_allclose([(mask.sum(0) * coords).sum() / mask.sum(), (mask.sum(1) * coords).sum() / mask.sum()],
                               centre, atol=0.02)


def test_extreme_factors_stay_inside_the_frame():
    corners = list(itertools.product([0.0, 1.0], [0.0, 1.0]))
    factors = {"shape": np.repeat(np.arange(3, dtype=np.int32), 4), "x": np.tile([c[0] for c in corners], 3),
               "y": np.tile([c[1] for c in corners], 3), "scale": np.ones(12), "rotation": np.full(12, 0.125),
               "hue": np.zeros(12), "background": np.zeros(12)}
    mask = np.asarray(shapes.render(factors, 20).object_mask)
    assert np.all(mask[:, [0, -1]] == 0) and np.all(mask[:, :, [0, -1]] == 0)


def test_rotation_is_periodic_counter_clockwise_and_ignored_for_circles():
    img = lambda shape, r: render_one(shape, 64, rotation=r).images  # noqa: E731
    for shape in ("square", "triangle"):
        np.testing.assert_allclose(img(shape, 0.0), img(shape, 1.0), atol=1e-5)  # one symmetry period
        assert np.abs(img(shape, 0.0) - img(shape, 0.3)).max() > 0.5
    np.testing.assert_array_equal(img("circle", 0.0), img("circle", 0.37))
    # rotation 0: square axis-aligned (transpose-symmetric), triangle vertex up (mirror-symmetric)
    np.testing.assert_allclose(img("square", 0.0), img("square", 0.0).transpose(1, 0, 2), atol=1e-5)
    np.testing.assert_allclose(img("triangle", 0.0), img("triangle", 0.0)[:, ::-1], atol=1e-5)
    np.testing.assert_allclose(img("triangle", 0.5), img("triangle", 0.0)[::-1], atol=1e-5)  # 60 deg: vertex down
    # 30 deg counter-clockwise puts a vertex at 0 deg (pointing right), the flat side on the left
    mask = render_one("triangle", 64, rotation=0.25).object_mask
    np.testing.assert_allclose(mask, mask[::-1], atol=1e-5)
    cols = np.nonzero(mask.max(0) > 0.5)[0] + 0.5
    assert cols.max() - 32 > 1.5 * (32 - cols.min())


def test_sampling_is_deterministic_and_stream_folds_in_the_step():
    key = jax.random.key(3)
    a, fa = shapes.sample(key, 64, 32)
    b, fb = shapes.sample(key, 64, 32)
    np.testing.assert_array_equal(a, b)
    jax.tree.map(np.testing.assert_array_equal, fa, fb)
    assert np.abs(np.asarray(a - shapes.sample(jax.random.key(4), 64, 32)[0])).max() > 0.1
    batches = list(itertools.islice(shapes.stream(key, 64, 32), 3))
    for step, (images, factors) in enumerate(batches):
        expected, expected_factors = shapes.sample(jax.random.fold_in(key, step), 64, 32)
        np.testing.assert_array_equal(images, expected)
        jax.tree.map(np.testing.assert_array_equal, factors, expected_factors)
    assert np.abs(np.asarray(batches[0][0] - batches[1][0])).max() > 0.1


def test_jit_matches_eager():
    """`render` (jitted inside) and `render` under an outer jit agree with op-by-op execution."""
    images, factors = shapes.sample(jax.random.key(5), 64, 32)
    with jax.disable_jit():
        eager = shapes.render(factors, 32)
    np.testing.assert_allclose(eager.images, images, atol=1e-5)
    jitted = jax.jit(shapes.render, static_argnums=1)(factors, 32)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), jitted, eager)


@pytest.mark.parametrize("change,message", [
    (lambda f: f.pop("hue"), "missing ['hue']"),
    (lambda f: f.update(colour=np.zeros(1, np.float32)), "unknown ['colour']"),
    (lambda f: f.update(x=np.zeros((1, 1), np.float32)), "factor 'x' must be a 1-D array"),
    (lambda f: f.update(y=np.zeros(2, np.float32)), "factor 'y' has 2 values"),
    (lambda f: f.update(shape=np.zeros(1, np.float32)), "factor 'shape' must be an integer index"),
    (lambda f: f.update(shape=np.array([3], np.int32)), "factor 'shape' must be an index in 0..2"),
    (lambda f: f.update(scale=np.array([1.5], np.float32)), "factor 'scale' must be in [0, 1]; value 1.5"),
    (lambda f: f.update(rotation=np.array([-0.1], np.float32)), "factor 'rotation' must be in [0, 1]"),
    (lambda f: f.update(background=np.array([np.nan], np.float32)), "factor 'background' must be in [0, 1]"),
    (lambda f: f.update(hue=np.array([True])), "factor 'hue' must be real numbers"),
])
def test_bad_factors_name_the_factor(change, message):
    factors = one("square")
    change(factors)
    with pytest.raises(ValueError) as info:
        shapes.render(factors, 32)
    assert message in str(info.value)


def test_under_jit_shapes_are_checked_but_values_are_not():
    render = jax.jit(shapes.render, static_argnums=1)
    out_of_range = one("square", x=1.5)
    assert render(out_of_range, 32).images.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="factor 'x' must be a 1-D array"):
        render({**out_of_range, "x": np.zeros((1, 1), np.float32)}, 32)


@pytest.mark.parametrize("call,message", [
    (lambda: shapes.render(one("circle"), 4), "resolution must be an int >= 8"),
    (lambda: shapes.sample(jax.random.key(0), 2.0, 32), "n must be a non-negative int"),
    (lambda: shapes.stream(jax.random.key(0), -1, 32), "batch_size must be a non-negative int"),
    (lambda: shapes.render([1, 2], 32), "factors must be a dict"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("resolution", [32, 64])
def test_factors_round_trip_through_the_readout(resolution):
    images, factors = shapes.sample(jax.random.key(6), 64, resolution)
    errors = readout_lib.factor_errors(readout_lib.readout(images), factors)
    assert float(errors["shape"].mean()) == 0.0
    for name, (mean_tol, max_tol) in READOUT_TOLERANCE[resolution].items():
        error = np.asarray(errors[name])
        error = error[~np.isnan(error)]  # rotation of circles is undefined
        assert error.mean() < mean_tol and error.max() < max_tol, (name, error.mean(), error.max())
