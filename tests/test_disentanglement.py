"""MIG and DCI: exact values on hand-made codes, and disentangled codes score above mixed ones."""

import numpy as np
import pytest

from latentjax.metrics.disentanglement import dci, discretize, mig, mutual_information_matrix


def test_mig_is_one_for_a_code_that_copies_a_factor_and_zero_for_two_copies():
    rng = np.random.default_rng(0)
    factor = rng.integers(0, 2, size=(4000, 1))
    noise = rng.normal(size=(4000, 1))
    assert mig(np.hstack([factor.astype(float), noise]), factor, num_bins=2) == pytest.approx(1.0, abs=0.01)
    assert mig(np.hstack([factor, factor]).astype(float), factor, num_bins=2) == pytest.approx(0.0, abs=1e-12)
    mi = mutual_information_matrix(np.hstack([factor.astype(float), noise]), factor, num_bins=2)
    assert mi[0, 0] == pytest.approx(np.log(2), abs=1e-3) and mi[1, 0] < 0.01


def test_discretize_uses_equal_width_bins_over_the_range():
    np.testing.assert_array_equal(discretize(np.array([0.0, 0.24, 0.26, 0.99, 1.0]), 4), [0, 0, 1, 3, 3])
    np.testing.assert_array_equal(discretize(np.array([[0.0, 5.0], [1.0, 7.0]]), 2), [[0, 0], [1, 1]])


def test_disentangled_codes_score_above_mixed_ones():
    rng = np.random.default_rng(1)
    factors = rng.uniform(size=(3000, 3))
    codes = factors + 0.01 * rng.normal(size=factors.shape)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    labels = discretize(factors, 10)
    aligned, mixed = dci(codes, factors), dci(codes @ rotation, factors)
    assert mig(codes, labels) > 0.5 and mig(codes @ rotation, labels) < 0.3
    assert aligned["disentanglement"] > 0.9 and aligned["completeness"] > 0.9 and aligned["informativeness"] > 0.99
    assert mixed["disentanglement"] < 0.6 and mixed["informativeness"] > 0.99  # mixed codes still predict


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="codes"):
        mig(np.zeros((5, 2)), np.zeros((4, 1), int))
    with pytest.raises(ValueError, match="two code dimensions"):
        mig(np.zeros((5, 1)), np.zeros((5, 1), int))
