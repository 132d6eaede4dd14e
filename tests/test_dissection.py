"""Unit IoU (Network Dissection): equal to the definition written out unit by unit, exact on planted units."""

import numpy as np
import pytest

import latentjax as lj
from latentjax.metrics.dissection import best_concepts, unit_thresholds


def reference_iou(activations, masks, quantile):
    """NetDissect-Lite's score with an exact quantile, one unit and one concept at a time."""
    n, h, w, units = activations.shape
    out = np.zeros((units, masks.shape[-1]))
    for u in range(units):
        threshold = np.percentile(activations[..., u], 100 * (1 - quantile))
        on = activations[..., u] > threshold
        for c in range(masks.shape[-1]):
            label = masks[..., c]
            both = np.logical_and(on, label).sum()
            out[u, c] = both / (on.sum() + label.sum() - both + 1e-10)
    return out


def test_unit_iou_is_the_definition():
    rng = np.random.default_rng(0)
    activations = rng.normal(size=(6, 9, 7, 5)).astype(np.float32)
    masks = rng.uniform(size=(6, 9, 7, 3)) < [0.02, 0.1, 0.5]
    activations[..., 1] += 3 * masks[..., 0]  # unit 1 follows concept 0
    for q in (0.005, 0.05, 0.3):
        np.testing.assert_allclose(lj.metrics.unit_iou(activations, masks, quantile=q),
                                   reference_iou(activations, masks, q), rtol=1e-12, atol=1e-12)


def test_a_unit_that_fires_exactly_on_a_concept_has_iou_one():
    masks = np.zeros((4, 10, 10, 2), bool)
    masks[:, :2, :5, 0] = True  # 40 of 400 pixels: the top 10%
    masks[:, 5:, :, 1] = True
    activations = np.stack([masks[..., 0].astype(np.float32), -masks[..., 0].astype(np.float32)], axis=-1)
    iou = lj.metrics.unit_iou(activations, masks, quantile=0.1)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 1] == 0.0
    assert unit_thresholds(activations, 0.1)[0] == pytest.approx(0.1)  # linear, between the last 0 and the first 1
    best, score, detector = best_concepts(iou)
    assert best[0] == 0 and score[0] == pytest.approx(1.0) and detector[0] and not detector[1]


def test_bad_inputs_name_what_was_expected():
    with pytest.raises(ValueError, match="NHWC"):
        lj.metrics.unit_iou(np.zeros((4, 4, 3)), np.zeros((4, 4, 3, 1), bool))
    with pytest.raises(ValueError, match="resolution"):
        lj.metrics.unit_iou(np.zeros((2, 4, 4, 3)), np.zeros((2, 8, 8, 1), bool))
    with pytest.raises(ValueError, match="binary"):
        lj.metrics.unit_iou(np.zeros((2, 4, 4, 3)), np.full((2, 4, 4, 1), 0.5))
    with pytest.raises(ValueError, match="quantile"):
        lj.metrics.unit_iou(np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4, 1), bool), quantile=1.5)
