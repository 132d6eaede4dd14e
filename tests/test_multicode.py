"""Multi-code inversion (mGANprior): the composition against independent computations, and the
batched optimisation on the StyleGAN2, PGGAN and BigGAN test fixtures."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import relative_error
from latentjax.inversion.multicode import (MultiCodeConfig, MultiCodeInverter, composition_layers, decode_multicode,
                                           default_layer, invert_multicode)
from latentjax.latent import latent_space

RUN = dict(num_codes=3, lr=0.05, loss="mse", progress=False)  # one compiled program per batch size, shared


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
    np.testing.assert_allclose(image, plain(space, codes)[0], rtol=1e-5, atol=1e-5)


def test_identical_codes_with_importance_summing_to_one_are_the_plain_generator(spaces):
    space = spaces["sg2-w"]
    code = space.sample(jax.random.key(2), 1)
    importance = jax.random.uniform(jax.random.key(3), (3, 64), minval=0.1)
    importance = importance / importance.sum(axis=0)  # per channel, the codes' weights sum to 1
    image = composed(space, jnp.repeat(code, 3, axis=0), importance, "b8")
    np.testing.assert_allclose(image, plain(space, code)[0], rtol=1e-5, atol=1e-5)


def test_one_hot_importance_is_style_mixing(sg2, spaces):
    """All importance on code 1 at 'b8': the layers through b8 (ws 0-2) run on code 1, the rest on the mean."""
    space = spaces["sg2-w"]
    codes = space.sample(jax.random.key(4), 3)
    image = composed(space, codes, jnp.zeros((3, 64)).at[1].set(1.0), "b8")
    ws = lambda w: jnp.broadcast_to(w, (1, sg2.num_ws, sg2.w_dim))  # noqa: E731
    mixed = jax.jit(sg2.synthesis)(sg2.params, sg2.mix(ws(codes[1]), ws(codes.mean(0)), 3))
    np.testing.assert_allclose(image, mixed[0], rtol=1e-5, atol=1e-5)
    assert relative_error(image, plain(space, codes[1:2])[0]) > 1e-2  # the mean code does matter


def test_composition_matches_a_manual_composition(sg2, pggan, spaces):
    """sum_n alpha_n ⊙ F_n at the layer; StyleGAN2's skip image by the codes' mean importance."""
    rng = np.random.default_rng(0)
    space = spaces["sg2-w"]
    codes = space.sample(jax.random.key(5), 3)
    alpha = rng.uniform(-0.5, 1.0, (3, 64)).astype(np.float32)
    f = jax.jit(lambda x: space.features(sg2.params, x, ["b4.img", "b8"]))(codes)
    feature = np.einsum("nhwc,nc->hwc", np.asarray(f["b8"], np.float64), alpha)
    skip = np.einsum("nhwc,n->hwc", np.asarray(f["b4.img"], np.float64), alpha.mean(1))
    expected = hooked(space, codes.mean(0, keepdims=True), ("b4.img", "b8"), (skip, feature))
    np.testing.assert_allclose(composed(space, codes, alpha, "b8"), expected, rtol=1e-5, atol=1e-5)

    space = spaces["pggan"]
    codes = space.sample(jax.random.key(6), 3)
    alpha = rng.uniform(-0.5, 1.0, (3, 32)).astype(np.float32)
    f = jax.jit(lambda x: space.features(pggan.params, x, ["b4.fc"]))(codes)["b4.fc"]
    feature = np.einsum("nhwc,nc->hwc", np.asarray(f, np.float64), alpha)
    # PGGAN's layers after b4.fc read no latent: any code gives the same image
    expected = hooked(space, space.sample(jax.random.key(7), 1), ("b4.fc",), (feature,))
    np.testing.assert_allclose(composed(space, codes, alpha, "b4.fc"), expected, rtol=1e-5, atol=1e-5)


def test_default_layers_and_composition_layers(sg2, spaces):
    assert default_layer(spaces["sg2-w"]) == "b8"  # 32 px: resolution / 4
    assert default_layer(spaces["pggan"]) == "b16"  # the reference's 16x16 block output
    assert default_layer(spaces["biggan"]) == "block4"  # the last 16x16 block
    assert "b8.img" not in composition_layers(sg2) and "b8.conv0" in composition_layers(sg2)


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
    np.testing.assert_allclose(images, result.images, rtol=1e-5, atol=1e-5)


def test_batched_inversion_equals_per_target_inversion(sg2, sg2_case):
    targets, keys, batched = sg2_case
    for i in range(2):
        single = invert_multicode(sg2, targets[i:i + 1], key=keys[i:i + 1], steps=30, **RUN)
        for a, b in [(batched.latents[i], single.latents[0]), (batched.importance[i], single.importance[0]),
                     (batched.images[i], single.images[0])]:
            assert relative_error(a, b) < 1e-5


def test_pggan_inversion_loss_decreases(pggan, spaces):
    targets = generated_targets(spaces["pggan"], 1, seed=13)
    start = MultiCodeInverter(pggan, MultiCodeConfig(num_codes=3, steps=1, lr=0.05))(
        targets, jax.random.key(14), progress=False)
    result = MultiCodeInverter(pggan, MultiCodeConfig(num_codes=3, steps=100, lr=0.05))(
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
