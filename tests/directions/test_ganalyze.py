"""GANalyze: the transform T(z, alpha) and its three normalisations, the settings it refuses, and a
short run on a tiny generator whose learned direction moves a differentiable score by alpha."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.directions import GANalyzeConfig, ganalyze
from latentjax.directions.ganalyze import transform
from latentjax.metrics.scorer import Scorer


def test_transform_rescales_per_sample_over_the_batch_or_not_at_all():
    z = jax.random.normal(jax.random.key(0), (5, 7))
    shift, alpha = jax.random.normal(jax.random.key(1), (7,)), jnp.linspace(-0.5, 0.5, 5)
    plain = transform(z, shift, alpha, "none")
    np.testing.assert_allclose(plain, z + alpha[:, None] * shift, rtol=1e-6)
    per_sample = transform(z, shift, alpha, "sample")
    np.testing.assert_allclose(jnp.linalg.norm(per_sample, axis=1), jnp.linalg.norm(z, axis=1), rtol=1e-5)
    np.testing.assert_allclose(per_sample / jnp.linalg.norm(per_sample, axis=1, keepdims=True),
                               plain / jnp.linalg.norm(plain, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    batch = transform(z, shift, alpha, "batch")  # the PyTorch reference's quirk: one scale for the whole batch
    np.testing.assert_allclose(batch, plain * jnp.linalg.norm(z) / jnp.linalg.norm(plain), rtol=1e-5)
    assert not np.allclose(batch, per_sample)
    np.testing.assert_allclose(transform(z, shift, jnp.zeros(5), "sample"), z, rtol=1e-6)
    with pytest.raises(ValueError, match="normalize"):
        transform(z, shift, alpha, "layer")


@pytest.mark.parametrize("changes, message", [
    (dict(normalize="pixel"), "normalize"), (dict(init="ones"), "init"), (dict(curve_alphas=(0.1,)), "curve_alphas"),
    (dict(alpha_range=0.0), "alpha_range"), (dict(batch_size=0), "batch_size"), (dict(attributes=("red", 3)), "attributes"),
])
def test_config_refuses_nonsense(changes, message):
    with pytest.raises(ValueError, match=message):
        GANalyzeConfig.from_dict(changes)


@pytest.fixture(scope="module")
def tiny():
    config = StyleGAN2Config(z_dim=6, w_dim=6, img_resolution=8, img_channels=3, channels=(8, 8), mapping_layers=1)
    return StyleGAN2.init(config, jax.random.key(0))


def brightness_scorer(differentiable=True):
    """Two differentiable attributes of an image: mean red and mean blue, scaled to a spread of about 0.25."""
    return Scorer(lambda _, images: 0.5 * jnp.stack([jnp.mean(images[..., 0], axis=(1, 2)),
                                                     jnp.mean(images[..., 2], axis=(1, 2))], axis=-1),
                  ("red", "blue"), differentiable=differentiable)


def test_refuses_a_scorer_without_gradients_and_unknown_attributes(tiny):
    with pytest.raises(ValueError, match="differentiable"):
        ganalyze(tiny, brightness_scorer(differentiable=False), steps=1)
    with pytest.raises(ValueError, match="green"):
        ganalyze(tiny, brightness_scorer(), steps=1, attributes=("green",))


def test_learns_directions_whose_score_follows_alpha(tiny):
    scorer = brightness_scorer()
    space = lj.latent_space(tiny, "w")  # a 6-d z sphere leaves too little room to move the score by +-0.5
    d = ganalyze(space, scorer, steps=300, batch_size=8, lr=1e-2, eval_samples=64, key=jax.random.key(1),
                 normalize="none")
    assert d.method == "ganalyze" and d.settings["directions"] == ["red", "blue"] and d.space["name"] == "w"
    np.testing.assert_allclose(np.linalg.norm(d.vectors, axis=1), 1.0, rtol=1e-6)
    curves = np.array([d.settings["curve"][a] for a in ("red", "blue")])
    held_out = space.sample(jax.random.key(d.settings["eval_seed"]), 64, tiny.params)
    at_zero = np.mean(np.asarray(scorer(space.decode(tiny.params, held_out))), axis=0)
    np.testing.assert_allclose(curves[:, 3], at_zero, rtol=1e-4, atol=1e-5)  # alpha 0: the held-out latents' mean
    assert d.settings["monotone"] == [True, True]
    assert np.all((d.scores > 0.6) & (d.scores < 1.4)), d.scores  # the score moves by about alpha
    # the trained edit, theta = norm * vector, reproduces the curve's last point
    theta = d.settings["theta_norms"][0] * d.vectors[0]
    moved = transform(held_out, space.embed(jnp.asarray(theta, jnp.float32)), jnp.full(64, 0.3), "none")
    assert float(np.mean(scorer(space.decode(tiny.params, moved))[:, 0])) == pytest.approx(curves[0, -1], rel=1e-4)


def test_class_dependent_theta_learns_one_direction_per_class(tiny):
    """The reference's Linear(onehot(y)): one theta per attribute and class, trained with a uniform class
    per sample; applying class c's theta to class-c samples moves the score by about alpha."""
    config = StyleGAN2Config(z_dim=6, w_dim=6, c_dim=3, embed_features=6, img_resolution=8, img_channels=3,
                             channels=(8, 8), mapping_layers=1)
    G = StyleGAN2.init(config, jax.random.key(2))
    scorer = brightness_scorer()
    with pytest.raises(ValueError, match="class-conditional"):
        ganalyze(tiny, scorer, steps=1, class_dependent=True)
    with pytest.raises(ValueError, match="z space"):
        ganalyze(lj.latent_space(G, "w", class_index=0), scorer, steps=1, class_dependent=True)
    space = lj.latent_space(G, "z")
    d = ganalyze(space, scorer, steps=300, batch_size=8, lr=3e-2, eval_samples=48, key=jax.random.key(1),
                 normalize="none", class_dependent=True, attributes=("red",))
    assert len(d) == 3 and d.settings["directions"] == ["red@0", "red@1", "red@2"] and d.settings["classes"] == [0, 1, 2]
    assert d.settings["monotone"] == [True] and 0.6 < d.settings["slopes"][0] < 1.4, d.settings["slopes"]
    z = space.sample(jax.random.key(5), 32)
    for c in range(3):
        theta = jnp.asarray(d.settings["theta_norms"][c] * d.vectors[c], jnp.float32)
        before = scorer(space.decode(G.params, z, classes=c))[:, 0]
        after = scorer(space.decode(G.params, transform(z, theta, jnp.full(32, 0.3), "none"), classes=c))[:, 0]
        assert 0.15 < float(jnp.mean(after - before)) < 0.45, (c, float(jnp.mean(after - before)))
    assert not np.allclose(d.vectors[0], d.vectors[1], atol=0.05)  # each class its own theta
