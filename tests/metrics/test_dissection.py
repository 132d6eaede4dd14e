"""Unit IoU (Network Dissection): equal to the definition written out unit by unit, exact on planted
units; the streamed dissection agrees with it; the world's concept masks are exact."""

import jax
import numpy as np
import pytest

import latentjax as lj
from latentjax.metrics.dissection import best_concepts, dissect, unit_thresholds
from latentjax.shapes.concepts import concept_masks, concept_names
from support import run_python


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


def _batches(activations, masks, size):
    return lambda: ((activations[i:i + size], masks[i:i + size]) for i in range(0, len(activations), size))


def test_streamed_dissection_matches_the_exact_one():
    rng = np.random.default_rng(4)
    masks = rng.uniform(size=(24, 8, 8, 3)) < [0.05, 0.2, 0.5]
    activations = rng.gamma(2.0, size=(24, 8, 8, 6)).astype(np.float32)
    activations[..., 2] += 4 * masks[..., 1]
    exact = lj.metrics.unit_iou(activations, masks, quantile=0.05)
    streamed = dissect(_batches(activations, masks, 5), quantile=0.05, bins=1 << 14, progress=False)
    exact_thresholds, flat = unit_thresholds(activations, 0.05), activations.reshape(-1, 6)
    low, high = np.minimum(streamed.thresholds, exact_thresholds), np.maximum(streamed.thresholds, exact_thresholds)
    assert np.all(np.sum((flat > low) & (flat < high), axis=0) <= 1)  # at most the one value numpy interpolates to
    np.testing.assert_allclose(streamed.iou, exact, atol=0.01)
    assert streamed.pixels == 24 * 64 and np.argmax(streamed.iou[2]) == 1


def test_streamed_dissection_upsamples_activations_to_the_masks():
    rng = np.random.default_rng(5)
    activations = rng.normal(size=(6, 4, 4, 3)).astype(np.float32)
    masks = rng.uniform(size=(6, 8, 8, 2)) < 0.3
    got = dissect(_batches(activations, masks, 6), quantile=0.1, bins=1 << 16, progress=False)
    up = np.asarray(jax.image.resize(activations, (6, 8, 8, 3), "bilinear"))  # half-pixel centres, as PIL's resize
    on, labels = (up > got.thresholds).reshape(-1, 3), masks.reshape(-1, 2)
    both = on.T.astype(float) @ labels
    expected = both / (on.sum(0)[:, None] + labels.sum(0)[None] - both + 1e-10)
    np.testing.assert_allclose(got.iou, expected, rtol=1e-12)
    assert got.pixels == 6 * 16  # thresholds are taken over the activations' own pixels


def test_world_concepts_are_exact_masks_of_the_factors():
    factors = {"shape": np.array([0, 1, 2], np.int32), "x": np.array([0.1, 0.5, 0.9], np.float32),
               "y": np.array([0.5, 0.5, 0.5], np.float32), "scale": np.full(3, 0.5, np.float32),
               "rotation": np.zeros(3, np.float32), "hue": np.array([0.05, 0.5, 0.95], np.float32),
               "background": np.full(3, 0.5, np.float32)}
    names = concept_names()
    masks = np.asarray(concept_masks(factors, 32))
    assert masks.shape == (3, 32, 32, len(names)) and masks.dtype == bool
    column = {name: masks[..., i] for i, name in enumerate(names)}
    obj = np.asarray(lj.shapes.render(factors, 32).object_mask) > 0.5
    np.testing.assert_array_equal(column["object"], obj)
    np.testing.assert_array_equal(column["background"], ~obj)
    for i, shape in enumerate(lj.shapes.SHAPES):
        np.testing.assert_array_equal(column[f"object:{shape}"][i], obj[i])
        assert column[f"image:{shape}"][i].all() and not column[f"image:{shape}"][(i + 1) % 3].any()
    assert column["object:hue0"][0].any() and column["object:hue3"][1].any() and column["object:hue5"][2].any()
    assert column["image:x0"][0].all() and column["image:x1"][1].all() and column["image:x2"][2].all()
    shifted = [np.roll(obj, (dy, dx), axis=(1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # objects off the border
    np.testing.assert_array_equal(column["edge"], np.any(shifted, axis=0) & ~np.all(shifted, axis=0))


def test_dissect_refuses_bad_batches():
    with pytest.raises(ValueError, match="no batches"):
        dissect(lambda: iter(()), progress=False)
    with pytest.raises(ValueError, match="NHWC"):
        dissect(lambda: iter([(np.zeros((2, 4, 4)), np.zeros((2, 4, 4, 1), bool))]), progress=False)
    with pytest.raises(ValueError, match="pair"):
        dissect(lambda: iter([np.zeros((2, 4, 4, 3))]), progress=False)


def test_samples_not_kept_do_not_count():
    rng = np.random.default_rng(6)
    activations = rng.normal(size=(10, 6, 6, 4)).astype(np.float32)
    masks = rng.uniform(size=(10, 6, 6, 2)) < 0.3
    keep = np.arange(10) % 3 != 0
    garbage = activations.copy()
    garbage[~keep] = 1e6  # would dominate the thresholds if counted
    got = dissect(lambda: iter([(garbage[:5], masks[:5], keep[:5]), (garbage[5:], masks[5:], keep[5:])]),
                  quantile=0.1, bins=1 << 16, progress=False)
    alone = dissect(_batches(activations[keep], masks[keep], 4), quantile=0.1, bins=1 << 16, progress=False)
    np.testing.assert_allclose(got.thresholds, alone.thresholds, rtol=1e-6)
    np.testing.assert_allclose(got.iou, alone.iou, atol=1e-12)
    assert got.pixels == keep.sum() * 36 and (got.samples, got.seen) == (keep.sum(), 10)
    with pytest.raises(ValueError, match="keep no sample"):
        dissect(lambda: iter([(activations, masks, np.zeros(10, bool))]), progress=False)


def reference_iqr(activations, masks):
    """gandissect's information-quality-ratio search written out: per unit, concept and level, MI
    (scikit-learn) over joint entropy (H(on) + H(label) - MI, scipy) of the pixels, with its rules."""
    from scipy.stats import entropy
    from sklearn.metrics import mutual_info_score

    fractions = np.logspace(-3, 0, 100)
    units, concepts = activations.shape[-1], masks.shape[-1]
    best = np.zeros((units, concepts))
    level_of_best = np.zeros((units, concepts))
    for u in range(units):
        values = activations[..., u].reshape(-1)
        levels = np.quantile(values, 1 - fractions)
        for c in range(concepts):
            label = masks[..., c].reshape(-1)
            for i, level in enumerate(levels):
                on = values > level
                if i == len(levels) - 1 or label.mean() < 1e-3 or level <= 0 or np.mean(on == label) <= 0.8:
                    continue
                mi = mutual_info_score(label, on)
                joint = entropy(np.bincount(on)) + entropy(np.bincount(label)) - mi
                iqr = mi / joint if joint > 0 else 0.0
                if iqr > best[u, c]:
                    best[u, c], level_of_best[u, c] = iqr, level
    return best, level_of_best


def _planted(seed, n=12, size=8):
    rng = np.random.default_rng(seed)
    masks = rng.uniform(size=(n, size, size, 3)) < [0.05, 0.2, 0.5]
    masks[:, 2:5, 2:6, 0] = True
    activations = rng.gamma(2.0, size=(n, size, size, 4)).astype(np.float32)
    activations[..., 0] += 4 * masks[..., 0]
    activations[..., 1] = np.maximum(rng.normal(size=(n, size, size)) + 2 * masks[..., 1], 0)  # ReLU: levels <= 0
    return activations, masks


def test_unit_iqr_is_gan_dissections_search():
    activations, masks = _planted(7)
    got = lj.metrics.unit_iqr(activations, masks)
    best, levels = reference_iqr(activations, masks)
    np.testing.assert_allclose(got.iqr, best, rtol=1e-9, atol=1e-12)
    chosen = best > 0
    np.testing.assert_allclose(got.levels[chosen], levels[chosen], rtol=1e-6)
    assert np.argmax(got.iqr[0]) == 0 and np.argmax(got.iqr[1]) == 1  # the planted units find their concepts
    np.testing.assert_array_equal(got.thresholds, got.levels[np.arange(4), np.argmax(got.iqr, axis=1)])


def test_streamed_iqr_dissection_matches_the_exact_search():
    activations, masks = _planted(8, n=40, size=16)
    exact = lj.metrics.unit_iqr(activations, masks)
    streamed = dissect(_batches(activations, masks, 16), threshold="iqr", bins=1 << 16, progress=False)
    np.testing.assert_allclose(streamed.search.iqr, exact.iqr, atol=2e-3)
    np.testing.assert_array_equal(np.argmax(streamed.search.iqr, axis=1), np.argmax(exact.iqr, axis=1))
    np.testing.assert_allclose(streamed.thresholds, exact.thresholds, rtol=0.02)
    on = (activations > streamed.thresholds).reshape(-1, 4)
    labels = masks.reshape(-1, 3)
    both = on.T.astype(float) @ labels
    np.testing.assert_allclose(streamed.iou, both / (on.sum(0)[:, None] + labels.sum(0) - both + 1e-10), rtol=1e-9)
    best, score, detector = streamed.best_concepts()
    units = np.arange(4)
    np.testing.assert_array_equal(best, np.argmax(streamed.search.iqr, axis=1))
    np.testing.assert_array_equal(detector, (streamed.search.iqr[units, best] > 0.01) & (score > 0.05))
    assert detector[0] and detector[1] and streamed.pixels == 40 * 256
    with pytest.raises(ValueError, match="threshold must be one of"):
        dissect(_batches(activations, masks, 16), threshold="top", progress=False)


def test_eight_devices_match_one_device():
    """`dissect` splits each batch over the mesh (padding odd batches with samples that do not count)
    and a probe computes its batches split the same way: the tallies, thresholds and IoU are those of
    one device, for host batches of 5 and for a world probe."""
    script = """
    import jax, jax.numpy as jnp, numpy as np
    from latentjax.metrics.dissection import dissect
    from latentjax.sharding import data_mesh
    from latentjax.shapes.concepts import world_probe

    rng = np.random.default_rng(4)
    masks = rng.uniform(size=(13, 8, 8, 3)) < [0.05, 0.2, 0.5]
    activations = rng.gamma(2.0, size=(13, 8, 8, 6)).astype(np.float32)
    batches = lambda: ((activations[i:i + 5], masks[i:i + 5]) for i in range(0, 13, 5))
    features = lambda w, images, layers: {"mix": images @ w}
    w = jax.random.normal(jax.random.key(0), (3, 4))
    results = {}
    for n in (8, 1):
        mesh = data_mesh(jax.devices()[:n])
        probe = world_probe(features, w, "mix", jax.random.key(1), resolution=16, num_samples=16, batch_size=8,
                            mesh=mesh)
        first = next(iter(probe()))
        assert len(first[0].sharding.device_set) == n and first[0].shape[0] == 8
        results[n] = [dissect(batches, quantile=0.05, bins=512, mesh=mesh, progress=False)] + [
            dissect(probe, threshold=t, quantile=0.05, bins=512, mesh=mesh, progress=False) for t in ("quantile", "iqr")]
    for eight, one in zip(results[8], results[1]):
        assert (eight.samples, eight.seen, eight.pixels) == (one.samples, one.seen, one.pixels)
        np.testing.assert_allclose(eight.thresholds, one.thresholds, rtol=1e-5)
        np.testing.assert_allclose(eight.iou, one.iou, atol=1e-6)
    assert results[8][0].seen == 13 and results[8][0].pixels == 13 * 64
    print("ok")
    """
    assert run_python(script, devices=8).strip().endswith("ok")
