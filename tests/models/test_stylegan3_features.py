"""Every latentjax feature runs on a StyleGAN3 (a tiny random T config): latent spaces z, w, w+ and s,
SeFa, GANSpace, the Jacobian method, Voynov, DP-LaSE, walks, features and hooks, and inversion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from latentjax.models.stylegan3 import StyleGAN3, StyleGAN3Config


@pytest.fixture(scope="module")
def sg3():
    config = StyleGAN3Config(z_dim=8, w_dim=8, img_resolution=16, channel_base=256, channel_max=16, num_layers=4,
                             num_critical=1, margin_size=2, mapping_layers=1)
    return StyleGAN3.init(config, jax.random.key(0))


def test_every_space_decodes_the_same_sample(sg3):
    z = jax.random.normal(jax.random.key(1), (2, 8))
    ws = sg3.mapping(sg3.params, z)
    expected = np.asarray(jax.jit(sg3.synthesis)(sg3.params, ws))
    spaces = {name: lj.latent_space(sg3, name, fit_samples=200) for name in ("z", "w+", "s")}
    latents = {"z": z, "w+": ws, "s": spaces["s"].styles(sg3.params, ws)}
    for name, space in spaces.items():
        np.testing.assert_allclose(jax.jit(space.decode)(sg3.params, latents[name]), expected, rtol=1e-4, atol=1e-5)
    assert lj.latent_space(sg3).name == "w+"  # style-based: closed-form methods act in w+


def test_directions_walks_and_hooks(sg3):
    space = lj.latent_space(sg3, "w+", fit_samples=200)
    for d in (lj.directions.sefa(sg3, k=3), lj.directions.ganspace(space, k=3, num_samples=300, progress=False),
              lj.directions.jacobian(space, k=2, num_samples=1, progress=False)):
        assert d.vectors.shape[1] == sg3.w_dim and np.allclose(np.linalg.norm(d.vectors, axis=1), 1, atol=1e-4)
    latent = space.sample(jax.random.key(2), 1)[0]
    walked = lj.walks.sweep(lj.walks.linear, space, latent, jnp.asarray(d.vectors), jnp.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(walked[:, 1], jnp.broadcast_to(latent, walked[:, 1].shape))
    layer = sg3.layer_names[1]
    feats = jax.jit(lambda p, x: space.features(p, x, [layer])[layer])(sg3.params, latent[None])
    zeroed = jax.jit(lambda p, x: space.decode(p, x, hooks={layer: jnp.zeros_like}))(sg3.params, latent[None])
    assert feats.ndim == 4 and not np.allclose(zeroed, jax.jit(space.decode)(sg3.params, latent[None]))


def test_inversion_recovers_a_generated_image(sg3):
    z = jax.random.normal(jax.random.key(3), (2, 8))
    targets = np.clip(np.asarray(jax.jit(sg3.generate)(sg3.params, z)), -1, 1)
    res = lj.invert(sg3, targets, space="w+", steps=40, loss="mse", key=jax.random.key(0), progress=False)
    assert res.latents.shape == (2, sg3.num_ws, sg3.w_dim)
    start = lj.inversion.inversion_space(sg3, "w+").prior.mean  # where the projector starts
    start_images = jax.jit(sg3.synthesis)(sg3.params, jnp.broadcast_to(start, (2, sg3.num_ws, sg3.w_dim)))
    start_mse = np.mean(np.square(np.asarray(start_images) - targets), axis=(1, 2, 3))
    assert np.all(res.losses["mse"] < 0.5 * start_mse), (res.losses["mse"], start_mse)


@pytest.mark.slow  # compiles a reconstructor, a deformator and DP-LaSE's subspace model
def test_learned_methods_train_on_it(sg3):
    """Voynov (LeNet reconstructor on images resized to 32 px) and DP-LaSE (channel subspaces of a
    StyleGAN3 layer) train a few steps on it and return finite directions in its w."""
    space = lj.latent_space(sg3, "w")
    voynov = lj.directions.voynov(space, k=3, steps=3, batch_size=4, eval_per_direction=2, grid_size=0,
                                  fc_inner_dim=16, reconstructor="lenet", reconstructor_size=32, progress=False)
    dplase = lj.directions.dplase(space, k=3, steps=4, batch_size=4, layer=sg3.layer_names[2], num_groups=2,
                                  subspace_steps=2, score_samples=4, lr=1e-2, subspace_lr=1e-2, progress=False)
    for d in (voynov, dplase):
        assert d.vectors.shape == (3, sg3.w_dim) and np.isfinite(d.vectors).all() and d.space["name"] == "w"
    assert np.isfinite(voynov.scores).all() and voynov.settings["step"] == 3
