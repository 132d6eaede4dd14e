"""BigGAN-deep model properties: config, statistics selection, sampling, transforms, features."""

import dataclasses
import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.models.biggan import BigGAN, BigGANConfig, class_vector
from latentjax.ops.batch_norm import statistics_weights
from support import relative_error

SMALL = BigGANConfig(output_dim=16, z_dim=4, class_embed_dim=4, channel_width=4, num_classes=5,
                     layers=((True, 16, 8), (True, 8, 4), (False, 4, 2), (False, 2, 1)),
                     attention_layer_position=1, n_stats=11)
TRUNCNORM_STD = 0.8796  # std of N(0, 1) truncated to [-2, 2]


@pytest.fixture(scope="module")
def G():
    """SMALL with random statistics tables, biases and attention gain, so that truncation and attention
    matter, and weights scaled so that images are neither tiny nor saturated (std about 0.45)."""
    G = BigGAN.init(SMALL, jax.random.key(0))
    rng = np.random.default_rng(1)

    def randomize(path, leaf):
        names = [p.key for p in path]
        noise = rng.standard_normal(leaf.shape).astype(np.float32)
        if names[-1] == "running_means":
            return 0.1 * noise
        if names[-1] == "running_vars":
            return 0.5 * np.exp(0.3 * noise)
        if names[-1] == "bias":
            return 0.1 * noise
        if names[-1] == "gamma":
            return np.float32(0.8)
        return leaf if names[0] == "bn" else 1.5 * leaf

    return BigGAN(SMALL, jax.tree_util.tree_map_with_path(randomize, G.params))


def _inputs(G, n=3, truncation=0.3):
    z = G.sample_z(jax.random.key(2), n, truncation)
    labels, weights = jnp.array([[0, 0], [3, 1], [4, 2]]), jnp.array([[1.0, 0.0], [0.7, 0.3], [0.5, 0.5]])
    c = class_vector(labels[:n], SMALL.num_classes, weights[:n])
    return z, c


@functools.cache
def _jitted_generate():
    """One compiled generate for the module's tests; the truncation is traced."""
    return jax.jit(lambda params, z, c, t: BigGAN(SMALL, None).generate(params, z, c, truncation_psi=t))


# --- config -----------------------------------------------------------------------------------

def test_config_round_trip_and_reference_defaults():
    default = BigGANConfig()
    assert default.img_resolution == 128 and len(default.layers) == 10 and default.n_stats == 51
    assert BigGANConfig.from_dict(json.loads(json.dumps(SMALL.to_dict()))) == SMALL
    assert SMALL.img_resolution == 16 and SMALL.cond_dim == 8
    assert SMALL.layer_names == ("gen_z", "block0", "attention", "block1", "block2", "block3")
    no_attention = dataclasses.replace(SMALL, attention_layer_position=4)
    assert not no_attention.has_attention and "attention" not in no_attention.layer_names
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\], missing keys \['eps'\]"):
        BigGANConfig.from_dict({**{k: v for k, v in SMALL.to_dict().items() if k != "eps"}, "extra": 1})


@pytest.mark.parametrize("change,match", [
    ({"layers": ((True, 8, 8), (True, 8, 4), (False, 4, 2), (False, 2, 1))}, r"16 \* channel_width inputs"),
    ({"layers": ((True, 16, 8), (True, 4, 4), (False, 4, 2), (False, 2, 1))},
     r"layers\[0\] outputs 8 \* channel_width but layers\[1\] takes 4"),
    ({"layers": ((True, 16, 4), (False, 4, 2), (False, 2, 1))},
     r"layers\[0\]: a GenBlock maps C to C or C//2 channels"),
    ({"layers": ((True, 16, 8), (True, 8, 4), (False, 4, 2))}, r"last GenBlock must output channel_width"),
    ({"channel_width": 2}, r"channel_width >= 3"),
    ({"z_dim": 0}, r"z_dim must be positive"),
    ({"n_stats": 1}, r"n_stats must be at least 2"),
])
def test_invalid_layouts_are_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(SMALL, **change)


# --- statistics selection -------------------------------------------------------------------------

def _reference_rule(t, n_stats):
    """pytorch-pretrained-BigGAN: coef, i = modf(t / step); row i alone if coef == 0,
    else coef * M[i] + (1 - coef) * M[i + 1]."""
    coef, i = math.modf(t / (1.0 / (n_stats - 1)))
    return (int(i), 1.0, 0.0) if coef == 0.0 else (int(i), coef, 1.0 - coef)


def test_statistics_weights_follow_the_reference_in_float64_and_float32():
    rng = np.random.default_rng(0)
    traced = jax.jit(statistics_weights, static_argnums=1)
    for n in (11, 51, 129):
        values = [k / (n - 1) for k in range(1, n)] + [float(v) for v in rng.uniform(0.01, 1.0, 50).astype(np.float32)]
        for t in values:
            expected = _reference_rule(float(t), n)
            row, w_row, w_next = statistics_weights(float(t), n)
            assert (row, w_row, w_next) == (expected[0], np.float32(expected[1]), np.float32(expected[2]))
        rows, w_rows, w_nexts = jax.vmap(lambda t: traced(t, n))(jnp.asarray(values, jnp.float32))
        expected = np.array([_reference_rule(float(t), n) for t in values])
        np.testing.assert_array_equal(rows, expected[:, 0])
        np.testing.assert_allclose(np.stack([w_rows, w_nexts], 1), expected[:, 1:], atol=2e-5)
    # float64 rounding decides rows at grid points: 0.58 / 0.02 = 28.999999999999996 uses row 28, not 29;
    # 0.56 / 0.02 = 28.000000000000004 uses row 29, not 28
    assert statistics_weights(0.58, 51)[:2] == (28, 1.0) and statistics_weights(0.56, 51)[::2] == (28, 1.0)
    assert statistics_weights(0.4, 51) == (20, 1.0, 0.0)
    assert statistics_weights(0.625, 51) == (31, 0.25, 0.75)  # the fraction weights the lower row
    for bad in (0.0, 1.2, -0.5):
        with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
            statistics_weights(bad, 51)


# --- sampling ---------------------------------------------------------------------------------------

def test_class_vectors():
    np.testing.assert_array_equal(class_vector([2, 0], 4), [[0, 0, 1, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(class_vector([[1, 3]], 4, [[0.6, 0.4]]), [[0, 0.6, 0, 0.4]])
    np.testing.assert_allclose(class_vector([[1, 3, 3]], 4), [[0, 1 / 3, 0, 2 / 3]])
    jitted = jax.jit(class_vector, static_argnums=1)(jnp.array([[1, 3]]), 4, jnp.array([[0.6, 0.4]]))
    np.testing.assert_allclose(jitted, [[0, 0.6, 0, 0.4]])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        class_vector([4], 4)
    with pytest.raises(ValueError, match="weights apply to mixtures"):
        class_vector([1], 4, [1.0])
    with pytest.raises(ValueError, match="weights must have the shape of labels"):
        class_vector([[1, 2]], 4, [[1.0]])


def test_sample_z_is_truncated_scaled_and_keyed(G):
    z = np.asarray(G.sample_z(jax.random.key(0), 4000, 0.5))
    assert z.shape == (4000, SMALL.z_dim) and np.abs(z).max() <= 1.0
    assert abs(z.std() / (0.5 * TRUNCNORM_STD) - 1) < 0.03 and abs(z.mean()) < 0.02
    np.testing.assert_array_equal(G.sample_z(jax.random.key(0), 3, 0.5), z[:3])
    assert not np.array_equal(G.sample_z(jax.random.key(1), 3, 0.5), z[:3])
    np.testing.assert_allclose(G.sample_z(jax.random.key(0), 3, 1.0), 2 * z[:3], rtol=1e-6)


# --- transforms -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_jit_and_vmap_match_eager(G):
    z, c = _inputs(G)
    truncations = (0.3, 0.45, 1.0)  # 0.3 / 0.1 rounds below the grid point in float64
    eager = {t: G.generate(G.params, z, c, truncation_psi=t) for t in truncations}
    assert eager[0.3].shape == (3, 16, 16, 3) and np.abs(eager[0.3]).max() <= 1
    assert relative_error(eager[0.3], eager[0.45]) > 1e-2  # truncation selects different statistics
    # a traced truncation interpolates the statistics with float32 weights (eager: float64), which
    # moves outputs near zero by about 1e-6
    for t in truncations:
        np.testing.assert_allclose(_jitted_generate()(G.params, z, c, t), eager[t], rtol=1e-5, atol=1e-5)
    # one sample per call, each with its own (traced) truncation
    per_sample = jax.jit(jax.vmap(lambda zi, ci, t: G.generate(G.params, zi[None], ci[None], truncation_psi=t)[0]))
    got = per_sample(z, c, jnp.asarray(truncations))
    for i, t in enumerate(truncations):
        np.testing.assert_allclose(got[i], eager[t][i], rtol=1e-5, atol=1e-5)


def test_grad_wrt_z_and_class_vector(G):
    z, c = _inputs(G)

    def loss(z, c):
        return jnp.mean(_jitted_generate()(G.params, z, c, 0.3) ** 2)

    g_z, g_c = jax.jit(jax.grad(loss, argnums=(0, 1)))(z, c)
    assert np.all(np.isfinite(g_z)) and np.all(np.abs(g_z).sum(axis=1) > 0) and np.all(np.abs(g_c).sum(axis=1) > 0)
    # The gradients predict the change of the loss along random directions (central differences).
    eps = 1e-2
    for argnum, (x, g) in enumerate(((z, g_z), (c, g_c))):
        d = jax.random.normal(jax.random.key(3 + argnum), x.shape)
        args_plus = [z, c]
        args_minus = [z, c]
        args_plus[argnum], args_minus[argnum] = x + eps * d, x - eps * d
        numeric = (loss(*args_plus) - loss(*args_minus)) / (2 * eps)
        np.testing.assert_allclose(jnp.vdot(g, d), numeric, rtol=2e-2)


# --- features, input weight, init -------------------------------------------------------------------

def test_features_and_input_weight(G):
    z, c = _inputs(G)
    features = jax.jit(lambda p, z, c: G.features(p, z, c, truncation_psi=0.3))(G.params, z, c)
    assert set(features) == {*G.layer_names, "img"}  # (jit returns dicts with sorted keys)
    assert features["gen_z"].shape == (3, 4, 4, 64) and features["attention"].shape == (3, 8, 8, 32)
    assert features["block3"].shape == (3, 16, 16, 4)
    np.testing.assert_allclose(features["img"], _jitted_generate()(G.params, z, c, 0.3), rtol=1e-5, atol=1e-6)
    # Asking for early layers runs only that far, with the same values.
    early = G.features(G.params, z, c, truncation_psi=0.3, layers=["block0", "gen_z"])
    assert list(early) == ["block0", "gen_z"]
    np.testing.assert_allclose(early["block0"], features["block0"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown layers"):
        G.features(G.params, z, c, layers=["block9"])
    # bfloat16 convolutions and attention projections stay close (statistics and sums are float32)
    half = G.features(G.params, z, c, truncation_psi=0.3, layers=["block1"], compute_dtype=jnp.bfloat16)["block1"]
    assert half.dtype == jnp.float32 and 1e-5 < relative_error(half, features["block1"]) < 2e-2
    # gen_z is affine in z, with the z part of its weight as slope
    W = G.input_weight(G.params)
    assert W.shape == (4 * 4 * 16 * SMALL.channel_width, SMALL.z_dim)
    z2 = G.sample_z(jax.random.key(5), 3, 0.3)
    delta = G.features(G.params, z2, c, layers=["gen_z"])["gen_z"] - early["gen_z"]
    np.testing.assert_allclose(delta.reshape(3, -1), (z2 - z) @ W.T, rtol=1e-4, atol=1e-5)


def test_input_validation(G):
    z, c = _inputs(G)
    with pytest.raises(ValueError, match=r"z must have shape \[N, 4\]"):
        G.generate(G.params, z[:, :3], c)
    with pytest.raises(ValueError, match=r"c must be class vectors of shape \[3, 5\]"):
        G.generate(G.params, z, None)
    with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
        G.generate(G.params, z, c, truncation_psi=1.5)


def test_init_is_keyed_and_has_unit_spectral_norms():
    a, b = BigGAN.init(SMALL, jax.random.key(0)), BigGAN.init(SMALL, jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, a.params, BigGAN.init(SMALL, jax.random.key(0)).params)
    assert not np.array_equal(a.params["gen_z"]["weight"], b.params["gen_z"]["weight"])
    assert jax.tree.map(lambda x: x.shape, a.params) == jax.tree.map(lambda x: x.shape, a.abstract_params())
    for w in (a.params["gen_z"]["weight"], a.params["block0"]["conv_1"]["weight"]):
        assert 0.6 < np.linalg.norm(np.reshape(w, (-1, w.shape[-1])), ord=2) < 1.4
    np.testing.assert_array_equal(a.params["block1"]["bn_2"]["running_vars"], 1.0)
    assert a.params["attention"]["gamma"] == 0
