"""Walks: iso-density keeps the density, per-layer edits touch only their layers, conditional
edits hold the other directions' projections, and everything is the same under jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from latentjax import walks
from latentjax.latent import latent_space
from support import FIXTURES

FIT = 2000


@pytest.fixture(scope="module")
def G():
    return lj.load_generator(FIXTURES / "stylegan2" / "ada_gray_s16.pt")


def _unit(key, dim):
    v = jax.random.normal(key, (dim,))
    return v / jnp.linalg.norm(v)


@pytest.mark.parametrize("name", ["z", "w", "w+", "s"])
def test_iso_density_walk_keeps_log_density_over_100_steps(G, name):
    space = latent_space(G, name, fit_samples=FIT)
    x = space.sample(jax.random.key(0), 3)
    v = _unit(jax.random.key(1), space.direction_dim)
    steps = jnp.linspace(-20.0, 20.0, 100)
    path = jax.jit(jax.vmap(lambda xi: jax.vmap(lambda t: walks.iso_density(space, xi, v, t))(steps)))(x)
    log_p = space.log_density(path.reshape((-1,) + space.shape)).reshape(3, 100)
    start = space.log_density(x)
    # float32 rounding of the terms of log p: |u|²/2, the log-stds and the constant
    prior = space.prior
    u = prior.whiten(x)
    size = u[0].size
    scale = (0.5 * jnp.sum(jnp.square(u), axis=tuple(range(1, u.ndim)))
             + size / prior.std.size * jnp.sum(jnp.abs(jnp.log(prior.std))) + 0.92 * size)
    assert np.all(np.abs(np.asarray(log_p) - np.asarray(start)[:, None]) <= 1e-5 * np.asarray(scale)[:, None])
    moved = jnp.sqrt(jnp.sum(jnp.square(path[:, -1] - x), axis=tuple(range(1, x.ndim))))
    assert np.all(np.asarray(moved) > 1.0), "the walk must actually move"


def test_iso_density_walk_on_chosen_layers_leaves_the_others(G):
    space = latent_space(G, "w+", fit_samples=FIT)
    x = space.sample(jax.random.key(11), 2)
    v = _unit(jax.random.key(12), G.w_dim)
    mask = jnp.arange(G.num_ws) < 2
    edited = jax.vmap(lambda xi: walks.iso_density(space, xi, v, 4.0, mask))(x)
    np.testing.assert_array_equal(edited[:, 2:], x[:, 2:])
    assert float(jnp.abs(edited[:, :2] - x[:, :2]).min()) > 0
    np.testing.assert_allclose(space.log_density(edited), space.log_density(x), rtol=1e-5)


def test_iso_density_starts_like_the_linear_walk(G):
    """For a small step, the iso-density walk is the linear walk minus its radial component."""
    space = latent_space(G, "z")
    x = space.sample(jax.random.key(2), 1)[0]
    v = _unit(jax.random.key(3), space.direction_dim)
    eps = 1e-2
    tangent = v - jnp.dot(v, x) / jnp.dot(x, x) * x
    np.testing.assert_allclose((walks.iso_density(space, x, v, eps) - x) / eps, tangent, atol=2e-3)
    np.testing.assert_allclose(walks.iso_density(space, x, x / jnp.linalg.norm(x), 5.0), x, rtol=1e-5)


def test_per_layer_edit_changes_only_the_chosen_layers_inputs(G):
    """Edit w+ layers 1 and 2: the styles (affine inputs) of every layer reading another w are unchanged."""
    space = latent_space(G, "w+")
    s_space = latent_space(G, "s")
    x = space.sample(jax.random.key(4), 2)
    v = _unit(jax.random.key(5), G.w_dim)
    edited = jax.vmap(lambda xi: walks.per_layer(space, xi, v, 2.0, [1, 2]))(x)
    before, after = s_space.styles(G.params, x), s_space.styles(G.params, edited)
    offsets = np.cumsum((0,) + s_space.style_sizes)
    for (block, layer, w_idx), lo, hi in zip(s_space.affine_layers, offsets[:-1], offsets[1:]):
        change = float(jnp.abs(after[:, lo:hi] - before[:, lo:hi]).max())
        if w_idx in (1, 2):
            assert change > 1e-2, (block, layer)
        else:
            assert change == 0.0, (block, layer)
    np.testing.assert_array_equal(walks.per_layer(space, x[0], v, 2.0, "1-2"), edited[0])
    with pytest.raises(ValueError, match="w\\+"):
        walks.per_layer(latent_space(G, "w"), x[0, 0], v, 1.0, [1])


def test_conditional_walk_holds_the_conditions(G):
    space = latent_space(G, "w")
    x = space.sample(jax.random.key(6), 3)
    conditions = jnp.stack([_unit(jax.random.key(7), G.w_dim), _unit(jax.random.key(8), G.w_dim)])
    primary = _unit(jax.random.key(9), G.w_dim) + 0.8 * conditions[0]  # correlated with a condition
    edited = jax.vmap(lambda xi: walks.conditional(space, xi, primary, conditions, 3.0))(x)
    np.testing.assert_allclose(edited @ conditions.T, x @ conditions.T, atol=1e-5)
    direction = walks.conditional_direction(primary, conditions)
    np.testing.assert_allclose(jnp.linalg.norm(direction), 1, rtol=1e-6)
    np.testing.assert_allclose(jnp.linalg.norm(edited - x, axis=1), 3.0, rtol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "iso_density"])
def test_sweep_under_jit_and_vmap_equals_a_loop(G, kind):
    space = latent_space(G, "w+", fit_samples=FIT)
    x = space.sample(jax.random.key(10), 1)[0]
    vectors = jnp.stack([_unit(jax.random.key(i), G.w_dim) for i in range(3)])
    layers = jnp.asarray(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], bool))
    steps = jnp.linspace(-2.0, 2.0, 5)
    walk = walks.WALKS[kind]
    swept = jax.jit(lambda x: walks.sweep(walk, space, x, vectors, steps, layers))(x)
    assert swept.shape == (3, 5) + space.shape
    for k in range(3):
        for i, t in enumerate(steps):
            np.testing.assert_allclose(swept[k, i], walk(space, x, vectors[k], t, layers[k]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(swept[:, 2], jnp.broadcast_to(x, (3,) + x.shape), rtol=1e-5, atol=1e-5)  # step 0


def test_box_projection_has_finite_gradients():
    """onto_sphere_in_box is piecewise; the branches it does not take must not poison the gradient."""
    u = jnp.array([3.0, 0.5, -2.5, 0.1, 1.0])
    bound = 2.0
    inside = walks.onto_sphere_in_box(u, bound)
    np.testing.assert_allclose(jnp.linalg.norm(inside), jnp.linalg.norm(u), rtol=1e-6)
    assert float(jnp.abs(inside).max()) <= bound
    for point in (u, u / 10):  # clipped, and untouched (the identity: gradient of the sum is all ones)
        grad = jax.grad(lambda v: jnp.sum(walks.onto_sphere_in_box(v, bound)))(point)
        assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(walks.onto_sphere_in_box(v, bound)))(u / 10), jnp.ones(5))
