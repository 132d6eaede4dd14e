"""LPIPS-VGG16 against the lpips package's outputs (tests/fixtures/lpips), loaded torch-free from real file formats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import FIXTURES, PARITY_RTOL, nchw, relative_error

from latentjax.errors import CheckpointError
from latentjax.io.torch_pickle import load
from latentjax.metrics.lpips import TAPS, from_state_dicts, load_lpips

LPIPS_DIR = FIXTURES / "lpips"
GROUPS = ("64x64", "32x48", "36x44")  # 36x44: odd sizes where the max-pools floor


@pytest.fixture(scope="module")
def model():
    return load_lpips(LPIPS_DIR / "vgg16_random.pth", LPIPS_DIR / "lpips_vgg_narrow_lin.pth")


@pytest.fixture(scope="module")
def io():
    return dict(np.load(LPIPS_DIR / "lpips_io.npz"))


def nhwc(x):
    return jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1))


def test_widths_and_weights_come_from_the_files(model, io):
    assert model.channels == tuple(io["tap_channels"]) == (8, 16, 32, 64, 64)
    for k, weight in enumerate(model.lin):
        np.testing.assert_array_equal(weight, io[f"lin{k}_weight"].reshape(-1))


def test_legacy_and_zip_vgg_files_give_the_same_model(model):
    legacy = load_lpips(LPIPS_DIR / "vgg16_random_legacy.pth", LPIPS_DIR / "lpips_vgg_narrow_lin.pth")
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(legacy)):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def outputs(model, io):
    """Every output of each fixture group from one jitted function of the model (a pytree argument):
    one compilation per image size."""
    @jax.jit
    def run(m, x, y):
        features, normalized = m.features(x), m.features(x, normalize=True)
        return {"dist": m(x, y), "per_layer": m(x, y, per_layer=True), "spatial": m(x, y, spatial=True),
                "spatial_per_layer": m(x, y, spatial=True, per_layer=True),
                "grad": jax.grad(lambda a: m(a, y).sum())(x), "features": features, "normalized": normalized,
                "from_features": m.distance_from_features(normalized, m.features(y, normalize=True)),
                "dead": jnp.stack([jnp.sum(jnp.all(f == 0, axis=-1), axis=(1, 2))
                                   for f in m.features(jnp.concatenate([x, y])).values()], axis=-1)}

    return {g: run(model, nhwc(io[f"in0_{g}"]), nhwc(io[f"in1_{g}"])) for g in GROUPS}


@pytest.mark.parametrize("group", GROUPS)
def test_distances_layers_and_spatial_maps_match_reference(outputs, io, group):
    out = outputs[group]
    assert relative_error(out["dist"], io[f"dist_{group}"]) < PARITY_RTOL
    assert relative_error(out["per_layer"], io[f"per_layer_{group}"]) < PARITY_RTOL
    np.testing.assert_allclose(out["per_layer"].sum(-1), out["dist"], rtol=1e-6, atol=1e-7)
    assert relative_error(out["spatial"], io[f"spatial_{group}"][:, 0]) < PARITY_RTOL


@pytest.mark.parametrize("group", GROUPS)
def test_gradients_match_reference_and_stay_finite_at_dead_positions(outputs, io, group):
    out = outputs[group]
    # The positions where every channel of a tap is 0 (which make a masked ReLU propagate NaN) are the reference's.
    np.testing.assert_array_equal(out["dead"], io[f"dead_locations_{group}"])
    assert np.isfinite(np.asarray(out["grad"])).all()
    assert relative_error(nchw(out["grad"]), io[f"grad_in0_{group}"]) < PARITY_RTOL


def test_dead_positions_exist_in_the_fixture(io):
    assert io["dead_locations_64x64"].sum() > 0 and io["dead_locations_32x48"].sum() > 0


def test_identical_images_give_zero_distance_and_zero_gradient(outputs):
    out = outputs["64x64"]  # pair 3 is an image with itself: the reference gives exactly 0 for both
    assert abs(float(out["dist"][3])) < 1e-12  # float32 rounding of the batched trunk; other pairs are > 0.1
    # float32 rounding leaves about 1e-6 of the other pairs' gradients; a real gradient would be of their size
    assert float(jnp.max(jnp.abs(out["grad"][3]))) < 1e-4 * float(jnp.max(jnp.abs(out["grad"][:3])))


def test_features_match_reference(outputs, io):
    out = outputs["64x64"]
    assert tuple(out["features"]) == TAPS
    for name in TAPS:
        assert relative_error(nchw(out["features"][name][:1]), io[f"feat_{name}"]) < PARITY_RTOL
        assert relative_error(nchw(out["normalized"][name][:1]), io[f"normfeat_{name}"]) < PARITY_RTOL


def test_per_layer_spatial_maps_match_reference(outputs, io):
    maps = outputs["64x64"]["spatial_per_layer"][:1]  # [N, H, W, 5]
    assert relative_error(nchw(maps), io["spatial_per_layer_first_64x64"]) < PARITY_RTOL


@pytest.mark.parametrize("group", GROUPS)
def test_distance_from_cached_features_equals_direct_distance(outputs, group):
    np.testing.assert_allclose(outputs[group]["from_features"], outputs[group]["dist"], rtol=1e-6, atol=1e-12)


def test_real_lin_file_reproduces_reference_lin_outputs():
    lin = load(LPIPS_DIR / "lpips_vgg_v0.1.pth")  # legacy format, stored on 'cuda:0', storages in sorted-key order
    check = np.load(LPIPS_DIR / "lpips_vgg_v0.1_lincheck.npz")
    widths = (64, 128, 256, 512, 512)
    trunk, c_in = {}, 3  # a zero trunk of the real VGG16 widths: only the lin heads are under test
    for stage, width in zip(((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)), widths):
        for i in stage:
            trunk[f"features.{i}.weight"] = np.zeros((width, c_in, 3, 3), np.float32)
            trunk[f"features.{i}.bias"] = np.zeros((width,), np.float32)
            c_in = width
    model = from_state_dicts(trunk, lin)
    assert model.channels == widths
    assert all(float(w.min()) > 0 for w in model.lin)
    # With fx = sqrt(diff) and fy = 0 the squared difference LPIPS weighs is exactly the fixture's diff.
    fx = {name: jnp.sqrt(nhwc(check[f"diff{k}"])) for k, name in enumerate(TAPS)}
    fy = {name: jnp.zeros_like(v) for name, v in fx.items()}
    terms = model.distance_from_features(fx, fy, per_layer=True)
    expected = np.stack([check[f"lin_out{k}"] for k in range(5)], axis=-1)
    assert relative_error(terms, expected) < PARITY_RTOL
    assert relative_error(terms.sum(-1), check["lin_out_sum"]) < PARITY_RTOL


def test_wrong_or_missing_keys_are_refused():
    vgg, lin = LPIPS_DIR / "vgg16_random.pth", LPIPS_DIR / "lpips_vgg_narrow_lin.pth"
    with pytest.raises(CheckpointError, match="missing.*features.0.weight"):
        load_lpips(lin, lin)
    with pytest.raises(CheckpointError, match="missing.*lin0.model.1.weight"):
        load_lpips(vgg, vgg)
    with pytest.raises(CheckpointError, match="do not fit the taps"):
        load_lpips(vgg, LPIPS_DIR / "lpips_vgg_v0.1.pth")
    vgg_state, lin_state = load(vgg), load(lin)
    with pytest.raises(CheckpointError, match="unexpected keys.*features.1.weight"):
        from_state_dicts({**vgg_state, "features.1.weight": np.zeros(3, np.float32)}, lin_state)
    with pytest.raises(CheckpointError, match=r"features.5.weight has shape \(16, 8, 1, 1\)"):
        from_state_dicts({**vgg_state, "features.5.weight": np.zeros((16, 8, 1, 1), np.float32)}, lin_state)
    with pytest.raises(CheckpointError, match="lin2.model.1.weight has shape"):
        from_state_dicts(vgg_state, {**lin_state, "lin2.model.1.weight": np.zeros((32,), np.float32)})


def test_bad_images_are_refused(model):
    x = jnp.zeros((2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"RGB images \[N, H, W, 3\]"):
        model(jnp.zeros((2, 32, 32, 1)), jnp.zeros((2, 32, 32, 1)))
    with pytest.raises(ValueError, match=r"RGB images \[N, H, W, 3\]"):
        model(jnp.zeros((2, 3, 32, 32)), jnp.zeros((2, 3, 32, 32)))  # NCHW
    with pytest.raises(ValueError, match="at least 16x16"):
        model(jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 8, 8, 3)))
    with pytest.warns(UserWarning, match=r"reach \[255, 255\], far outside"):
        model(x, jnp.full((2, 32, 32, 3), 255.0))
    with pytest.raises(ValueError, match="non-finite"):
        model(x, jnp.full((2, 32, 32, 3), jnp.nan))
    with pytest.raises(ValueError, match="same shape"):
        model(x, jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="float images"):
        model(x.astype(jnp.uint8), x.astype(jnp.uint8))
