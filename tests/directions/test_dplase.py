"""DP-LaSE: the density-preserving walks, the channel subspaces, the task on the harness, the configs."""

import dataclasses
import importlib
import importlib.util
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import latentjax as lj
from latentjax import walks
dp = importlib.import_module("latentjax.directions.dplase")  # the module (the package exports the function)
from latentjax.directions import subspace
from latentjax.directions.base import Directions
from latentjax.directions.learned import DIRECTIONS_FILE
from latentjax.latent import standard_normal
from latentjax.models.stylegan2 import StyleGAN2, StyleGAN2Config
from latentjax.train.checkpoint import read_state
from latentjax.train.metrics import read_metrics
from support import FIXTURES, REPO, assert_trees_close, random_params, run_python

CONFIG_FILE = REPO / "configs" / "dplase.py"
# the settings of `configs/dplase.py:smoke` (shapes variant) at layer b4 of `tiny_generator`
SMOKE = dict(k=4, steps=4, batch_size=8, layer="b4", num_groups=2, subspace_steps=2, score_samples=4, lr=1e-2,
             subspace_lr=1e-2)


def tiny_generator(seed: int = 0) -> StyleGAN2:
    """An 8 px StyleGAN2 with random weights: z = w = 8, layer b4 is 4x4x8."""
    config = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 8),
                             mapping_layers=1)
    return StyleGAN2(config, random_params(config, seed))


@pytest.fixture(scope="module")
def generator():
    return tiny_generator()


# --- walks ---------------------------------------------------------------------------------------
def test_traverse_keeps_the_norm_and_follows_the_formula():
    z = jax.random.normal(jax.random.key(0), (64, 32))
    d = jax.random.normal(jax.random.key(1), (64, 32))
    t = jax.random.uniform(jax.random.key(2), (64,), minval=-10, maxval=10)
    z_t = np.asarray(walks.density_preserving_traverse(z, d, t))
    z64, d64, t64 = (np.asarray(x, np.float64) for x in (z, d, t))
    moved = z64 + t64[:, None] * d64
    expected = moved / np.linalg.norm(moved, axis=1, keepdims=True) * np.linalg.norm(z64, axis=1, keepdims=True)
    np.testing.assert_allclose(z_t, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(z_t, axis=1), np.linalg.norm(z64, axis=1), rtol=1e-6)  # a few ulps
    space = types.SimpleNamespace(prior=standard_normal(32), embed=lambda v, layers=None: v)
    unit = d / jnp.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(walks.density_preserving_batch(space, z, unit, t),
                               walks.density_preserving_traverse(z, unit, t), rtol=1e-6, atol=1e-6)


def test_walk_in_w_keeps_the_prior_density(generator):
    space = lj.latent_space(generator, "w", fit_samples=500)
    w = space.sample(jax.random.key(0), 32)
    d = jax.random.normal(jax.random.key(1), (8,))
    t = jnp.linspace(-10.0, 10.0, 32)
    w_t = jax.jit(lambda w: walks.density_preserving_batch(space, w, d / jnp.linalg.norm(d), t))(w)
    radius = lambda x: np.linalg.norm(np.asarray(space.prior.whiten(x), np.float64), axis=1)
    np.testing.assert_allclose(radius(w_t), radius(w), rtol=1e-5)
    np.testing.assert_allclose(space.log_density(w_t), space.log_density(w), rtol=1e-5, atol=1e-4)
    assert np.min(np.linalg.norm(w_t - w, axis=1)[np.abs(t) > 1]) > 0.1 * np.mean(np.linalg.norm(w, axis=1))


def test_walk_stays_in_a_truncation_box():
    space = types.SimpleNamespace(prior=standard_normal(16, 0.5, bound=2.0), embed=lambda v, layers=None: v)
    z = jnp.clip(jax.random.normal(jax.random.key(0), (16, 16)) * 0.5, -0.99, 0.99)
    z_t = jax.jit(lambda z: walks.density_preserving_batch(space, z, jnp.eye(16)[0], jnp.full((16,), 10.0)))(z)
    assert np.all(np.isfinite(space.prior.log_prob(z_t))) and np.all(np.abs(z_t) <= 1.0)
    np.testing.assert_allclose(np.linalg.norm(z_t, axis=1), np.linalg.norm(z, axis=1), rtol=1e-5)
    # trainable through the box: finite gradients with respect to the direction
    grad = jax.jit(jax.grad(lambda d: jnp.sum(jnp.sin(walks.density_preserving_batch(space, z, d, 10.0)))))(jnp.eye(16)[0])
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_restricted_decode_edits_only_the_masked_channels(generator):
    space, params = lj.latent_space(generator, "z"), generator.params
    z = space.sample(jax.random.key(0), 2)
    edited = z + 3.0

    @jax.jit
    def run(mask):
        """restricted_decode; decoding with the mixed features put in directly; the plain decode."""
        f0, f1 = (space.features(params, x, ["b4"])["b4"] for x in (z, edited))
        mixed = jnp.where(mask[:, None, None, :], f1, f0)
        return (walks.restricted_decode(space, params, z, edited, "b4", mask),
                space.decode(params, z, hooks={"b4": lambda _: mixed}), space.decode(params, z))

    mask = np.zeros((2, 8), bool)
    mask[0, [1, 4]] = mask[1, 2] = True
    restricted, expected, plain = run(mask)
    np.testing.assert_allclose(restricted, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(restricted - plain).max(axis=(1, 2, 3)).min() > 1e-3  # the masked channels do act
    restricted, _, plain = run(np.zeros((2, 8), bool))
    np.testing.assert_allclose(restricted, plain, rtol=1e-5, atol=1e-6)
    one_mask = jax.jit(lambda m: walks.restricted_decode(space, params, z, edited, "b4", m))(mask[0])
    np.testing.assert_allclose(one_mask, run(np.stack([mask[0], mask[0]]))[0], rtol=1e-5, atol=1e-6)


# --- subspaces -----------------------------------------------------------------------------------
def planted_affinity(sizes, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    same = labels[:, None] == labels[None, :]
    A = np.where(same, rng.uniform(0.5, 1.0, same.shape), rng.uniform(0.0, 0.03, same.shape))
    A = (A + A.T) / 2
    np.fill_diagonal(A, 0)
    return A, labels


def same_partition(a, b) -> bool:
    return np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


def test_spectral_clustering_recovers_planted_groups():
    A, labels = planted_affinity((5, 9, 3, 7))
    assert same_partition(subspace.spectral_clustering(A, 4), labels)
    # from a self-expressive matrix: asymmetric, signed, with a diagonal that must be ignored
    rng = np.random.default_rng(1)
    S = A * rng.choice([-1.0, 1.0], A.shape) * rng.uniform(0.2, 2.0, A.shape) + 5.0 * np.eye(len(A))
    groups = subspace.channel_groups(S, 4, method="njw")
    assert groups.shape == (4, 24) and same_partition(np.argmax(groups, axis=0), labels)
    assert list(groups.sum(1)) == [9, 7, 5, 3]  # largest first
    # (the reference's clustering splits these dense groups, and differently for different draws:
    # its threshold keeps about two links per row; its parity is tested on fixtures below)
    with pytest.raises(ValueError, match="num_groups must be in"):
        subspace.spectral_clustering(A, 25)
    with pytest.raises(ValueError, match="symmetric"):
        subspace.spectral_clustering(A - 2 * np.triu(A), 2)


@pytest.mark.parametrize("method", subspace.CLUSTERINGS)
@pytest.mark.parametrize("num_groups", [1, 3, 8])
def test_channel_groups_partition_the_channels(num_groups, method):
    S = jax.random.normal(jax.random.key(num_groups), (8, 8))
    groups = subspace.channel_groups(S, num_groups, method=method)
    assert groups.shape == (num_groups, 8) and groups.dtype == bool
    np.testing.assert_array_equal(groups.sum(0), 1)  # every channel in exactly one group
    assert np.all(np.diff(groups.sum(1)) <= 0) and groups[0].any()  # largest first (the reference's may be empty)
    if method == "njw":
        assert np.all(groups.sum(1) >= 1)
    np.testing.assert_array_equal(subspace.channel_groups(S, num_groups, method=method), groups)  # fixed seed
    with pytest.raises(ValueError, match="method must be one of"):
        subspace.channel_groups(S, num_groups, method="kmeans")


REFERENCE_CLUSTERING = FIXTURES / "dplase" / "reference_clustering.npz"


@pytest.mark.parametrize("case", ["a", "b"])
def test_clustering_matches_the_reference_functions(case):
    """The reference's relu -> thrC(0.2) -> post_proC(d 12, power 3) -> sklearn spectral clustering
    (discretize), run on two seeded S (tests/fixtures/dplase/README.md): each stage and the partition.
    Case b is one where the partition is not the planted one, nor NJW's."""
    with np.load(REFERENCE_CLUSTERING) as f:
        S, kept, affinity, labels = (f[f"{case}_{name}"] for name in ("S", "kept", "affinity", "labels"))
    K = len(np.unique(labels))
    thresholded = subspace.threshold_rows(np.maximum(S, 0), 0.2)
    np.testing.assert_array_equal(thresholded != 0, kept)
    np.testing.assert_allclose(subspace.low_rank_affinity(thresholded, K, 12, 3.0), affinity, rtol=0, atol=1e-6)
    for seed in range(3):  # the reference's result did not depend on its (unseeded) draws either
        groups = subspace.channel_groups(S, K, seed=seed)
        assert same_partition(np.argmax(groups, axis=0), labels)
        assert list(groups.sum(1)) == sorted(np.bincount(labels)[np.bincount(labels) > 0], reverse=True)
    # our earlier clustering (NJW + k-means), on |S| + |S|ᵀ and even on the reference's affinity, is another partition
    assert not same_partition(np.argmax(subspace.channel_groups(S, K, method="njw"), axis=0), labels)
    assert not same_partition(subspace.spectral_clustering(affinity.astype(np.float64), K), labels)


def test_threshold_keeps_the_leading_share_of_each_row():
    S = np.array([[0.0, 5.0, -3.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    kept = subspace.threshold_rows(S, 0.5)  # row 0: 5 alone is 5/10, not > half: -3 joins (8/10 > 5)
    np.testing.assert_array_equal(kept[0], [0.0, 5.0, -3.0, 0.0, 0.0])
    np.testing.assert_array_equal(kept[1], 0.0)  # an all-zero row stays zero (the reference would fail)
    np.testing.assert_array_equal(kept[2], [1.0, 1.0, 1.0, 0.0, 0.0])  # ties: the first ones (2/4, then 3/4)
    np.testing.assert_array_equal(subspace.threshold_rows(S, 1.0), S)


def test_kmeans_fills_every_cluster_even_with_repeated_points():
    points = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]])
    labels = subspace.kmeans(points, 4)
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]


def test_self_expressive_training_leaves_the_diagonal():
    f = jax.random.normal(jax.random.key(0), (4, 3, 3, 6))
    f = f.at[..., 5].set(f[..., 0] + f[..., 1])  # channel 5 is expressed by channels 0 and 1
    weight = jax.random.normal(jax.random.key(1), (6, 3))
    post = lambda x: jnp.tanh(x @ weight)
    loss = lambda S: subspace.self_expressive_loss(S, f, post)[0]
    tx = optax.adam(1e-2)

    @jax.jit
    def fit(S):
        def update(carry, _):
            S, opt = carry
            updates, opt = tx.update(jax.grad(loss)(S), opt, S)
            return (optax.apply_updates(S, updates), opt), None

        (trained, _), _ = jax.lax.scan(update, (S, tx.init(S)), None, length=200)
        return trained, loss(S), loss(trained)

    S, first, last = fit(subspace.init_self_expressive(6))
    np.testing.assert_array_equal(np.diag(S), np.float32(1e-4))  # the initial value: no gradient reaches it
    assert float(last) < 0.5 * float(first)
    assert float(S[5, 0]) > 0.3 and float(S[5, 1]) > 0.3  # it found the planted expression
    rebuilt = subspace.reconstruct(S + 7.0 * jnp.eye(6), f)  # the diagonal never counts
    np.testing.assert_allclose(rebuilt, np.einsum("bhwd,cd->bhwc", f, S * (1 - np.eye(6))), rtol=1e-5, atol=1e-6)


# --- the loss ------------------------------------------------------------------------------------
class LinearSpace:
    """A toy space whose features at layer 'x' are linear in z: f = reshape(z A, [N, 2, 2, C])."""

    name, shape, direction_dim, spec = "z", (6,), 6, {"name": "z"}
    prior = standard_normal(6)

    def __init__(self, A):
        self.generator = types.SimpleNamespace(layer_names=("x",), params={"A": A}, family="toy")

    def embed(self, direction, layers=None):
        return direction

    def sample(self, key, n, params=None):
        return jax.random.normal(key, (n, 6))

    def features(self, params, latent, layers, hooks=None):
        return {"x": jnp.reshape(latent @ params["A"], (latent.shape[0], 2, 2, -1))}


def test_gradient_turns_a_direction_to_the_largest_feature_change():
    """With features A z, the traverse changes them most along A's top right singular vector q0:
    one direction, trained, turns to it (and P grows), from a random start."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    rows, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 6)))
    A = jnp.asarray(q @ np.diag([3.0, 1.0, 0.8, 0.6, 0.4, 0.2]) @ rows.T, jnp.float32)  # [6, 12]: C = 3
    settings = dp.DPLaSEConfig(k=1, layer="x", lr=0.05, subspace_steps=0, batch_size=16, steps=300)
    task = dp.build_task(LinearSpace(A), settings)

    @jax.jit
    def run(key):
        state = task.init(key)
        trained = jax.lax.fori_loop(0, settings.steps,
                                    lambda i, s: task.step(s, None, jax.random.fold_in(key, i), i)[0], state)
        return [(dp.unit_rows(s["directions"])[0] @ q[:, 0], task.evaluate(s, jax.random.key(99))["positive"])
                for s in (state, trained)]

    (start, before), (end, after) = run(jax.random.key(0))
    assert abs(float(end)) > 0.99 > abs(float(start))
    assert float(after) > 2 * float(before)


def test_settings_and_layers_are_checked(generator):
    space = lj.latent_space(generator, "z")
    assert dp.default_layer(generator) == "b4"
    with pytest.raises(ValueError, match="layer 'b64' is not a layer"):
        dp.build_task(space, dp.DPLaSEConfig(layer="b64"))
    with pytest.raises(ValueError, match="subspace_layer 'b64' is not a layer"):
        dp.build_task(space, dp.DPLaSEConfig(k=2, subspace_layer="b64"))
    with pytest.raises(ValueError, match="k=9 exceeds the 8 dimensions"):
        dp.build_task(space, dp.DPLaSEConfig(k=9))
    with pytest.raises(ValueError, match="num_groups=9 exceeds the 8 channels of 'b4'"):
        dp.build_task(space, dp.DPLaSEConfig(k=2, num_groups=9))
    with pytest.raises(ValueError, match="subspace_chunk=3 must divide k=4"):
        dp.build_task(space, dp.DPLaSEConfig(k=4, num_groups=2, subspace_chunk=3))
    with pytest.raises(ValueError, match="style_layers \\['b4.conv9'\\] are not affine layers"):
        dp.build_task(space, dp.DPLaSEConfig(k=2, features="styles", style_layers=("b4.conv9",)))
    with pytest.raises(ValueError, match="features='styles' needs a style-based"):
        dp.build_task(LinearSpace(jnp.ones((6, 12))), dp.DPLaSEConfig(k=2, features="styles", subspace_steps=0))
    for bad, match in [(dict(traverse_scale=0.0), "traverse_scale must be positive"),
                       (dict(subspace="both"), "subspace must be one of \\['per_direction', 'shared'\\]"),
                       (dict(parametrization="qr"), "parametrization must be one of"),
                       (dict(features="pixels"), "features must be one of"),
                       (dict(clustering="kmeans"), "clustering must be one of"),
                       (dict(channel_group="all"), "channel_group must be one of"),
                       (dict(steps=10, subspace_steps=10), "subspace_steps=10 must be less than steps=10 with subspace='per_direction'"),
                       (dict(steps=10, subspace_steps=11, subspace="shared"), "subspace_steps=11 exceeds steps=10"),
                       (dict(style_layers=("b4.conv1",)), "style_layers is only used with features='styles'"),
                       (dict(features="styles", layer="b4"), "layer names the traverse.s feature map"),
                       (dict(parametrization="expm", reorthogonalize=True), "reorthogonalize needs"),
                       (dict(subspace_batch_size=0), "subspace_batch_size must be >= 1"),
                       (dict(subspace_scale=-1.0), "subspace_scale must be positive or None"),
                       (dict(threshold=0.0), "threshold must be positive")]:
        with pytest.raises(ValueError, match=f"DPLaSEConfig.{match}"):
            dp.DPLaSEConfig(**bad)


# --- the per-family recipes --------------------------------------------------------------------
def test_expm_parametrisation_is_orthonormal():
    """BigGAN reference: D = expm((A - Aᵀ) / 2)[:n_dirs] with A ~ N(0, 1) [dim, dim]."""
    import scipy.linalg
    A = np.random.default_rng(0).normal(size=(12, 12)).astype(np.float32)
    D = np.asarray(dp.direction_matrix(jnp.asarray(A), 5, "expm"))
    np.testing.assert_allclose(D, scipy.linalg.expm(0.5 * (A - A.T).astype(np.float64))[:5], atol=2e-5)
    np.testing.assert_allclose(D @ D.T, np.eye(5), atol=2e-5)
    np.testing.assert_allclose(np.asarray(dp.direction_matrix(jnp.asarray(A[:5]), 5)),
                               A[:5] / np.linalg.norm(A[:5], axis=1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("recipe", ["pggan", "biggan"])
def test_recipe_weights_and_terms(recipe):
    """The PGGAN recipe: sorted |N(0, 1)| weights in P, Gram-Schmidt rows, -P + 0.001 N + 1.0 O; the
    BigGAN one (its config variant): no weights, expm rows (O = 0 to rounding), -P + 0.1 N."""
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 6)))
    space = LinearSpace(jnp.asarray(q.T, jnp.float32))
    settings = dp.DPLaSEConfig(k=3, layer="x", subspace_steps=0, batch_size=64)
    if recipe == "biggan":
        settings = dataclasses.replace(settings, **{k: v for k, v in load_config("biggan,smoke").settings.items()
                                                      if k in ("parametrization", "weighted", "weight_orthogonal",
                                                               "weight_negative", "untruncated")})
    task = dp.build_task(space, settings)
    state = task.init(jax.random.key(0))
    m = {name: float(v) for name, v in task.evaluate(state, jax.random.key(1)).items()}
    weights = np.asarray(state["weights"])
    if recipe == "biggan":
        assert state["directions"].shape == (6, 6) and np.all(weights == 1.0)
        assert (settings.weight_negative, settings.weight_orthogonal) == (0.1, 0.0) and m["orthogonal"] < 1e-10
        np.testing.assert_allclose(m["loss"], -m["positive"] + 0.1 * m["negative"], rtol=1e-5)
    else:
        assert state["directions"].shape == (3, 6) and np.all(np.diff(weights) >= 0) and weights.min() >= 0
        raw = np.asarray(state["directions"])
        np.testing.assert_allclose((raw @ raw.T)[~np.eye(3, dtype=bool)], 0.0, atol=1e-4)  # Gram-Schmidt
        np.testing.assert_allclose(m["loss"], -m["positive"] + 0.001 * m["negative"] + m["orthogonal"], rtol=1e-5)


def test_reorthogonalize_keeps_the_rows_orthogonal(generator):
    """The StyleGAN2 reference re-runs Gram-Schmidt on D's parameters after every step."""
    space = lj.latent_space(generator, "z")
    for flag in (False, True):
        settings = dp.DPLaSEConfig(k=4, lr=0.5, layer="b4", subspace_steps=0, batch_size=8, reorthogonalize=flag)
        task = dp.build_task(space, settings)
        state = jax.jit(task.step)(task.init(jax.random.key(0)), None, jax.random.key(1), 0)[0]
        gram = np.asarray(state["directions"] @ state["directions"].T)
        off = np.abs(gram[~np.eye(4, dtype=bool)]).max() / np.abs(np.diag(gram)).max()
        assert (off < 1e-5) if flag else (off > 1e-3)


def test_style_features_compare_the_chosen_styles(generator):
    """features='styles': the styles of the named affine layers, in synthesis order, form the one
    compared vector (StyleGAN2 reference: layers 1-3, styles of the mapped, truncated z)."""
    space = lj.latent_space(generator, "z", truncation_psi=0.7)
    names = [f"{b}.{layer}" for b, layer, _ in space.affine_layers]
    columns = dp.style_columns(space, (names[2], names[0]))
    sizes = list(space.style_sizes)
    expected = np.concatenate([np.arange(sizes[0]), sum(sizes[:2]) + np.arange(sizes[2])])
    np.testing.assert_array_equal(columns, expected)
    np.testing.assert_array_equal(dp.style_columns(space, None), np.arange(sum(sizes)))
    settings = dp.DPLaSEConfig(k=2, features="styles", style_layers=(names[0],), subspace_steps=0, batch_size=8)
    metrics = dp.build_task(space, settings).evaluate(dp.build_task(space, settings).init(jax.random.key(0)),
                                                      jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values()) and 0 <= float(metrics["negative"]) <= 1


def test_untruncated_latents_leave_the_box():
    """BigGAN reference: z ~ N(0, I) at truncation 1, walked without the truncation box."""
    space = types.SimpleNamespace(prior=standard_normal(16, 1.0, bound=2.0), shape=(16,), embed=lambda v, layers=None: v,
                                  sample=lambda key, n, params=None: None)
    sample, walk_space = dp.latent_sampler(space, untruncated=True)
    z = np.asarray(sample(jax.random.key(0), None, 4096))
    assert np.abs(z).max() > 3.0 and abs(z.std() - 1.0) < 0.02 and walk_space.prior.bound is None
    z_t = walks.density_preserving_batch(walk_space, jnp.asarray(z[:8]), jnp.eye(16)[0], 10.0)
    np.testing.assert_allclose(z_t, walks.density_preserving_traverse(jnp.asarray(z[:8]), jnp.eye(16)[0], 10.0),
                               rtol=1e-6, atol=1e-6)
    assert dp.latent_sampler(space, untruncated=False)[1] is space


def test_subspace_latents_are_linear_shifts_along_their_direction():
    """maximum_subspace.py: z = z0 + α d_k, α = t_scale * U(-1, 1), z0 from the prior, batch 4 per direction."""
    space = LinearSpace(jnp.ones((6, 12)))
    D = jnp.asarray(np.linalg.qr(np.random.default_rng(0).normal(size=(6, 3)))[0].T, jnp.float32)
    sample = lambda key, params, n: space.sample(key, n)
    key = jax.random.key(3)
    z = np.asarray(dp.linear_shifts(space, sample, key, None, D, 4, 10.0))
    z0 = np.asarray(sample(jax.random.split(key)[0], None, 12))
    shift = (z - z0).reshape(3, 4, 6)
    alpha = np.einsum("kbd,kd->kb", shift, np.asarray(D))
    np.testing.assert_allclose(shift, alpha[..., None] * np.asarray(D)[:, None, :], atol=1e-5)  # along d_k only
    assert np.abs(alpha).max() <= 10.0 and np.abs(alpha).max() > 2.0 and len(np.unique(np.sign(alpha))) == 2


def test_default_subspace_layer_is_the_first_16px_map():
    """The reference's s_layer 5 (PGGAN): the 16x16 block's first conv; none at 16x16: the fallback."""
    pggan = lj.load_generator(str(FIXTURES / "pggan" / "pgan_tiny.pth"))
    assert dp.default_subspace_layer(lj.latent_space(pggan, "z"), "b32") == "b16.conv0"
    assert dp.default_subspace_layer(lj.latent_space(tiny_generator(), "z"), "b4") == "b4"


def test_largest_change_group_is_our_heuristic():
    groups = np.array([[[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]],
                       [[1, 0, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0]]], bool)
    change = np.array([[1.0, 1.0, 0.0, 5.0], [0.0, 9.0, 0.0, 0.0]])
    np.testing.assert_array_equal(dp.largest_change_group(groups, change), [[0, 0, 1, 1], [0, 1, 1, 1]])


# --- the harness ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """In subprocesses sharing compiled programs: an uninterrupted smoke run; one stopped at step 2
    (before the subspace stage) and resumed; and `latentjax train` on the smoke config with the
    same generator and settings."""
    root = tmp_path_factory.mktemp("dplase")
    generator = lj.save_generator(tiny_generator(), root / "generator")
    run_python(f"""
    import os
    import latentjax as lj
    import importlib
    dp = importlib.import_module("latentjax.directions.dplase")
    from latentjax.directions.learned import train_config
    from latentjax.train.trainer import train
    from directions.test_dplase import SMOKE

    space = lj.latent_space(lj.load_generator({str(generator)!r}), "z")
    settings = dp.DPLaSEConfig(**SMOKE)
    harness = dict(log_every=1, ckpt_every=2, eval_every=2)
    train(train_config("x", settings, **harness), {str(root / "full")!r}, task=dp.build_task(space, settings))
    resumed = {str(root / "resumed")!r}
    train(train_config("x", settings, **harness, total_steps=2), resumed, task=dp.build_task(space, settings))
    assert not os.path.exists(os.path.join(resumed, dp.SUBSPACES_FILE))  # S has not trained at step 2
    assert dp.Directions.load(os.path.join(resumed, "directions.npz")).channels is None
    train(train_config("x", settings, **harness), resumed, task=dp.build_task(space, settings))
    """)
    run_python(f"""
    from latentjax.cli import main
    assert main(["train", "--config", "{CONFIG_FILE}:smoke", "--config.generator={generator}",
                 "--config.settings.layer=b4", "--workdir", {str(root / "cli")!r}]) == 0
    """)
    return root


@pytest.mark.slow  # subprocesses
def test_resumed_run_matches_the_uninterrupted_one(smoke_runs):
    assert_trees_close(read_state(smoke_runs / "resumed"), read_state(smoke_runs / "full"))
    np.testing.assert_array_equal(Directions.load(smoke_runs / "resumed" / DIRECTIONS_FILE).vectors,
                                  Directions.load(smoke_runs / "full" / DIRECTIONS_FILE).vectors)


@pytest.mark.slow  # subprocesses
def test_export_writes_directions_and_channel_groups(smoke_runs, generator):
    d = Directions.load(smoke_runs / "full" / DIRECTIONS_FILE)
    assert d.vectors.shape == (4, 8) and d.method == "dplase" and d.space["name"] == "z"
    assert d.settings["layer"] == "b4" and np.all(np.diff(d.scores) <= 0) and np.all(d.scores > 0)
    state = read_state(smoke_runs / "full")["state"]
    raw = np.asarray(state["directions"])
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(d.vectors @ unit.T).max(axis=1), 1.0, rtol=1e-5)  # a reordering of D
    assert (d.settings["traverse_layer"], d.settings["subspace_layer"]) == ("b4", "b4")
    S = np.asarray(state["subspace"])  # one S per direction, in D's order
    assert S.shape == (4, 8, 8) and np.all(np.diagonal(S, axis1=1, axis2=2) == np.float32(1e-4))
    assert np.abs(S - 1e-4).max(axis=(1, 2)).min() > 1e-3  # every S trained (from 1e-4)
    with np.load(smoke_runs / "full" / dp.SUBSPACES_FILE) as saved:
        groups, layer, mode = saved["groups"], str(saved["layer"]), str(saved["subspace"])
    assert (layer, mode) == ("b4", "per_direction") and groups.shape == (4, 2, 8) and d.channels.shape == (4, 8)
    source = np.argmax(np.abs(d.vectors @ unit.T), axis=1)  # exported direction i is D's row source[i]
    for i, j in enumerate(source):
        np.testing.assert_array_equal(groups[i], subspace.channel_groups(S[j], 2))
        assert any(np.array_equal(d.channels[i], g) for g in groups[i])  # each edit gets one group of its own S

    metrics = [r for r in read_metrics(smoke_runs / "full") if "eval/loss" in r]
    assert [r["step"] for r in metrics] == [2, 4]
    assert {"eval/positive", "eval/negative", "eval/orthogonal", "eval/subspace_data"} <= set(metrics[-1])
    # the public function on a finished work dir loads its directions (nothing left to train)
    again = dp.dplase(lj.latent_space(generator, "z"), dp.DPLaSEConfig(**SMOKE), workdir=smoke_runs / "full")
    np.testing.assert_array_equal(again.vectors, d.vectors)


@pytest.mark.slow  # subprocesses
def test_cli_trains_the_smoke_config(smoke_runs):
    """`latentjax train --config configs/dplase.py:smoke` is the same run as the smoke settings."""
    cli = Directions.load(smoke_runs / "cli" / DIRECTIONS_FILE)
    np.testing.assert_array_equal(cli.vectors, Directions.load(smoke_runs / "full" / DIRECTIONS_FILE).vectors)
    assert (smoke_runs / "cli" / dp.SUBSPACES_FILE).exists() and cli.channels is not None


FIXTURE_GENERATORS = {"stylegan2": "stylegan2/ada_s32_snapshot.pkl", "biggan": "biggan/deep_tiny",
                      "pggan": "pggan/pgan_tiny.pth"}


def load_config(arg, fixture: bool = False):
    """configs/dplase.py's config; with `fixture`, a model variant (which needs --config.generator)
    gets its test fixture."""
    spec = importlib.util.spec_from_file_location("dplase_config", CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg)
    model = next((word for word in FIXTURE_GENERATORS if word in (arg or "")), None)
    assert config.generator == ("" if model else "builtin:shapes")
    if model and fixture:
        config.generator = str(FIXTURES / FIXTURE_GENERATORS[model])
    return config


# the reference's settings per family (guanyuelee/DP-LaSE maximum_traverse_for_*.py, maximum_subspace.py)
RECIPES = {
    "pggan": dict(layer="b32", features="layer", parametrization="gram_schmidt", weighted=True, reorthogonalize=False,
                  weight_negative=0.001, weight_orthogonal=1.0, traverse_scale=10.0, untruncated=False, steps=55_000),
    "biggan": dict(layer="gen_z", features="layer", parametrization="expm", weighted=False, reorthogonalize=False,
                   weight_negative=0.1, weight_orthogonal=0.0, traverse_scale=None, untruncated=True, steps=55_000),
    "stylegan2": dict(layer=None, features="styles", style_layers=["b4.conv1", "b8.conv0", "b8.conv1"],
                      parametrization="gram_schmidt", weighted=False, reorthogonalize=True, weight_negative=0.1,
                      weight_orthogonal=1.0, traverse_scale=10.0, untruncated=False, steps=505_000),
}
SPACES = {"pggan": (None, None), "biggan": (239, 1.0), "stylegan2": (None, 0.7)}  # class, truncation


@pytest.mark.parametrize("model", ["shapes", "stylegan2", "biggan", "pggan"])
def test_every_config_builds_its_task(model):
    config = load_config(f"{model},smoke", fixture=True)
    assert config.total_steps == config.settings.steps == 4 and config.task == "latentjax.directions.dplase"
    if model == "biggan":
        config.space.class_index = 0  # the fixture has 10 classes
    task = dp.make_task(config)
    assert task.export is not None and task.evaluate is not None
    if model != "shapes":
        full = load_config(model)
        assert (full.total_steps, full.batch_size, full.settings.k, full.settings.lr) == \
            (RECIPES[model]["steps"], 16, 20, 1e-4)
        assert {name: full.settings[name] for name in RECIPES[model]} == RECIPES[model]
        # the subspace stage of maximum_subspace.py: one S per direction, 5K steps of 4, ρ 0.2, d 12, power 3
        assert {name: full.settings[name] for name in ("subspace", "subspace_steps", "subspace_batch_size",
                                                         "subspace_scale", "subspace_lr", "subspace_init",
                                                         "weight_sparse", "num_groups", "clustering", "threshold",
                                                         "subspace_dim", "power")} == \
            dict(subspace="per_direction", subspace_steps=5000, subspace_batch_size=4, subspace_scale=None,
                 subspace_lr=1e-4, subspace_init=1e-4, weight_sparse=0.1, num_groups=6, clustering="reference",
                 threshold=0.2, subspace_dim=12, power=3.0)
        assert (full.space.class_index, full.space.truncation_psi) == SPACES[model]
    assert load_config("pggan").settings.subspace_layer == "b16.conv0"  # the reference's s_layer 5


def test_biggan_needs_its_step_scale():
    """The BigGAN reference's --t_scale defaults to 0 (no walk): the config asks for it."""
    config = load_config("biggan", fixture=True)
    config.space.class_index = 0
    with pytest.raises(ValueError, match="traverse_scale' must be a number, got None"):
        dp.make_task(config)
    config.settings.update(traverse_scale=2.0, k=4)  # (the fixture's z has 16 dimensions)
    assert dp.make_task(config).init is not None


def test_config_variants_are_checked():
    assert load_config(None).generator == "builtin:shapes"
    assert load_config("biggan").space.class_index == 239
    with pytest.raises(ValueError, match="pick one model"):
        load_config("biggan,pggan")
    with pytest.raises(ValueError, match="unknown config argument"):
        load_config("sngan")


@pytest.mark.slow  # a subprocess with 8 simulated devices
def test_eight_devices_match_one_device(tmp_path):
    script = f"""
    import numpy as np
    import latentjax as lj
    import importlib
    dp = importlib.import_module("latentjax.directions.dplase")
    from latentjax.directions.learned import train_config
    from latentjax.train.metrics import read_metrics
    from latentjax.train.trainer import train
    from directions.test_dplase import SMOKE, tiny_generator
    from support import assert_trees_close

    space = lj.latent_space(tiny_generator(), "z")
    settings = dp.DPLaSEConfig(**{{**SMOKE, "steps": 3}})
    runs = {{}}
    for n in (8, 1):
        config = train_config("x", settings, mesh=(("data", n),), log_every=1, ckpt_every=0, eval_every=3)
        state = train(config, {str(tmp_path)!r} + f"/d{{n}}", task=dp.build_task(space, settings))
        assert len(state["state"]["directions"].sharding.device_set) == n
        losses = [[r[k] for k in ("loss", "positive", "negative", "orthogonal", "subspace", "subspace_data")]
                  for r in read_metrics({str(tmp_path)!r} + f"/d{{n}}") if "loss" in r]
        runs[n] = (state["state"], np.array(losses))
    assert runs[1][1].shape == (3, 6) and np.all(runs[1][1][0, :2] != 0) and np.all(runs[1][1][1:, 4:] > 0)
    np.testing.assert_allclose(runs[8][1], runs[1][1], rtol=1e-4, atol=1e-6)
    for name in ("directions", "subspace", "opt", "subspace_opt"):
        assert_trees_close(runs[8][0][name], runs[1][0][name], rtol=1e-4, atol=1e-6)
    print("ok")
    """
    assert run_python(script, devices=8).strip().endswith("ok")
