"""Feature hooks (`latentjax.models.taps`): replacing a layer's output changes what comes after it,
and only that, in every family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.latent import latent_space
from latentjax.models.stylegan2 import mix_styles


def test_pggan_rest_of_network_from_replaced_features(pggan):
    """PGGAN's later layers do not read z: decoding z1 with layer L replaced by z2's activation is G(z2)."""
    space = latent_space(pggan, "z")
    z1, z2 = space.sample(jax.random.key(0), 2), space.sample(jax.random.key(1), 2)
    layer = "b8"
    f2 = space.features(pggan.params, z2, [layer])[layer]
    out = space.decode(pggan.params, z1, hooks={layer: lambda _: f2})
    np.testing.assert_allclose(out, space.decode(pggan.params, z2), atol=1e-5)
    assert float(jnp.abs(out - space.decode(pggan.params, z1)).max()) > 1e-2


def test_stylegan2_hooks_equal_style_mixing(sg2):
    """b16's output and the image accumulated so far are all that the later blocks take from the
    earlier ones: decoding ws_a with both replaced by those of a style mix (ws_b's styles up to
    b16's convs, ws_a's after) gives that mix's image."""
    G = sg2
    space = latent_space(G, "w+")
    ws_a, ws_b = space.sample(jax.random.key(2), 2), space.sample(jax.random.key(3), 2)
    consumed = 1 + 2 + 2  # b4 conv1, b8 conv0/conv1, b16 conv0/conv1
    mixed = mix_styles(ws_b, ws_a, consumed)
    feats = space.features(G.params, mixed, ["b16", "b16.img"])
    hooked = space.decode(G.params, ws_a, hooks={"b16": lambda _: feats["b16"], "b16.img": lambda _: feats["b16.img"]})
    np.testing.assert_allclose(hooked, space.decode(G.params, mixed), atol=1e-5)
    assert float(jnp.abs(hooked - space.decode(G.params, ws_a)).max()) > 1e-2


def test_tapped_feature_is_the_hooked_value_and_gradients_flow(sg2):
    G = sg2
    space = latent_space(G, "z")
    z = space.sample(jax.random.key(4), 2)
    plain = space.features(G.params, z, ["b8"])["b8"]
    hooked = space.features(G.params, z, ["b8"], hooks={"b8": lambda x: 2.0 * x})["b8"]
    np.testing.assert_allclose(hooked, 2.0 * plain, rtol=1e-6, atol=1e-6)

    def loss(scale):
        return jnp.sum(space.decode(G.params, z, hooks={"b8": lambda x: scale * x}))

    grad = jax.grad(loss)(1.0)
    step = 1e-2
    numeric = (loss(1.0 + step) - loss(1.0 - step)) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=2e-2)


def test_biggan_hook_reaches_the_output(biggan_tiny):
    G = biggan_tiny
    space = latent_space(G, "z", class_index=0)
    z = space.sample(jax.random.key(5), 1)
    layer = G.layer_names[1]
    same = space.decode(G.params, z, hooks={layer: lambda x: x})
    np.testing.assert_array_equal(same, space.decode(G.params, z))
    zeroed = space.decode(G.params, z, hooks={layer: jnp.zeros_like})
    assert float(jnp.abs(zeroed - same).max()) > 1e-3
    assert space.features(G.params, z, [layer], hooks={layer: jnp.zeros_like})[layer].max() == 0


def test_bad_hooks_are_refused(sg2):
    space = latent_space(sg2, "w")
    w = space.sample(jax.random.key(6), 1)
    with pytest.raises(ValueError, match="unknown layers.*'nope'"):
        space.decode(sg2.params, w, hooks={"nope": lambda x: x})
    with pytest.raises(ValueError, match="hook for layer 'b8' returned shape"):
        space.decode(sg2.params, w, hooks={"b8": lambda x: x[..., :1]})
    with pytest.raises(ValueError, match=r"hooks\['b8'\] must be a function"):
        space.decode(sg2.params, w, hooks={"b8": 3})
    s_space = latent_space(sg2, "s")
    with pytest.raises(ValueError, match="not supported in the 's' space"):
        s_space.decode(sg2.params, s_space.sample(jax.random.key(7), 1), hooks={"b8": lambda x: x})
