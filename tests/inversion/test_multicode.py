"""Multi-code inversion (mGANprior): the composition against independent computations, the default
recipe and loss against the reference's (genforce/mganprior, outputs in tests/fixtures/perceptual),
and the batched optimisation on the StyleGAN2, PGGAN and BigGAN test fixtures."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import FIXTURES, relative_error
from latentjax.inversion.multicode import (PRESETS, MultiCodeConfig, MultiCodeInverter, composition_layers,
                                           decode_multicode, default_layer, invert_multicode, multicode_features,
                                           multicode_loss)
from latentjax.latent import latent_space
from latentjax.metrics.lpips import load_lpips
from latentjax.metrics.vgg import load_vgg16

# The 'adam' preset's optimiser on MSE, 3 codes: one compiled program per batch size, shared
RUN = dict(num_codes=3, optimizer="adam", lr=0.05, loss="mse", progress=False)
TV_VGG = FIXTURES / "lpips" / "vgg16_random.pth"  # narrow random torchvision VGG16
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def spaces(sg2, pggan, biggan_tiny):
    """One LatentSpace per case, shared by the tests so that their jitted functions compile once."""
    return {"sg2-w": latent_space(sg2, "w"), "sg2-z": latent_space(sg2, "z"), "pggan": latent_space(pggan, "z"),
            "biggan": latent_space(biggan_tiny, "z", class_index=0)}


@functools.partial(jax.jit, static_argnums=0)
def plain(space, latents):
    return space.decode(space.generator.params, latents)


@functools.partial(jax.jit, static_argnums=(0, 2))
def hooked(space, latents, replaced: tuple, values):
    """`space.decode` with the activations of the layers `replaced` set to `values` (one image)."""
    hooks = {name: functools.partial(lambda v, _: v[None], v) for name, v in zip(replaced, values)}
    return space.decode(space.generator.params, latents, hooks=hooks)[0]


def composed(space, codes, importance, layer):
    """`compose` for one target, through the jitted `decode_multicode`."""
    return decode_multicode(space, codes[None], jnp.asarray(importance)[None], layer)[0]


def generated_targets(space, n, seed):
    """Generated images scaled into [-0.9, 0.9] (the random fixtures' images exceed [-1, 1])."""
    images = np.asarray(plain(space, space.sample(jax.random.key(seed), n)))
    return images * (0.9 / np.abs(images).max(axis=(1, 2, 3), keepdims=True))


# --- the composition ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case,layer,channels", [("sg2-w", "b8", 64), ("sg2-z", "b16.conv0", 32),
                                                 ("pggan", "b4.fc", 32), ("biggan", "block4", 64)])
def test_one_code_with_unit_importance_is_the_plain_generator(spaces, case, layer, channels):
    space = spaces[case]
    codes = space.sample(jax.random.key(1), 1)
    image = composed(space, codes, jnp.ones((1, channels)), layer)
    np.testing.assert_allclose(image, plain(space, codes)[0], rtol=1e-4, atol=1e-5)


def test_identical_codes_with_importance_averaging_one_are_the_plain_generator(spaces):
    """F = (sum_n alpha_n ⊙ F_n) / N: identical codes whose importance averages 1 per channel give F_1."""
    space = spaces["sg2-w"]
    code = space.sample(jax.random.key(2), 1)
    importance = jax.random.uniform(jax.random.key(3), (3, 64), minval=0.1)
    importance = 3 * importance / importance.sum(axis=0)  # per channel, the codes' weights sum to N = 3
    image = composed(space, jnp.repeat(code, 3, axis=0), importance, "b8")
    np.testing.assert_allclose(image, plain(space, code)[0], rtol=1e-4, atol=1e-5)


def test_the_initial_composition_is_the_mean_feature_over_n(spaces):
    """With alpha = 1/N (the start) the composed feature is mean_n F_n / N, as the reference's
    `sum(F_n * alpha_n) / z_number` (derivable_generator.py:132), not the mean."""
    space = spaces["pggan"]
    codes = space.sample(jax.random.key(8), 4)
    f = jax.jit(lambda x: space.features(space.generator.params, x, ["b4.fc"]))(codes)["b4.fc"]
    expected = hooked(space, codes[:1], ("b4.fc",), (np.mean(np.asarray(f, np.float64), axis=0) / 4,))
    assert relative_error(composed(space, codes, jnp.full((4, 32), 1 / 4), "b4.fc"), expected) < 1e-5
    assert relative_error(expected, hooked(space, codes[:1], ("b4.fc",), (np.mean(f, axis=0),))) > 1e-2


def test_one_hot_importance_is_style_mixing(sg2, spaces):
    """All importance (N = 3, as the composition divides by N) on code 1 at 'b8': the layers through b8
    (ws 0-2) run on code 1, the rest on the mean."""
    space = spaces["sg2-w"]
    codes = space.sample(jax.random.key(4), 3)
    image = composed(space, codes, jnp.zeros((3, 64)).at[1].set(3.0), "b8")
    ws = lambda w: jnp.broadcast_to(w, (1, sg2.num_ws, sg2.w_dim))  # noqa: E731
    mixed = jax.jit(sg2.synthesis)(sg2.params, sg2.mix(ws(codes[1]), ws(codes.mean(0)), 3))
    np.testing.assert_allclose(image, mixed[0], rtol=1e-4, atol=1e-5)
    assert relative_error(image, plain(space, codes[1:2])[0]) > 1e-2  # the mean code does matter


def test_composition_matches_a_manual_composition(sg2, pggan, spaces):
    """(sum_n alpha_n ⊙ F_n) / N at the layer; StyleGAN2's skip image by the codes' mean importance, / N."""
    rng = np.random.default_rng(0)
    space = spaces["sg2-w"]
    codes = space.sample(jax.random.key(5), 3)
    alpha = rng.uniform(-0.5, 1.0, (3, 64)).astype(np.float32)
    f = jax.jit(lambda x: space.features(sg2.params, x, ["b4.img", "b8"]))(codes)
    feature = np.einsum("nhwc,nc->hwc", np.asarray(f["b8"], np.float64), alpha) / 3
    skip = np.einsum("nhwc,n->hwc", np.asarray(f["b4.img"], np.float64), alpha.mean(1)) / 3
    expected = hooked(space, codes.mean(0, keepdims=True), ("b4.img", "b8"), (skip, feature))
    np.testing.assert_allclose(composed(space, codes, alpha, "b8"), expected, rtol=1e-4, atol=1e-5)

    space = spaces["pggan"]
    codes = space.sample(jax.random.key(6), 3)
    alpha = rng.uniform(-0.5, 1.0, (3, 32)).astype(np.float32)
    f = jax.jit(lambda x: space.features(pggan.params, x, ["b4.fc"]))(codes)["b4.fc"]
    feature = np.einsum("nhwc,nc->hwc", np.asarray(f, np.float64), alpha) / 3
    # PGGAN's layers after b4.fc read no latent: any code gives the same image
    expected = hooked(space, space.sample(jax.random.key(7), 1), ("b4.fc",), (feature,))
    np.testing.assert_allclose(composed(space, codes, alpha, "b4.fc"), expected, rtol=1e-4, atol=1e-5)


def test_default_layers_and_composition_layers(sg2, spaces):
    assert default_layer(spaces["sg2-w"]) == "b8"  # 32 px: resolution / 4
    assert default_layer(spaces["pggan"]) == "b16"  # the reference's 16x16 block output
    assert default_layer(spaces["biggan"]) == "block4"  # the last 16x16 block
    assert "b8.img" not in composition_layers(sg2) and "b8.conv0" in composition_layers(sg2)


# --- the reference's recipe and loss ---------------------------------------------------------------------

def test_defaults_are_the_reference_recipe():
    """multi_code_inversion.py: 30 codes, SGD at lr 1, 3,000 iterations, 'Combine' loss = 1 * MSE +
    1 * VGGLoss (L1 of vgg16 features[:16] on 256 px images, times 0.001)."""
    config = MultiCodeConfig()
    assert (config.num_codes, config.steps, config.optimizer, config.lr) == (30, 3000, "sgd", 1.0)
    assert config.loss == {"mse": 1.0, "vgg_l1": 0.001} and config.vgg_resolution == 256
    assert PRESETS["reference"] == config
    assert PRESETS["adam"] == MultiCodeConfig(num_codes=20, optimizer="adam", lr=0.03, loss="mse")


def nhwc(x):
    return jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1))


@functools.partial(jax.jit, static_argnums=0)
def reference_loss(weights, models, image, target):
    weights = dict(weights)
    return multicode_loss(weights, models, image, target, multicode_features(weights, models, target))


def test_reference_loss_equals_the_reference_combination_loss():
    """Against mganprior's own `CombinationLoss` (l1 0, l2 1, vgg 1, vgg_layer 16, L1, image_size 256)
    on a narrow random torchvision VGG16 (tests/fixtures/perceptual)."""
    io = np.load(FIXTURES / "perceptual" / "perceptual_io.npz")
    models = {"lpips": None, "vgg": load_vgg16(TV_VGG)}
    weights = tuple(MultiCodeConfig().loss.items())
    for i in range(2):  # the reference inverts one image at a time: its means are per image
        total, terms = reference_loss(weights, models, nhwc(io["x"])[i], nhwc(io["gt"])[i])
        assert relative_error(total, io["mgan_loss"][i]) < 1e-5
        assert relative_error(0.001 * terms["vgg_l1"], io["mgan_vgg_term"][i]) < 1e-5


def test_reference_loss_by_hand():
    """MSE + 0.001 * mean |F(x) - F(t)|, F = relu3_3 of ((up(x) + 1) / 2 - mean) / std, with up the
    nearest 8x upscale of 32 px images to 256 px (each pixel repeated) and the shared VGG16 trunk."""
    from latentjax.metrics.vgg import trunk_features

    rng = np.random.default_rng(3)
    x, t = (rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32) for _ in range(2))
    vgg = load_vgg16(TV_VGG)

    def features(image):
        up = np.repeat(np.repeat(image[None], 8, axis=1), 8, axis=2).astype(np.float64)
        normalized = ((up + 1) / 2 - IMAGENET_MEAN) / IMAGENET_STD
        return np.asarray(trunk_features(vgg.trunk, jnp.asarray(normalized, jnp.float32), "relu3_3")["relu3_3"],
                          np.float64)

    expected = np.mean((x.astype(np.float64) - t) ** 2) + 0.001 * np.mean(np.abs(features(x) - features(t)))
    total, terms = reference_loss(tuple(MultiCodeConfig().loss.items()), {"lpips": None, "vgg": vgg}, x, t)
    assert relative_error(total, expected) < 1e-5
    assert terms.keys() == {"mse", "vgg_l1"}


def test_sgd_step_is_plain_gradient_descent(sg2, spaces, sg2_case):
    """One step of the reference's optimiser: codes and importance minus lr * gradient, from codes
    drawn from the prior with the target's key and importance 1/N."""
    from latentjax.inversion.multicode import compose

    targets, keys, _ = sg2_case
    space = spaces["sg2-w"]
    result = invert_multicode(sg2, targets[:1], key=keys[:1], steps=1, num_codes=3, optimizer="sgd", lr=0.5,
                              loss="mse", progress=False)
    start = {"codes": space.sample(keys[0], 3), "importance": jnp.full((3, 64), 1 / 3)}

    @jax.jit
    def grad(variables):
        return jax.grad(lambda v: jnp.mean(jnp.square(compose(space, sg2.params, v["codes"], v["importance"], "b8")
                                                      - targets[0])))(variables)

    g = grad(start)
    assert float(jnp.abs(g["importance"]).max()) > 1e-4  # the step is not trivially zero
    np.testing.assert_allclose(result.latents[0], start["codes"] - 0.5 * g["codes"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.importance[0], start["importance"] - 0.5 * g["importance"], rtol=1e-5,
                               atol=1e-6)


def test_default_recipe_needs_torchvision_vgg_weights_and_reports_its_terms(sg2, sg2_case):
    targets, keys, _ = sg2_case
    with pytest.raises(ValueError, match="'vgg_l1'.*needs torchvision VGG16 weights.*loss='mse' or config='adam'"):
        invert_multicode(sg2, targets, key=keys, steps=1)
    with pytest.raises(ValueError, match="torchvision VGG16 features.*got a VGG16 of the 'caffe' convention"):
        invert_multicode(sg2, targets, key=keys, steps=1,
                         vgg=load_vgg16(FIXTURES / "perceptual" / "caffe_vgg16_narrow.pth"))
    with pytest.raises(ValueError, match="vgg must be a latentjax.metrics.vgg.VGG16"):
        invert_multicode(sg2, targets, key=keys, steps=1, vgg="vgg16.pth")
    result = invert_multicode(sg2, targets[:1], key=keys[:1], vgg=load_vgg16(TV_VGG), num_codes=2, steps=2,
                              progress=False)
    assert result.settings["optimizer"] == "sgd" and result.settings["loss"] == {"mse": 1.0, "vgg_l1": 0.001}
    assert np.all(np.isfinite(result.losses["loss"])) and result.losses["vgg_l1"][0] > 0
    np.testing.assert_allclose(result.losses["loss"], result.losses["mse"] + 0.001 * result.losses["vgg_l1"],
                               rtol=1e-5)


def test_an_lpips_model_lends_its_trunk_as_the_vgg():
    from latentjax.metrics.lpips import as_vgg16

    lpips = load_lpips(TV_VGG, FIXTURES / "lpips" / "lpips_vgg_narrow_lin.pth")
    vgg = as_vgg16(lpips)
    assert vgg.convention == "torchvision"
    jax.tree.map(np.testing.assert_array_equal, vgg.trunk, load_vgg16(TV_VGG).trunk)


# --- the inversion --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sg2_case(sg2, spaces):
    """Two targets, their keys, and their batched inversion (30 steps)."""
    targets = generated_targets(spaces["sg2-w"], 2, seed=11)
    keys = jax.random.split(jax.random.key(12), 2)
    return targets, keys, invert_multicode(sg2, targets, key=keys, steps=30, **RUN)


def test_inversion_loss_decreases_and_results_are_consistent(sg2, spaces, sg2_case):
    targets, keys, result = sg2_case
    start = invert_multicode(sg2, targets, key=keys, steps=1, **RUN)
    assert np.all(result.losses["loss"] < 0.5 * start.losses["loss"]), (start.losses, result.losses)
    assert result.latents.shape == (2, 3, sg2.w_dim) and result.importance.shape == (2, 3, 64)
    assert result.layer == "b8" and result.space["name"] == "w" and result.steps == 30
    np.testing.assert_allclose(start.importance, 1 / 3, atol=0.051)  # 1/N, one Adam step of lr 0.05 away
    np.testing.assert_allclose(result.losses["mse"], np.mean((result.images - targets) ** 2, axis=(1, 2, 3)),
                               rtol=1e-5)
    images = decode_multicode(spaces["sg2-w"], result.latents, result.importance, result.layer)
    np.testing.assert_allclose(images, result.images, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_batched_inversion_equals_per_target_inversion(sg2, sg2_case):
    targets, keys, batched = sg2_case
    for i in range(2):
        single = invert_multicode(sg2, targets[i:i + 1], key=keys[i:i + 1], steps=30, **RUN)
        for a, b in [(batched.latents[i], single.latents[0]), (batched.importance[i], single.importance[0]),
                     (batched.images[i], single.images[0])]:
            # float32 rounding of batch 2 vs 1, grown through 30 Adam steps (which rescale tiny gradients)
            assert relative_error(a, b) < 1e-3


@pytest.mark.slow
def test_pggan_inversion_loss_decreases(pggan, spaces):
    targets = generated_targets(spaces["pggan"], 1, seed=13)
    config = MultiCodeConfig(num_codes=3, steps=1, optimizer="adam", lr=0.05, loss="mse")
    start = MultiCodeInverter(pggan, config)(targets, jax.random.key(14), progress=False)
    result = MultiCodeInverter(pggan, dataclasses.replace(config, steps=100))(
        targets, jax.random.key(14), progress=False)
    assert result.layer == "b16" and result.importance.shape == (1, 3, 16)
    assert result.losses["loss"][0] < 0.7 * start.losses["loss"][0], (start.losses, result.losses)


def test_config_round_trips_through_json():
    config = MultiCodeConfig(num_codes=5, layer="b16", loss={"mse": 1.0, "lpips": 0.5}, space="z")
    assert MultiCodeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_bad_inputs_give_clear_errors(sg2, biggan_tiny, sg2_case):
    targets = sg2_case[0]
    run = dict(key=jax.random.key(0), steps=1, **RUN)
    with pytest.raises(ValueError, match=r"layer must be one of \['b4', 'b8.conv0'.*got 'b9'"):
        invert_multicode(sg2, targets, **{**run, "layer": "b9"})
    with pytest.raises(ValueError, match=r"layer must be one of .*got 'b8.img'"):
        invert_multicode(sg2, targets, **{**run, "layer": "b8.img"})
    with pytest.raises(ValueError, match=r"targets must be images \[N, 32, 32, 3\].*got shape \(2, 32, 32, 1\)"):
        invert_multicode(sg2, targets[..., :1], **run)
    with pytest.raises(ValueError, match=r"got shape \(2, 16, 16, 3\)"):
        invert_multicode(sg2, targets[:, ::2, ::2], **run)
    with pytest.raises(ValueError, match="non-finite"):
        invert_multicode(sg2, targets * np.inf, **run)
    with pytest.raises(ValueError, match="num_codes must be an int >= 1, got 0"):
        invert_multicode(sg2, targets, **{**run, "num_codes": 0})
    with pytest.raises(ValueError, match="steps must be a positive int"):
        MultiCodeConfig(steps=0)
    with pytest.raises(ValueError, match=r"works in spaces \['z', 'w', 'w\+'\], got 's'"):
        invert_multicode(sg2, targets, **{**run, "space": "s"})
    with pytest.raises(ValueError, match="loss must name terms from"):
        invert_multicode(sg2, targets, **{**run, "loss": "l1"})
    with pytest.raises(ValueError, match="needs an LPIPS model"):
        invert_multicode(sg2, targets, **{**run, "loss": "lpips"})
    with pytest.raises(ValueError, match=r"unknown invert_multicode arguments \['codes'\]"):
        invert_multicode(sg2, targets, **{**run, "codes": 3})
    with pytest.raises(ValueError, match="pass class_index"):  # BigGAN is conditional: a space with a class
        MultiCodeInverter(biggan_tiny, MultiCodeConfig(num_codes=2))
    with pytest.raises(ValueError, match=r"optimizer must be one of \('sgd', 'adam'\), got 'rmsprop'"):
        MultiCodeConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="vgg_resolution must be an int >= 16"):
        MultiCodeConfig(vgg_resolution=8)
    with pytest.raises(ValueError, match=r"config must be a preset from \['adam', 'reference'\].*got 'fast'"):
        invert_multicode(sg2, targets, key=jax.random.key(0), config="fast")
    with pytest.raises(ValueError, match=r"loss must name terms from \('mse', 'lpips', 'vgg_l1'\)"):
        MultiCodeConfig(loss={"vgg": 1.0})
