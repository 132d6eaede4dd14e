"""LatentSpace: every space decodes a sample to the same image; densities agree with independent formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import latentjax as lj
from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.latent import (latent_space, moments_init, moments_update, pca_init, pca_update, standard_normal,
                              stream)
from support import FIXTURES, relative_error

FIT = 2000  # samples for the fitted w Gaussian (batches of 1000)


@pytest.fixture(scope="module")
def G():
    return lj.load_generator(FIXTURES / "stylegan2" / "ada_gray_s16.pt")


def _fit_samples(G, num=FIT, seed=0, batch=1000):
    """The w samples the fit sees: batch i is drawn from fold_in(key(seed), i) (the `stream` contract)."""
    zs = [jax.random.normal(jax.random.fold_in(jax.random.key(seed), i), (batch, G.z_dim)) for i in range(num // batch)]
    return np.concatenate([np.asarray(G.mapping(G.params, z)[:, 0]) for z in zs]).astype(np.float64)


def test_every_space_decodes_the_same_sample(G):
    """z, w, w+ and s drawn with one key are the same sample, so they decode to the same image."""
    key = jax.random.key(3)
    z = latent_space(G, "z").sample(key, 3)
    ws = G.mapping(G.params, z)
    expected = jax.jit(G.synthesis)(G.params, ws)
    styles = 32 + 32 + 32 + 32 + 32 + 32 + 16 + 16  # input channels: b4.conv1, b4.torgb, b8 (3 layers), b16 (3)
    for name, shape in [("z", (G.z_dim,)), ("w", (G.w_dim,)), ("w+", (G.num_ws, G.w_dim)), ("s", (styles,))]:
        space = latent_space(G, name, fit_samples=FIT)
        x = space.sample(key, 3)
        assert space.shape == shape and x.shape == (3,) + shape
        assert relative_error(jax.jit(space.decode)(G.params, x), expected) < 1e-5, name
    # StyleSpace: the affine outputs concatenated; decoding them reproduces the features too.
    s_space = latent_space(G, "s")
    features = jax.jit(lambda p, s: s_space.features(p, s, ["b8", "b16.img"]))(G.params, s_space.styles(G.params, ws))
    reference = jax.jit(lambda p, w: G.features(p, w, ["b8", "b16.img"]))(G.params, ws)
    for name in reference:
        assert relative_error(features[name], reference[name]) < 1e-5


def test_streaming_statistics_equal_numpy_pca():
    """Covariance accumulation and incremental PCA over batches with different means both give the
    eigendecomposition of the full data's covariance."""
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6) * 5 for _ in range(3)]
    data = np.concatenate(batches)
    values, vectors = np.linalg.eigh(np.cov(data.T))
    moments, pca = moments_init(6), pca_init(6, 6)
    for batch in batches:
        moments, pca = moments_update(moments, jnp.asarray(batch)), pca_update(pca, jnp.asarray(batch))
    for mean in (moments.mean, pca.mean):
        np.testing.assert_allclose(mean, data.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(moments.scatter / (len(data) - 1), np.cov(data.T), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pca.variance, values[::-1], rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(np.asarray(pca.components) * vectors[:, ::-1].T, axis=1)), 1, atol=1e-5)


def test_w_density_is_the_gaussian_of_the_mapped_samples(G):
    """The fitted w Gaussian has exactly the mean and covariance of the samples it streamed."""
    space = latent_space(G, "w", fit_samples=FIT)
    samples = _fit_samples(G)
    prior = space.prior
    mean, cov = samples.mean(0), np.cov(samples.T)
    fitted_cov = np.asarray(prior.basis * prior.std ** 2) @ np.asarray(prior.basis).T
    np.testing.assert_allclose(prior.mean, mean, atol=1e-4 * np.abs(mean).max())
    assert relative_error(fitted_cov, cov) < 1e-4
    w = samples[:4]
    np.testing.assert_allclose(space.log_density(jnp.asarray(w, jnp.float32)),
                               scipy.stats.multivariate_normal(mean, cov).logpdf(w), rtol=1e-4)
    # w+ is that Gaussian on every layer independently
    wp = latent_space(G, "w+", fit_samples=FIT)
    x = jnp.stack([jnp.asarray(samples[:4], jnp.float32)] * G.num_ws, axis=1)
    np.testing.assert_allclose(wp.log_density(x), G.num_ws * space.log_density(x[:, 0]), rtol=1e-5)


def test_s_density_matches_the_styles_of_the_fitted_samples(G):
    """StyleSpace's per-channel Gaussian is the mean and std of the styles of the w samples."""
    space = latent_space(G, "s", fit_samples=FIT)
    w = jnp.asarray(_fit_samples(G), jnp.float32)
    styles = np.asarray(space.styles(G.params, jnp.broadcast_to(w[:, None], (len(w), G.num_ws, G.w_dim))), np.float64)
    np.testing.assert_allclose(space.prior.mean, styles.mean(0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(space.prior.std, styles.std(0, ddof=1), rtol=1e-3, atol=1e-5)


def test_z_and_truncated_densities_match_scipy():
    z = np.random.default_rng(1).normal(size=(5, 7)).astype(np.float32)
    np.testing.assert_allclose(standard_normal(7).log_prob(z), scipy.stats.norm.logpdf(z).sum(1), rtol=1e-5)
    # BigGAN's prior: truncation * truncnorm(-2, 2); -inf outside the box
    t = 0.4
    x = np.clip(z, -1.9, 1.9) * t
    expected = scipy.stats.truncnorm(-2, 2, scale=t).logpdf(x).sum(1)
    np.testing.assert_allclose(standard_normal(7, t, 2.0).log_prob(x), expected, rtol=1e-5)
    x[0, 3] = 2.1 * t
    assert standard_normal(7, t, 2.0).log_prob(x)[0] == -np.inf


def test_density_first_asked_for_under_jit_is_fitted_eagerly(G):
    """A w Gaussian not yet cached is fitted concretely even when first needed inside a jitted function."""
    space = latent_space(G, "w", fit_samples=1000, fit_seed=7)
    x = space.sample(jax.random.key(0), 3)
    jitted = jax.jit(space.log_density)(x)
    np.testing.assert_allclose(jitted, space.log_density(x), rtol=1e-5)


def test_stream_uses_whole_batches_and_reports_the_count():
    state, used = stream(lambda s, b: s + jnp.sum(b), jnp.zeros(()), lambda p, k, n: jnp.ones((n, 2)) * p, 2.0,
                         num_samples=250, batch_size=100, key=jax.random.key(0), progress=False)
    assert used == 300 and float(state) == 300 * 2 * 2.0


def test_spaces_refuse_what_they_cannot_do():
    config = StyleGAN2Config(z_dim=4, w_dim=4, c_dim=3, embed_features=4, img_resolution=8, img_channels=3,
                             channels=(8, 8), mapping_layers=1)
    G = StyleGAN2(config, jax.eval_shape(lambda: StyleGAN2.init(config, jax.random.key(0)).params))
    with pytest.raises(ValueError, match="pass class_index"):
        latent_space(G, "w").sample(jax.random.key(0), 1)
    with pytest.raises(ValueError, match="class_index must be in"):
        latent_space(G, "w", class_index=3)
    with pytest.raises(ValueError, match="latent spaces"):
        latent_space(G, "q", class_index=0)
    with pytest.raises(ValueError, match="unknown"):
        latent_space(G, "z", class_index=0, truncation=0.5)
    with pytest.raises(ValueError, match="per-layer mask"):
        latent_space(G, "w", class_index=0).embed(jnp.ones(4), jnp.ones(4, bool))
    assert latent_space(G, "w+", class_index=1).embed(jnp.ones(4), jnp.arange(4) < 2).shape == (config.num_ws, 4)
    with pytest.raises(ValueError, match="no latent spaces"):
        latent_space(object(), "z")
