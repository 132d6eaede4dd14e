"""Direction methods against independent answers: numpy eigenvectors of the checkpoint's weights
(SeFa), planted principal directions (GANSpace), jax.jacrev / finite differences (Jacobian), and a
protected region that a null-space edit leaves alone."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.directions import Directions, forward_jacobian, ganspace, jacobian, sefa
from latentjax.io.torch_pickle import load as load_checkpoint
from latentjax.latent import latent_space
from support import FIXTURES, device_env, relative_error

SG2 = FIXTURES / "stylegan2"


class LinearGenerator:
    """A generator with the BigGAN/PGGAN interface whose answers are known: features = z @ B,
    image = tanh(z @ A) (8x8, one channel)."""

    family = "pggan"
    style_based = False
    input_space = "z"
    c_dim = 0
    layer_names = ("fc",)

    def __init__(self, A, B):
        self.z_dim = A.shape[0]
        self.params = {"A": jnp.asarray(A, jnp.float32), "B": jnp.asarray(B, jnp.float32)}

    def generate(self, params, z, c=None, hooks=None):
        assert not hooks
        return jnp.tanh(z @ params["A"]).reshape(len(z), 8, 8, 1)

    def features(self, params, z, c=None, layers=None, hooks=None):
        assert not hooks
        return {"fc": (z @ params["B"])[:, None, None, :]}

    def input_weight(self, params, layers=None):
        assert layers is None
        return params["B"].T


def _orthogonal(n, seed):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0]


def _assert_same_directions(actual, expected, tol=1e-5):
    """Rows agree up to sign."""
    cosines = np.abs(np.sum(np.asarray(actual, np.float64) * expected, axis=1))
    np.testing.assert_allclose(cosines, 1, atol=tol)


# --- SeFa ---------------------------------------------------------------------------------------
def _numpy_sefa(weights, k):
    """genforce/sefa: style weights as [w_dim, C] columns, each unit length, eig of W Wᵀ, sorted."""
    weight = np.concatenate([w.T for w in weights], axis=1).astype(np.float64)
    weight = weight / np.linalg.norm(weight, axis=0, keepdims=True)
    values, vectors = np.linalg.eig(weight @ weight.T)
    order = np.argsort(values.real)[::-1][:k]
    return values.real[order], vectors.real[:, order].T


def test_sefa_equals_numpy_on_nvidia_checkpoint_weights():
    state = load_checkpoint(SG2 / "ada_s32.pt")  # the raw state dict: torch layout [C, w_dim]
    # genforce's layer order: one conv per w index, the final toRGB for the last index
    keys = (["synthesis.b4.conv1"] + [f"synthesis.b{r}.conv{i}" for r in (8, 16, 32) for i in (0, 1)]
            + ["synthesis.b32.torgb"])
    G = lj.load_generator(SG2 / "ada_s32.pt")
    d = lj.directions.sefa(G, k=10)
    values, vectors = _numpy_sefa([state[f"{k}.affine.weight"] for k in keys], 10)
    assert d.vectors.shape == (10, G.w_dim) and d.space["name"] == "w+" and d.layers.all()
    np.testing.assert_allclose(np.linalg.norm(d.vectors, axis=1), 1, atol=1e-6)
    assert np.all(np.diff(d.scores) <= 0)
    np.testing.assert_allclose(d.scores, values, rtol=1e-5)
    _assert_same_directions(d.vectors, vectors)
    # a layer range: only those layers' weights, and a mask that edits only those layers
    part = sefa(G, k=4, layers="2-4")
    values, vectors = _numpy_sefa([state[f"{k}.affine.weight"] for k in keys[2:5]], 4)
    np.testing.assert_allclose(part.scores, values, rtol=1e-5)
    _assert_same_directions(part.vectors, vectors)
    assert part.layers.shape == (4, G.num_ws) and part.layers[0].tolist() == [i in (2, 3, 4) for i in range(8)]
    with pytest.raises(ValueError, match="w\\+"):
        sefa(latent_space(G, "w"), layers="2-4")


def test_sefa_equals_numpy_on_rosinality_checkpoint_weights():
    state = load_checkpoint(SG2 / "rosinality_s32.pt")["g_ema"]
    keys = ["conv1"] + [f"convs.{i}" for i in range(6)] + ["to_rgbs.2"]
    values, vectors = _numpy_sefa([state[f"{k}.conv.modulation.weight"] for k in keys], 6)
    d = sefa(lj.load_generator(SG2 / "rosinality_s32.pt"), k=6)
    np.testing.assert_allclose(d.scores, values, rtol=1e-5)
    _assert_same_directions(d.vectors, vectors)


def test_sefa_rosinality_variant_follows_closed_form_factorization():
    """rosinality's closed_form_factorization.py: the modulation weights whose key has no `to_rgbs`
    (every conv and `to_rgb1`), concatenated unnormalised, directions = V of their SVD."""
    state = load_checkpoint(SG2 / "rosinality_s32.pt")["g_ema"]
    keys = ["conv1", "to_rgb1"] + [f"convs.{i}" for i in range(6)]
    weight = np.concatenate([state[f"{k}.conv.modulation.weight"] for k in keys], 0).astype(np.float64)
    _, singular, vt = np.linalg.svd(weight, full_matrices=False)
    d = sefa(lj.load_generator(SG2 / "rosinality_s32.pt"), k=6, normalize=False, torgb="first")
    np.testing.assert_allclose(d.scores, singular[:6] ** 2, rtol=1e-5)
    _assert_same_directions(d.vectors, vt[:6])
    with pytest.raises(ValueError, match="torgb must be 'last' or 'first'"):
        sefa(lj.load_generator(SG2 / "rosinality_s32.pt"), torgb="middle")


def test_sefa_on_an_input_weight_generator():
    """BigGAN/PGGAN branch: eigenvectors of AᵀA, A = G.input_weight with unit rows, in z."""
    rng = np.random.default_rng(0)
    G = LinearGenerator(rng.normal(size=(6, 64)), rng.normal(size=(6, 12)))
    A = np.asarray(G.params["B"], np.float64).T
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(A.T @ A)
    d = sefa(G, k=3)
    assert d.space["name"] == "z" and d.layers is None
    np.testing.assert_allclose(d.scores, values[::-1][:3], rtol=1e-5)
    _assert_same_directions(d.vectors, vectors[:, ::-1].T[:3])


# --- GANSpace -----------------------------------------------------------------------------------
def test_ganspace_recovers_planted_w_principal_axes():
    """A linear 1-layer mapping: w = x W + b with x the pixel-normed z (covariance I), so the
    principal axes of w are the right singular vectors of W, with variances s²."""
    config = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=4, img_channels=1, channels=(8,), mapping_layers=1,
                             mapping_activation="linear")
    params = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), StyleGAN2(config, None).abstract_params())
    axes, s = _orthogonal(8, 1), np.array([8, 5, 3, 2, 1.5, 1, 0.7, 0.5])
    lr = config.mapping_lr_multiplier
    params["mapping"]["fc0"] = {"weight": (np.diag(s) @ axes.T) * np.sqrt(8) / lr, "bias": np.linspace(-3, 3, 8) / lr}
    G = StyleGAN2(config, params)
    d = ganspace(G, k=4, num_samples=20_000, batch_size=2000, layers="0-1", progress=False)
    _assert_same_directions(d.vectors, axes.T[:4], tol=2e-3)
    np.testing.assert_allclose(d.scores, s[:4], rtol=0.03)  # standard deviations, as the reference's scores
    assert d.space["name"] == "w+" and d.layers[:, :2].all() and not d.layers[:, 2:].any()
    # in z, the default "layer" is w itself (the reference's 'style' layer), regressed back to z
    # (on max(10^4, N) samples); w = x diag(s) axesᵀ + b with x = pixelnorm(z), so PC j's
    # coordinate is x_j, and regressed to z it is the coordinate axis e_j
    dz = ganspace(latent_space(G, "z"), k=2, num_samples=5000, batch_size=1000, progress=False)
    assert dz.settings["layer"] == "w" and dz.settings["regression_samples_used"] == 10_000
    _assert_same_directions(dz.vectors, np.eye(8)[:2], tol=0.01)
    with pytest.raises(ValueError, match="mapped w"):
        ganspace(latent_space(G, "w"), layer="w", progress=False)


def test_ganspace_regresses_planted_feature_axes_back_to_z():
    """features = z B with B = V diag(s) Uᵀ: feature PCs are U's columns, and regressing their
    coordinates back to z gives V's columns."""
    V, U, s = _orthogonal(6, 2), _orthogonal(12, 3)[:, :6], np.array([6, 4, 3, 2, 1.5, 1])
    G = LinearGenerator(np.zeros((6, 64)), V @ np.diag(s) @ U.T)
    d = ganspace(G, k=3, num_samples=20_000, batch_size=2000, regression_samples=4000, progress=False)
    assert d.settings["layer"] == "fc"
    _assert_same_directions(d.vectors, V.T[:3], tol=2e-3)
    np.testing.assert_allclose(d.scores, s[:3], rtol=0.03)


SHARDED = r"""
import sys, jax, numpy as np, latentjax as lj
from latentjax.directions import ganspace
assert jax.device_count() == 4
d = ganspace(lj.load_generator(sys.argv[1]), k=4, num_samples=2000, batch_size=500, progress=False)
np.savez(sys.argv[2], vectors=d.vectors, scores=d.scores)
"""


def test_ganspace_sharded_over_devices_equals_one_device(tmp_path):
    path = SG2 / "ada_gray_s16.pt"
    env = device_env(4)
    result = subprocess.run([sys.executable, "-c", SHARDED, str(path), str(tmp_path / "d.npz")], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    sharded = np.load(tmp_path / "d.npz")
    d = ganspace(lj.load_generator(path), k=4, num_samples=2000, batch_size=500, progress=False)
    np.testing.assert_allclose(sharded["scores"], d.scores, rtol=1e-4)
    _assert_same_directions(sharded["vectors"], d.vectors, tol=1e-4)


# --- Jacobian -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gray():
    return lj.load_generator(SG2 / "ada_gray_s16.pt")


def _central_differences(fn, x, h):
    columns = jax.vmap(lambda e: (fn(x + e) - fn(x - e)) / (2 * h))(jnp.eye(x.size) * h)
    return jnp.moveaxis(columns, 0, -1)


def test_forward_jacobian_equals_jacrev_and_finite_differences(gray):
    space = latent_space(gray, "w")
    w = space.sample(jax.random.key(0), 1)[0]
    image = lambda v: jnp.mean(space.decode(gray.params, (w + v)[None])[0], axis=-1)
    v0 = jnp.zeros(gray.w_dim)
    forward = jax.jit(lambda v: forward_jacobian(image, v, chunk_size=5))(v0)  # chunks that do not divide 16
    reverse = jax.jit(jax.jacrev(image))(v0)
    assert forward.shape == reverse.shape == (16, 16, gray.w_dim)
    assert relative_error(forward, reverse) < 1e-5
    # finite differences on a smooth generator (StyleGAN2's leaky ReLUs put kinks within any step)
    G = LinearGenerator(np.random.default_rng(0).normal(size=(6, 64)) / 3, np.eye(6))
    smooth = lambda z: G.generate(G.params, z[None])[0]
    z = jnp.asarray(np.random.default_rng(1).normal(size=6), jnp.float32)
    assert relative_error(forward_jacobian(smooth, z, chunk_size=4), _central_differences(smooth, z, 1e-2)) < 1e-3


def test_averaged_jacobian_directions_are_the_eigenvectors_of_mean_jtj(gray):
    space = latent_space(gray, "w")
    d = jacobian(space, mode="averaged", k=4, num_samples=2, region=(0.25, 0.75, 0.0, 0.5), key=jax.random.key(1),
                 progress=False)
    latents = space.sample(jax.random.key(1), 2)
    jacobians = jax.jit(jax.vmap(jax.jacrev(lambda v, w: jnp.mean(space.decode(gray.params, (w + v)[None])[0], -1)),
                                 (None, 0)))(jnp.zeros(16), latents)
    total = 0
    for J in np.asarray(jacobians, np.float64):
        J = J[4:12, 0:8].reshape(-1, 16)  # the region (rows 4..11, columns 0..7 of 16x16)
        total = total + J.T @ J / len(J)
    values, vectors = np.linalg.eigh(total / 2)
    np.testing.assert_allclose(d.scores, values[::-1][:4], rtol=1e-4)
    _assert_same_directions(d.vectors, vectors[:, ::-1].T[:4], tol=1e-4)


def test_null_space_edit_leaves_the_protected_region_unchanged():
    """Bottom-half pixels depend on z only through a rank-2 map, so a 4-dimensional null space
    exists; edits along the directions change the top half and leave the bottom half alone."""
    rng = np.random.default_rng(4)
    A = rng.normal(size=(6, 64)) / 3
    A[:, 32:] = rng.normal(size=(6, 2)) @ rng.normal(size=(2, 32)) / 3  # pixels of rows 4..7
    G = LinearGenerator(A, np.eye(6))
    space = latent_space(G, "z")
    d = jacobian(space, mode="averaged", k=3, num_samples=2, region=(0, 0.5, 0, 1), protect="complement",
                 null_tol=1e-5, progress=False)
    assert d.settings["null_space_dim"] == 4
    z = space.sample(jax.random.key(5), 4)
    before = space.decode(G.params, z)
    for v in d.vectors:
        for t in (-3.0, 1.0, 3.0):
            after = space.decode(G.params, z + t * v)
            np.testing.assert_allclose(after[:, 4:], before[:, 4:], atol=1e-5)  # protected: unchanged
            assert float(jnp.abs(after[:, :4] - before[:, :4]).max()) > 0.05  # region: edited
    bottom = np.repeat([0.0, 1.0], 4)[:, None] * np.ones((8, 8))  # the same protection, given as a mask
    masked = jacobian(space, mode="averaged", k=3, num_samples=2, region=(0, 0.5, 0, 1), protect=bottom,
                      null_tol=1e-5, progress=False)
    _assert_same_directions(masked.vectors, d.vectors)
    with pytest.raises(ValueError, match="null space"):
        jacobian(space, mode="averaged", k=5, num_samples=1, region=(0, 0.5, 0, 1), protect="complement",
                 null_tol=1e-5, progress=False)


# --- Directions ---------------------------------------------------------------------------------
def test_directions_save_load_index(tmp_path):
    vectors = _orthogonal(5, 6)[:3]
    layers = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], bool)
    d = Directions(vectors, [3.0, 2.0, 1.0], {"name": "w+", "truncation_psi": 0.7}, "sefa", {"k": 3}, layers)
    path = d.save(tmp_path / "sub" / "d.npz")
    loaded = Directions.load(path)
    np.testing.assert_array_equal(loaded.vectors, d.vectors)
    np.testing.assert_array_equal(loaded.layers, layers)
    assert (loaded.space, loaded.method, loaded.settings) == (d.space, "sefa", {"k": 3})
    assert len(d[1:]) == 2 and d[1].scores.tolist() == [2.0] and d[[2, 0]].layers.tolist() == [layers[2].tolist(),
                                                                                                   layers[0].tolist()]
    with pytest.raises(ValueError, match="unit rows"):
        Directions(vectors * 2, [1.0, 1.0, 1.0], {"name": "z"}, "x")
    channels = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]], bool)
    masked = Directions(vectors, [3.0, 2.0, 1.0], {"name": "z"}, "dplase", {"layer": "b8"}, channels=channels)
    reloaded = Directions.load(masked.save(tmp_path / "masked.npz"))
    np.testing.assert_array_equal(reloaded.channels, channels)
    assert reloaded.layers is None and masked[[2, 0]].channels.tolist() == [channels[2].tolist(), channels[0].tolist()]
    with pytest.raises(ValueError, match=r"channels must be a \[K=3, C\] mask"):
        Directions(vectors, [3.0, 2.0, 1.0], {"name": "z"}, "dplase", {"layer": "b8"}, channels=channels[:2])
    with pytest.raises(ValueError, match="need settings\\['layer'\\]"):
        Directions(vectors, [3.0, 2.0, 1.0], {"name": "z"}, "dplase", {}, channels=channels)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a directions file"):
        Directions.load(tmp_path / "bad.npz")
