"""MIG, SAP, DCI and linear separability: equal to their references' own computations
(`tests/fixtures/disentanglement/README.md`, on the reference's train / test split), exact values on
hand-made codes, and disentangled codes score above mixed ones."""


import numpy as np
import pytest

import latentjax as lj
from latentjax.metrics.disentanglement import (dci, discretize, disentanglement_completeness, gbt_importance, mig,
                                               mutual_information_matrix, sap_matrix, separability_entropies)

from support import FIXTURES

FIXTURE = FIXTURES / "disentanglement" / "disentanglement_reference.npz"
TRAIN = 400


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
    aligned, mixed = dci(codes, factors, importance="ridge"), dci(codes @ rotation, factors, importance="ridge")
    assert mig(codes, labels) > 0.5 and mig(codes @ rotation, labels) < 0.3
    assert aligned["disentanglement"] > 0.9 and aligned["completeness"] > 0.9 and aligned["informativeness"] > 0.99
    assert mixed["disentanglement"] < 0.6 and mixed["informativeness"] > 0.99  # mixed codes still predict


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="codes"):
        mig(np.zeros((5, 2)), np.zeros((4, 1), int))
    with pytest.raises(ValueError, match="two code dimensions"):
        mig(np.zeros((5, 1)), np.zeros((5, 1), int))


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE))


@pytest.mark.parametrize("bins", [20, 7])
def test_mig_is_disentanglement_libs(ref, bins):
    np.testing.assert_allclose(mutual_information_matrix(ref["codes"], ref["factors"], bins), ref[f"mi_{bins}"],
                               rtol=1e-10, atol=1e-12)
    assert lj.metrics.mig(ref["codes"], ref["factors"], num_bins=bins) == pytest.approx(float(ref[f"mig_{bins}"]),
                                                                                       rel=1e-10)


def test_sap_is_disentanglement_libs(ref):
    codes, factors, continuous = ref["codes"], ref["factors"], ref["continuous_factors"]
    split = dict(train_fraction=TRAIN / len(codes))
    np.testing.assert_allclose(sap_matrix(codes, factors, **split), ref["sap_matrix_discrete"], atol=1e-12)
    assert lj.metrics.sap(codes, factors, **split) == pytest.approx(float(ref["sap_discrete"]), abs=1e-12)
    assert lj.metrics.sap(codes, continuous, continuous_factors=True, **split) == pytest.approx(
        float(ref["sap_continuous"]), rel=1e-10)
    given = lj.metrics.sap(codes[:TRAIN], factors[:TRAIN], test=(codes[TRAIN:], factors[TRAIN:]))
    assert given == pytest.approx(float(ref["sap_discrete"]), abs=1e-12)


def test_dci_is_disentanglement_libs(ref):
    """D and C of the reference's importance matrix equal its D and C of that matrix exactly; the importances themselves
    come from its gradient-boosted trees, which it runs unseeded (three runs of the reference differ by up
    to 0.003), so ours (seeded) match within 0.01."""
    codes, factors = ref["codes"], ref["factors"]
    d, c = disentanglement_completeness(ref["dci_importance"])
    assert (d, c) == pytest.approx((float(ref["dci_importance_disentanglement"]), float(ref["dci_importance_completeness"])),
                                  rel=1e-12)
    importance, _, _ = gbt_importance(codes[:TRAIN], factors[:TRAIN], codes[TRAIN:], factors[TRAIN:])
    np.testing.assert_allclose(importance, ref["dci_importance"], atol=0.01)
    scores = lj.metrics.dci(codes, factors, train_fraction=TRAIN / len(codes))
    assert scores["disentanglement"] == pytest.approx(float(ref["dci_disentanglement"]), abs=0.01)
    assert scores["completeness"] == pytest.approx(float(ref["dci_completeness"]), abs=0.01)
    assert scores["informativeness"] == pytest.approx(float(ref["dci_informativeness_test"]), abs=0.01)
    assert scores["informativeness_train"] == pytest.approx(float(ref["dci_informativeness_train"]), abs=0.01)


def test_dci_of_a_diagonal_importance_is_perfect_and_of_a_uniform_one_zero():
    assert disentanglement_completeness(np.eye(3)) == pytest.approx((1.0, 1.0), abs=1e-8)
    assert disentanglement_completeness(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-8)
    assert disentanglement_completeness(np.zeros((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-8)


def test_linear_separability_is_stylegans(ref):
    for space in ("z", "w"):
        latents = ref[f"ls_{space}"]
        np.testing.assert_allclose(separability_entropies(latents, ref["ls_logits"], num_keep=250),
                                   ref[f"ls_entropies_{space}"], rtol=1e-5, atol=1e-6)
        assert lj.metrics.linear_separability(latents, ref["ls_logits"]) == pytest.approx(
            float(ref[f"ls_score_{space}"]), rel=1e-5)


def test_separable_attributes_score_one_and_random_ones_about_two_per_attribute():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2000, 4))
    assert lj.metrics.linear_separability(z, z[:, :2] * 5) == pytest.approx(1.0, abs=1e-6)
    assert lj.metrics.linear_separability(z, rng.normal(size=(2000, 1))) > 1.8  # H close to 1 bit


def test_discrete_metrics_refuse_continuous_or_constant_factors_and_bad_splits(ref):
    codes = ref["codes"]
    with pytest.raises(ValueError, match="discrete labels"):
        lj.metrics.dci(codes, ref["continuous_factors"])
    with pytest.raises(ValueError, match="discrete labels"):
        lj.metrics.sap(codes, ref["continuous_factors"])
    with pytest.raises(ValueError, match="single value"):
        lj.metrics.sap(codes, np.zeros((600, 1), int))
    with pytest.raises(ValueError, match="train_fraction"):
        lj.metrics.dci(codes, ref["factors"], train_fraction=1.0)
    with pytest.raises(ValueError, match="importance must be one of"):
        lj.metrics.dci(codes, ref["factors"], importance="lasso")
    with pytest.raises(ValueError, match="test codes / factors"):
        lj.metrics.sap(codes, ref["factors"], test=(codes[:, :2], ref["factors"]))
    with pytest.raises(ValueError, match="num_keep"):
        lj.metrics.linear_separability(codes, codes[:, :1], num_keep=1000)
    with pytest.raises(ValueError, match="finite"):
        lj.metrics.mig(np.full((4, 2), np.nan), np.zeros((4, 1), int))
