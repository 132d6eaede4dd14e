"""DP-LaSE: the density-preserving walks, the channel subspaces, the task on the harness, the configs."""

import importlib
import importlib.util
import types
from pathlib import Path

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
from test_inversion import random_params
from test_train_harness import assert_trees_close, run_python

CONFIG_FILE = Path(__file__).resolve().parents[1] / "configs" / "dplase.py"
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
    groups = subspace.channel_groups(S, 4)
    assert groups.shape == (4, 24) and same_partition(np.argmax(groups, axis=0), labels)
    assert list(groups.sum(1)) == [9, 7, 5, 3]  # largest first
    with pytest.raises(ValueError, match="num_groups must be in"):
        subspace.spectral_clustering(A, 25)
    with pytest.raises(ValueError, match="symmetric"):
        subspace.spectral_clustering(A - 2 * np.triu(A), 2)


@pytest.mark.parametrize("num_groups", [1, 3, 8])
def test_channel_groups_partition_the_channels(num_groups):
    S = jax.random.normal(jax.random.key(num_groups), (8, 8))
    groups = subspace.channel_groups(S, num_groups)
    assert groups.shape == (num_groups, 8) and groups.dtype == bool
    np.testing.assert_array_equal(groups.sum(0), 1)  # every channel in exactly one group
    assert np.all(groups.sum(1) >= 1) and np.all(np.diff(groups.sum(1)) <= 0)
    np.testing.assert_array_equal(subspace.channel_groups(S, num_groups), groups)  # fixed seed


def test_kmeans_fills_every_cluster_even_with_repeated_points():
    points = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]])
    labels = subspace.kmeans(points, 4)
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]


def test_self_expressive_training_keeps_a_zero_diagonal():
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
    np.testing.assert_array_equal(np.diag(S), 0.0)
    assert float(last) < 0.5 * float(first)
    assert float(S[5, 0]) > 0.3 and float(S[5, 1]) > 0.3  # it found the planted expression
    rebuilt = subspace.reconstruct(S + 7.0 * jnp.eye(6), f)  # the diagonal never counts
    np.testing.assert_allclose(rebuilt, np.einsum("bhwd,cd->bhwc", f, S), rtol=1e-5, atol=1e-6)


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
    with pytest.raises(ValueError, match="k=9 exceeds the 8 dimensions"):
        dp.build_task(space, dp.DPLaSEConfig(k=9))
    with pytest.raises(ValueError, match="num_groups=9 exceeds the 8 channels"):
        dp.build_task(space, dp.DPLaSEConfig(k=2, num_groups=9))
    with pytest.raises(ValueError, match="DPLaSEConfig.traverse_scale must be positive"):
        dp.DPLaSEConfig(traverse_scale=0.0)


# --- the harness ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, compile_cache):
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
    from test_dplase import SMOKE

    space = lj.latent_space(lj.load_generator({str(generator)!r}), "z")
    settings = dp.DPLaSEConfig(**SMOKE)
    harness = dict(log_every=1, ckpt_every=2, eval_every=2)
    train(train_config("x", settings, **harness), {str(root / "full")!r}, task=dp.build_task(space, settings))
    resumed = {str(root / "resumed")!r}
    train(train_config("x", settings, **harness, total_steps=2), resumed, task=dp.build_task(space, settings))
    assert not os.path.exists(os.path.join(resumed, dp.SUBSPACES_FILE))  # S has not trained at step 2
    assert dp.Directions.load(os.path.join(resumed, "directions.npz")).channels is None
    train(train_config("x", settings, **harness), resumed, task=dp.build_task(space, settings))
    """, cache=compile_cache)
    run_python(f"""
    from latentjax.cli import main
    assert main(["train", "--config", "{CONFIG_FILE}:smoke", "--config.generator={generator}",
                 "--config.settings.layer=b4", "--workdir", {str(root / "cli")!r}]) == 0
    """, cache=compile_cache)
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
    np.testing.assert_array_equal(np.diag(state["subspace"]), 0.0)
    assert np.abs(state["subspace"]).max() > 1e-3  # S trained (from 1e-4)
    with np.load(smoke_runs / "full" / dp.SUBSPACES_FILE) as saved:
        groups, layer = saved["groups"], str(saved["layer"])
    assert layer == "b4" and groups.shape == (2, 8) and d.channels.shape == (4, 8)
    np.testing.assert_array_equal(groups, subspace.channel_groups(state["subspace"], 2))
    assert all(any(np.array_equal(c, g) for g in groups) for c in d.channels)  # each edit gets one group

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
        config.generator = str(CONFIG_FILE.parents[1] / "tests" / "fixtures" / FIXTURE_GENERATORS[model])
    return config


@pytest.mark.parametrize("model", ["shapes", "stylegan2", "biggan", "pggan"])
def test_every_config_builds_its_task(model):
    config = load_config(f"{model},smoke", fixture=True)
    assert config.total_steps == config.settings.steps == 4 and config.task == "latentjax.directions.dplase"
    task = dp.make_task(config)
    assert task.export is not None and task.evaluate is not None
    if model != "shapes":
        full = load_config(model)
        assert (full.total_steps, full.batch_size, full.settings.k, full.settings.lr) == (50_000, 16, 20, 1e-4)
        assert (full.settings.steps, full.settings.batch_size) == (50_000, 16)
        assert (full.settings.weight_negative, full.settings.weight_orthogonal, full.settings.traverse_scale) == \
            (0.001, 1.0, 10.0)


def test_config_variants_are_checked():
    assert load_config(None).generator == "builtin:shapes"
    assert load_config("biggan").space.class_index == 0
    with pytest.raises(ValueError, match="pick one model"):
        load_config("biggan,pggan")
    with pytest.raises(ValueError, match="unknown config argument"):
        load_config("sngan")


@pytest.mark.slow  # a subprocess with 8 simulated devices
def test_eight_devices_match_one_device(tmp_path, compile_cache):
    script = f"""
    import numpy as np
    import latentjax as lj
    import importlib
    dp = importlib.import_module("latentjax.directions.dplase")
    from latentjax.directions.learned import train_config
    from latentjax.train.metrics import read_metrics
    from latentjax.train.trainer import train
    from test_dplase import SMOKE, tiny_generator
    from test_train_harness import assert_trees_close

    space = lj.latent_space(tiny_generator(), "z")
    settings = dp.DPLaSEConfig(**{{**SMOKE, "steps": 3}})
    runs = {{}}
    for n in (8, 1):
        config = train_config("x", settings, mesh=(("data", n),), log_every=1, ckpt_every=0, eval_every=3)
        state = train(config, {str(tmp_path)!r} + f"/d{{n}}", task=dp.build_task(space, settings))
        assert len(state["state"]["directions"].sharding.device_set) == n
        losses = [[r[k] for k in ("loss", "positive", "negative", "orthogonal")]
                  for r in read_metrics({str(tmp_path)!r} + f"/d{{n}}") if "loss" in r]
        runs[n] = (state["state"], np.array(losses))
    assert runs[1][1].shape == (3, 4)
    np.testing.assert_allclose(runs[8][1], runs[1][1], rtol=1e-4, atol=1e-6)
    for name in ("directions", "subspace", "opt", "subspace_opt"):
        assert_trees_close(runs[8][0][name], runs[1][0][name], rtol=1e-4, atol=1e-6)
    print("ok")
    """
    assert run_python(script, devices=8, cache=compile_cache).strip().endswith("ok")
