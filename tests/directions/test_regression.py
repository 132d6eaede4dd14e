"""Linear-encoded semantics: the regression against scikit-learn's Ridge and ElasticNet, and the
method as that regression on a scored table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Ridge

import latentjax as lj
from latentjax.directions import linear_semantics, regress
from latentjax.metrics.scorer import Scorer, score_samples
from latentjax import StyleGAN2, StyleGAN2Config


def planted(n=1500, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = np.zeros(d)
    w[:3] = [1.0, -2.0, 0.5]
    return x, x @ w + 0.3 + 0.5 * rng.normal(size=n), w


def test_ridge_matches_sklearn_and_scores_the_holdout():
    x, y, w = planted()
    fit = regress(x, y, ridge=0.01, holdout=0.0)
    reference = Ridge(alpha=0.01 * len(y)).fit(x, y)
    np.testing.assert_allclose(fit.coef, reference.coef_, atol=1e-10)
    assert fit.intercept == pytest.approx(reference.intercept_)
    assert fit.r2_fit == pytest.approx(reference.score(x, y))
    held = regress(x, y, ridge=0.01, holdout=0.3)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:450], order[450:]
    reference = Ridge(alpha=0.01 * len(train)).fit(x[train], y[train])
    assert held.r2_holdout == pytest.approx(reference.score(x[test], y[test]))
    y[:100] = np.nan  # dropped, not fitted
    assert np.isfinite(regress(x, y).coef).all()


def test_l1_is_sklearns_elastic_net():
    x, y, w = planted(seed=1)
    fit = regress(x, y, ridge=0.01, l1=0.1, holdout=0.0, iterations=3000)
    reference = ElasticNet(alpha=0.11, l1_ratio=0.1 / 0.11, tol=1e-10, max_iter=100_000).fit(x, y)
    np.testing.assert_allclose(fit.coef, reference.coef_, atol=1e-5)
    assert set(np.flatnonzero(fit.coef)) == {0, 1, 2}  # sparse: only the planted coordinates
    with pytest.raises(ValueError, match="l1 must be a number >= 0"):
        regress(x, y, l1=-1.0)
    with pytest.raises(ValueError, match="holdout must be in \\[0, 1\\)"):
        regress(x, y, holdout=1.0)


def test_linear_semantics_is_the_regression_of_the_scored_table():
    config = StyleGAN2Config(z_dim=6, w_dim=6, img_resolution=8, img_channels=3, channels=(8, 8), mapping_layers=1)
    G = StyleGAN2.init(config, jax.random.key(0))
    scorer = Scorer(lambda _, images: jnp.stack([jnp.mean(images[..., 0], axis=(1, 2)),
                                                 jnp.mean(images[..., 2], axis=(1, 2))], axis=-1), ("red", "blue"))
    space = lj.latent_space(G, "w+")
    d = linear_semantics(space, scorer, num_samples=300, batch_size=100, progress=False)
    assert d.method == "linear_semantics" and d.settings["directions"] == ["red", "blue"]
    assert d.space["name"] == "w+" and d.dim == 6  # pooled: one w shift on every layer
    latents, scores = score_samples(space, scorer, 300, batch_size=100, progress=False)
    pooled = latents.mean(axis=1)
    for k in range(2):
        fit = regress(pooled, scores[:, k], ridge=1e-3, holdout=0.2)
        np.testing.assert_allclose(d.vectors[k], fit.coef / np.linalg.norm(fit.coef), atol=1e-5)
        assert d.scores[k] == pytest.approx(fit.r2_holdout, abs=1e-6)
    with pytest.raises(ValueError, match="every coefficient is 0"):
        linear_semantics(space, scorer, num_samples=50, l1=1e3, progress=False)


def test_group_lasso_meets_its_optimality_conditions_and_keeps_whole_groups():
    """Group sparsity: at the optimum, each active group's gradient balances its penalty,
    X_g'r/n - ridge b_g = l1 sqrt(|g|) b_g/|b_g|, and each zero group's satisfies |X_g'r/n| <= l1 sqrt(|g|)."""
    rng = np.random.default_rng(3)
    n, sizes = 2000, [4, 3, 5, 2]
    groups = np.repeat(np.arange(4), sizes)
    x = rng.normal(size=(n, groups.size))
    truth = np.where(np.isin(groups, [1, 3]), rng.normal(size=groups.size), 0.0)
    y = x @ truth + 0.5 * rng.normal(size=n)
    ridge, l1 = 0.01, 0.05
    fit = regress(x, y, ridge=ridge, l1=l1, holdout=0.0, iterations=5000, groups=groups)
    assert set(groups[fit.coef != 0]) == {1, 3}
    assert np.all(fit.coef[np.isin(groups, [1, 3])] != 0)  # whole groups, not single coordinates
    xc, yc = x - x.mean(axis=0), y - y.mean()
    correlation = xc.T @ (yc - xc @ fit.coef) / n
    for g, size in enumerate(sizes):
        member = groups == g
        b = fit.coef[member]
        if np.any(b):
            np.testing.assert_allclose(correlation[member] - ridge * b, l1 * np.sqrt(size) * b / np.linalg.norm(b),
                                       atol=2e-4)
        else:
            assert np.linalg.norm(correlation[member]) <= l1 * np.sqrt(size) + 1e-4
    # one coordinate per group is the plain L1 fit
    np.testing.assert_allclose(regress(x, y, l1=l1, holdout=0.0, groups=np.arange(groups.size)).coef,
                               regress(x, y, l1=l1, holdout=0.0).coef, atol=1e-6)
    with pytest.raises(ValueError, match="groups must be"):
        regress(x, y, l1=l1, groups=groups[:-1])


def test_layer_sparsity_localises_stylespace_directions_to_layers():
    config = StyleGAN2Config(z_dim=6, w_dim=6, img_resolution=8, img_channels=3, channels=(8, 8), mapping_layers=1)
    G = StyleGAN2.init(config, jax.random.key(0))
    scorer = Scorer(lambda _, images: jnp.mean(images[..., :1], axis=(1, 2)), ("red",))
    space = lj.latent_space(G, "s")
    layers = space.coordinate_layers
    assert layers.shape == (space.direction_dim,) and len(np.unique(layers)) == len(space.style_sizes)
    dense = linear_semantics(space, scorer, num_samples=400, batch_size=200, progress=False)
    sparse = linear_semantics(space, scorer, num_samples=400, batch_size=200, progress=False, l1=3e-3,
                              sparsity="layers")
    assert dense.settings["layers_used"] == [list(range(len(space.style_sizes)))]
    used = sparse.settings["layers_used"][0]
    assert 0 < len(used) < len(space.style_sizes)
    assert np.all(sparse.vectors[0][~np.isin(layers, used)] == 0) and np.all(sparse.vectors[0][np.isin(layers, used)] != 0)
    assert sparse.scores[0] > 0.5 * dense.scores[0] > 0, (sparse.scores, dense.scores)
    with pytest.raises(ValueError, match="sparsity='layers' needs"):
        linear_semantics(lj.latent_space(G, "w"), scorer, num_samples=50, l1=1e-3, sparsity="layers", progress=False)
    with pytest.raises(ValueError, match="sparsity must be one of"):
        linear_semantics(space, scorer, num_samples=50, sparsity="channels", progress=False)
