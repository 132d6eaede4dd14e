"""StyleGAN2 model properties: transforms agree with eager, noise modes, truncation, shapes."""

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.models.stylegan2 import widen
from support import relative_error

SMALL = StyleGAN2Config(z_dim=8, w_dim=8, c_dim=3, embed_features=8, img_resolution=16, img_channels=3,
                        channels=(16, 8, 8), mapping_layers=2, conv_clamp=64.0)


@pytest.fixture(scope="module")
def G():
    return StyleGAN2.init(SMALL, jax.random.key(0))


def _inputs(n=3):
    z = jax.random.normal(jax.random.key(1), (n, SMALL.z_dim))
    c = jax.nn.one_hot(jnp.arange(n) % SMALL.c_dim, SMALL.c_dim)
    return z, c


def test_shapes_and_layer_names(G):
    z, c = _inputs()
    ws = G.mapping(G.params, z, c)
    assert ws.shape == (3, SMALL.num_ws, SMALL.w_dim) == (3, 6, 8)
    assert jax.eval_shape(G.generate, G.params, z, c).shape == (3, 16, 16, 3)
    features = G.features(G.params, ws)  # eager: a compiled program's dict outputs come back with sorted keys
    assert list(features) == list(G.layer_names) + ["img"]
    assert features["b8.conv0"].shape == (3, 8, 8, 8) and features["b16.img"].shape == (3, 16, 16, 3)
    assert list(G.features(G.params, ws, layers=["b8"])) == ["b8"]
    with pytest.raises(ValueError, match="unknown layers"):
        G.features(G.params, ws, layers=["b9"])


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_architectures_build_and_use_every_w(architecture):
    cfg = StyleGAN2Config(**{**SMALL.to_dict(), "architecture": architecture, "channels": (16, 8, 8)})
    G = StyleGAN2.init(cfg, jax.random.key(0))
    z, c = _inputs(2)
    ws = G.mapping(G.params, z, c)
    grads = jax.jit(jax.grad(lambda w: jnp.sum(G.synthesis(G.params, w) ** 2)))(ws)
    assert np.all(np.abs(np.asarray(grads)).sum(axis=(0, 2)) > 0), "some w vector does not reach the image"
    assert ("skip" in G.params["synthesis"]["b8"]) == (architecture == "resnet")


def test_jit_vmap_grad_match_eager(G):
    z, c = _inputs()
    eager = G.generate(G.params, z, c, truncation_psi=0.7)
    jitted = jax.jit(G.generate)(G.params, z, c, truncation_psi=0.7)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
    per_sample = jax.jit(jax.vmap(lambda zi, ci: G.generate(G.params, zi[None], ci[None], truncation_psi=0.7)[0]))
    np.testing.assert_allclose(per_sample(z, c), eager, rtol=1e-5, atol=1e-5)

    def loss(params, ws, impl="fast"):
        return jnp.mean(G.synthesis(params, ws, impl=impl) ** 2)

    ws = G.mapping(G.params, z, c)
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
    g_fast, g_ref = grad(G.params, ws), grad(G.params, ws, "ref")
    for fast_leaf, ref_leaf in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
        assert np.all(np.isfinite(fast_leaf))
        np.testing.assert_allclose(fast_leaf, ref_leaf, rtol=1e-3, atol=1e-6)
    # The gradient predicts the change of the loss along a random direction (central difference).
    direction = jax.random.normal(jax.random.key(2), ws.shape)
    eps = 1e-2
    f = jax.jit(loss)
    numeric = (f(G.params, ws + eps * direction) - f(G.params, ws - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(g_fast[1], direction), numeric, rtol=2e-2)
    # Eager and jitted gradients of the mapping network agree.
    map_loss = lambda params: jnp.sum(G.mapping(params, z, c, truncation_psi=0.7) ** 2)
    for a, b in zip(jax.tree.leaves(jax.grad(map_loss)(G.params)), jax.tree.leaves(jax.jit(jax.grad(map_loss))(G.params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fast_and_reference_ops_give_the_same_model(G):
    z, c = _inputs()
    ws = G.mapping(G.params, z, c)
    assert relative_error(G.synthesis(G.params, ws), G.synthesis(G.params, ws, impl="ref")) < 1e-5


def test_noise_modes(G):
    z, c = _inputs()
    ws = G.mapping(G.params, z, c)
    G = StyleGAN2(G.config, jax.tree_util.tree_map_with_path(  # fresh models have zero noise strength
        lambda path, x: x + 0.5 if path[-1].key == "noise_strength" else x, G.params))
    const = G.synthesis(G.params, ws, noise_mode="const")
    none = G.synthesis(G.params, ws, noise_mode="none")
    r1 = G.synthesis(G.params, ws, noise_mode="random", key=jax.random.key(5))
    r1_again = G.synthesis(G.params, ws, noise_mode="random", key=jax.random.key(5))
    r2 = G.synthesis(G.params, ws, noise_mode="random", key=jax.random.key(6))
    np.testing.assert_array_equal(r1, r1_again)
    for a, b in [(const, none), (r1, r2), (r1, const)]:
        assert relative_error(a, b) > 1e-3
    with pytest.raises(ValueError, match="explicit key"):
        G.synthesis(G.params, ws, noise_mode="random")
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(G.params, ws, noise_mode="fixed")


def test_truncation_and_cutoff_are_traceable(G):
    z, c = _inputs()
    w_avg = G.params["mapping"]["w_avg"]
    ws = G.mapping(G.params, z, c)
    f = jax.jit(lambda psi, cutoff: G.mapping(G.params, z, c, truncation_psi=psi, truncation_cutoff=cutoff))
    truncated = f(0.5, 2)
    np.testing.assert_allclose(truncated[:, :2], w_avg + 0.5 * (ws[:, :2] - w_avg), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(truncated[:, 2:], ws[:, 2:], rtol=1e-6, atol=1e-6)  # w_avg + 1 (w - w_avg): an ulp
    np.testing.assert_allclose(G.mapping(G.params, z, c, truncation_psi=0.0), jnp.broadcast_to(w_avg, ws.shape),
                               atol=1e-6)


def test_style_mixing(G):
    z, c = _inputs()
    a, b = G.mapping(G.params, z, c), G.mapping(G.params, z[::-1], c[::-1])
    mixed = jax.jit(G.mix)(a, b, 2)
    np.testing.assert_array_equal(mixed[:, :2], a[:, :2])
    np.testing.assert_array_equal(mixed[:, 2:], b[:, 2:])


def test_bfloat16_compute_is_close_by_image_metric(G):
    z, c = _inputs()
    f32 = G.generate(G.params, z, c)
    bf16 = G.generate(G.params, z, c, compute_dtype=jnp.bfloat16)
    assert bf16.dtype == jnp.float32
    assert relative_error(bf16, f32) < 5e-2


def test_input_contracts(G):
    z, c = _inputs()
    with pytest.raises(ValueError, match=r"z must have shape \[N, 8\]"):
        G.mapping(G.params, z[:, :4], c)
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(G.params, z)
    with pytest.raises(ValueError, match=r"ws must have shape \[N, 6, 8\]"):
        G.synthesis(G.params, jnp.zeros((1, 5, 8)))


def test_config_round_trip_and_validation():
    assert StyleGAN2Config.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError, match="one width per block"):
        StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channels=(8, 8))
    with pytest.raises(ValueError, match="unknown StyleGAN2 config keys"):
        StyleGAN2Config.from_dict({**SMALL.to_dict(), "widths": 3})


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_widen_draws_the_same_images_and_trains_the_new_channels(architecture):
    narrow = StyleGAN2.init(dataclasses.replace(SMALL, architecture=architecture), jax.random.key(0))
    wide_config = dataclasses.replace(narrow.config, channels=(24, 8, 16))
    wide = widen(narrow, wide_config, jax.random.key(5))
    assert wide.config == wide_config
    assert jax.tree.map(np.shape, wide.params) == jax.tree.map(np.shape, StyleGAN2.init(wide_config,
                                                                                       jax.random.key(0)).params)
    z, c = _inputs()
    for noise_mode in ("const", "none"):  # compiled: one program each, not one per op
        np.testing.assert_allclose(jax.jit(partial(wide.generate, noise_mode=noise_mode))(wide.params, z, c),
                                   jax.jit(partial(narrow.generate, noise_mode=noise_mode))(narrow.params, z, c),
                                   rtol=1e-4, atol=1e-5)
    # the zeroed weights (new inputs into old outputs) get gradients, so training reaches the new channels
    grads = jax.jit(jax.grad(lambda p: jnp.mean(wide.generate(p, z, c) ** 2)))(wide.params)["synthesis"]
    assert np.abs(np.asarray(grads["b8"]["conv0"]["weight"])[:, :, 16:, :]).sum() > 0  # b4's new channels
    assert np.abs(np.asarray(grads["b16"]["torgb"]["weight"])[:, :, 8:, :]).sum() > 0  # b16's new channels
    with pytest.raises(ValueError, match="for channels"):
        widen(wide, narrow.config, jax.random.key(0))
    with pytest.raises(ValueError, match="for channels"):
        widen(narrow, dataclasses.replace(wide_config, w_dim=16), jax.random.key(0))
