"""Generator quality on the shapes world: exact W1, total variation, and the true-render floor."""

import jax
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
