"""Generator quality on the shapes world: exact W1, total variation, and the true-render floor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax import shapes
from latentjax.shapes import reading as factors
from latentjax.shapes import quality as shapes_quality


def test_w1_to_uniform_is_exact():
    assert shapes_quality.w1_to_uniform(np.zeros(7)) == pytest.approx(0.5)
    assert shapes_quality.w1_to_uniform(np.ones(3)) == pytest.approx(0.5)
    assert shapes_quality.w1_to_uniform([0.5]) == pytest.approx(0.25)
    # the n-point midpoint grid is the closest n-point set to U(0, 1): W1 = 1 / (4n)
    n = 10
    assert shapes_quality.w1_to_uniform((np.arange(n) + 0.5) / n) == pytest.approx(1 / (4 * n))


def test_factor_distances_see_a_collapsed_factor():
    n = 300
    estimates = {name: np.random.RandomState(i).rand(n) for i, name in enumerate(shapes.FACTOR_NAMES)}
    estimates["shape"] = np.zeros(n, np.int64)             # every sample a circle
    estimates["x"] = np.full(n, 0.5)                       # x collapsed to the centre
    valid = np.ones(n, bool)
    d = shapes_quality.factor_distances(estimates, valid)
    assert d["shape"] == pytest.approx(2 / 3)
    assert d["x"] == pytest.approx(0.25)
    assert d["y"] < 0.05
    assert np.isnan(d["rotation"])                         # no non-circles: rotation is undefined
    half = valid.copy()
    half[::2] = False                                      # only valid samples count
    assert shapes_quality.factor_distances(estimates, half)["x"] == pytest.approx(0.25)


def test_true_renders_are_valid_and_close_to_the_prior():
    result = shapes_quality.true_render_quality(jax.random.key(0), 32, num_samples=512, batch_size=256)
    assert result["num_samples"] == 512 and result["valid_fraction"] > 0.99
    at = result["valid_fraction_at"]
    assert at[str(factors.VALID_TOL)] == result["valid_fraction"] and list(at.values()) == sorted(at.values())
    assert result["rerender_error_percentiles"]["90"] < 0.005  # exact renders (see factors' docstring)
    assert result["distances"]["shape"] < 0.08
    assert max(v for k, v in result["distances"].items() if k != "shape") < 0.05
    histograms = result["histograms"]
    assert set(histograms) == set(shapes.FACTOR_NAMES[1:]) and all(len(c) == 10 for c in histograms.values())
    assert sum(histograms["x"]) == round(512 * result["valid_fraction"]) > sum(histograms["rotation"])  # no circles
    assert min(histograms["hue"]) > 0.5 * sum(histograms["hue"]) / 10  # the prior is uniform


def test_render_error_is_the_read_outs_measure_and_refitting_factors_only_lowers_it():
    """render_error is the read-out's own measure for any factors (zero for the true ones, large for
    factors half a pixel off); refitting keeps clean renders clean and lowers a blurred image's error."""
    world, reading = shapes.world, shapes.reading
    truth = world.sample_factors(jax.random.key(3), 16)
    images = world.render(truth, 32).images
    out = reading.readout(images)
    read = {name: out[name] for name in world.FACTOR_NAMES}
    np.testing.assert_allclose(reading.render_error(images, read), out["rerender_error"], atol=1e-7)
    assert float(jnp.max(reading.render_error(images, truth))) < 1e-3
    assert float(jnp.min(reading.render_error(images, {**read, "x": jnp.clip(read["x"] + 0.04, 0, 0.99)}))) > 0.01
    clean = shapes_quality.refitted_errors(images, steps=50)
    assert float(jnp.max(clean["refitted"])) < 1e-3 and bool(jnp.all(clean["one_object"]))
    np.testing.assert_array_equal(clean["shape"], truth["shape"])
    blurred = 0.5 * images + 0.5 * jax.lax.reduce_window(images, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), "SAME") / 9
    refit = shapes_quality.refitted_errors(blurred, steps=50)
    assert float(jnp.median(refit["readout"])) > 0.01
    assert float(jnp.median(refit["refitted"])) < float(jnp.median(refit["readout"]))


def test_wrap_excursions_tell_a_line_from_a_circle():
    """Hue from the normal CDF of one latent coordinate (0 and 1 at the two ends of the space) against
    hue as the angle of two coordinates (the ends joined): only the first sends straight paths across
    the wrap the long way round; paths across 0.5 stay short in both."""
    latents = np.asarray(jax.random.normal(jax.random.key(0), (400, 2)))
    fixed = {"shape": 1, "x": 0.5, "y": 0.5, "scale": 0.7, "rotation": 0.3, "background": 0.2}

    def renderer(hue_of):
        def decode(u):
            factors = {k: jnp.full(u.shape[0], v, jnp.int32 if k == "shape" else jnp.float32) for k, v in fixed.items()}
            return shapes.render({**factors, "hue": hue_of(u)}, 32).images
        return decode

    line = renderer(lambda u: jnp.clip(jax.scipy.stats.norm.cdf(u[:, 0]), 0.0, 1.0 - 1e-6))
    circle = renderer(lambda u: (jnp.arctan2(u[:, 1], u[:, 0]) / (2 * jnp.pi)) % 1.0)
    on_line = shapes_quality.wrap_excursions(line, latents, "hue", points=5)
    on_circle = shapes_quality.wrap_excursions(circle, latents, "hue", points=5)
    assert min(on_line["wrap"]["pairs"], on_circle["wrap"]["pairs"], on_line["control"]["pairs"]) >= 10
    assert on_line["wrap"]["long_way"] == 1.0 and on_line["wrap"]["median_excursion"] > 0.4
    assert on_circle["wrap"]["long_way"] == 0.0 and on_circle["wrap"]["median_excursion"] < 0.1
    assert on_line["control"]["long_way"] == 0.0 and on_circle["control"]["long_way"] == 0.0
    with pytest.raises(ValueError, match="periodic factors"):
        shapes_quality.wrap_excursions(line, latents, "x")
