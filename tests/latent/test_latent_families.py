"""Latent spaces, directions, walks and `latentjax discover` on BigGAN-deep and PGGAN checkpoints.

Independent answers: SeFa against numpy eigenvectors of the first layer's weights read from the raw
checkpoints (spectral norm and He constant applied here), decoding against the reference's recorded
images, densities along walks, and GANSpace against a numpy PCA + least-squares regression of the
same samples.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from latentjax.cli import main as cli_main
from latentjax.directions import Directions, ganspace, sefa
from latentjax.io.torch_pickle import load as load_checkpoint
from latentjax.latent import latent_space, sample_classes
from latentjax.walks import iso_density, sweep
from support import FIXTURES, PARITY_RTOL, nchw, relative_error

BIGGAN = FIXTURES / "biggan" / "deep_tiny"
PGGAN = FIXTURES / "pggan"
GAN_ZOO_RECORDS = ("models.utils.config.BaseConfig",)
CONFIGS = FIXTURES.parent.parent / "configs"


@pytest.fixture(scope="module")
def biggan():
    return lj.load_generator(BIGGAN)


@pytest.fixture(scope="module")
def pgan_tiny():
    return lj.load_generator(PGGAN / "pgan_tiny.pth")


@pytest.fixture(scope="module")
def pgan_plain():
    return lj.load_generator(PGGAN / "pgan_plain8.pth")


@pytest.fixture(scope="module")
def pgan_cond():
    return lj.load_generator(PGGAN / "pgan_cond16.pth")


def _assert_same_directions(actual, expected, tol=1e-5):
    """Rows agree up to sign."""
    cosines = np.abs(np.sum(np.asarray(actual, np.float64) * np.asarray(expected, np.float64), axis=1))
    np.testing.assert_allclose(cosines, 1, atol=tol)


def _eig(a, normalize):
    """genforce/sefa: unit-length rows of A (one per output unit), eigenvectors of AᵀA, largest first."""
    if normalize:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(a.T @ a)
    return values[::-1], vectors[:, ::-1].T


# --- SeFa from the raw checkpoints ---------------------------------------------------------------
def _biggan_z_weight():
    """gen_z's eval-mode spectrally normalised weight (stored u, v; no power iteration), z columns."""
    state = load_checkpoint(BIGGAN / "pytorch_model.bin")
    w = np.asarray(state["generator.gen_z.weight_orig"], np.float64)  # (out, 2 * z_dim): concat([z, embed])
    u, v = (np.asarray(state[f"generator.gen_z.weight_{s}"], np.float64) for s in "uv")
    return (w / (u @ w @ v))[:, : w.shape[1] // 2]


def _pggan_z_weight(name):
    """formatLayer's weight on the noise columns times the He constant sqrt(2 / fan_in) of the whole input."""
    ckpt = load_checkpoint(PGGAN / name, extra_records=GAN_ZOO_RECORDS)
    config = vars(ckpt["config"])
    w = np.asarray(ckpt["avgG"]["formatLayer.module.weight"], np.float64)  # (16 * depthScale0, noise + categories)
    assert w.shape[1] == config["latentVectorDim"]
    return w[:, : config["noiseVectorDim"]] * np.sqrt(2.0 / config["latentVectorDim"])


@pytest.mark.parametrize("family", ["biggan", "pgan_tiny.pth", "pgan_cond16.pth"])
def test_sefa_is_the_eigenbasis_of_the_checkpoints_first_layer(family, request):
    G = request.getfixturevalue("biggan") if family == "biggan" else (
        request.getfixturevalue("pgan_tiny" if family == "pgan_tiny.pth" else "pgan_cond"))
    a = _biggan_z_weight() if family == "biggan" else _pggan_z_weight(family)
    k = G.z_dim
    for normalize in (True, False):  # unnormalised scores carry the spectral norm / He constant
        values, vectors = _eig(a, normalize)
        d = sefa(G, k=k, normalize=normalize)
        assert d.space["name"] == "z" and d.layers is None and d.vectors.shape == (k, G.z_dim)
        np.testing.assert_allclose(d.scores, values[:k], rtol=1e-5)
        _assert_same_directions(d.vectors, vectors[:k], tol=1e-4)


# --- BigGAN z --------------------------------------------------------------------------------------
def test_biggan_z_samples_density_and_decoding(biggan):
    t = 0.4
    space = latent_space(biggan, "z", class_index=2, truncation_psi=t)
    z = np.asarray(space.sample(jax.random.key(0), 256))
    assert np.abs(z).max() <= 2 * t and np.abs(z).max() > 1.5 * t  # fills the box [-2t, 2t]
    np.testing.assert_allclose(z.std(), t * 0.8796, rtol=0.05)  # std of N(0, 1) truncated to [-2, 2]
    density = np.asarray(space.log_density(z))
    assert np.all(np.isfinite(density))
    outside = z[:3].copy()
    outside[0, 5] = 2.01 * t
    outside[1, 0] = -2.01 * t
    assert np.all(np.asarray(space.log_density(outside)) == [-np.inf, -np.inf, density[2]])
    # decode = the reference's image for class 2 at truncation 0.4 (rows 0 and 2 of the recording)
    io = np.load(FIXTURES / "biggan" / "deep_tiny_io.npz")
    rows = [0, 2]
    assert np.all(io["class_vector"][rows].argmax(1) == 2)
    latents = jnp.concatenate([jnp.asarray(io["z_t0p4"][rows]), z[:2]])
    both = jax.jit(lambda p, x: (space.decode(p, x), biggan.generate(p, x, biggan.class_vector(jnp.full(4, 2)), t)))
    images, expected = both(biggan.params, latents)
    assert relative_error(nchw(images[:2]), io["out_t0p4"][rows]) < PARITY_RTOL
    np.testing.assert_allclose(images, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="class_index"):
        latent_space(biggan, "z").decode(biggan.params, z[:1])


def test_biggan_iso_density_walk_stays_on_the_shell_and_in_the_box(biggan):
    t = 0.6
    space = latent_space(biggan, "z", class_index=1, truncation_psi=t)
    directions = sefa(biggan, k=4).vectors
    start = space.sample(jax.random.key(3), 1)[0]
    steps = jnp.linspace(-12.0, 12.0, 100)
    path = np.asarray(jax.jit(lambda z: sweep(iso_density, space, z, directions, steps))(start))  # [K, 100, z_dim]
    flat = path.reshape(-1, biggan.z_dim)
    assert np.abs(flat).max() <= 2 * t
    density = np.asarray(space.log_density(flat))
    np.testing.assert_allclose(density, space.log_density(start[None])[0], rtol=1e-5)
    # it does move far: along each direction the walk reaches the box's faces, several coordinates away
    assert np.min(np.max(np.linalg.norm(path - np.asarray(start), axis=-1), axis=1)) > t
    assert np.isclose(np.abs(flat).max(), 2 * t, rtol=1e-4)


# --- PGGAN z ---------------------------------------------------------------------------------------
def test_pggan_z_decodes_the_reference_images(pgan_tiny):
    space = latent_space(pgan_tiny, "z")
    io = np.load(PGGAN / "pgan_tiny_io.npz")
    both = jax.jit(lambda p, z: (space.decode(p, z), pgan_tiny.generate(p, z)))
    images, expected = both(pgan_tiny.params, jnp.asarray(io["z"]))
    assert relative_error(nchw(images), io["out_avgG"]) < PARITY_RTOL
    np.testing.assert_allclose(images, expected, rtol=0, atol=1e-6)
    z = space.sample(jax.random.key(1), 4000)
    np.testing.assert_allclose([np.mean(z), np.std(z)], [0, 1], atol=0.01)


def test_pggan_classes_take_one_value_per_attribute(pgan_cond):
    """class_index enumerates the combinations of attribute values, the last attribute fastest."""
    assert pgan_cond.metadata["categories"] == [["shape", ["disc", "square"]], ["color", ["red", "green", "blue"]]]
    spaces = [latent_space(pgan_cond, "z", class_index=i) for i in range(6)]
    assert spaces[0].num_classes == 6
    c = np.concatenate([np.asarray(s.classes(1)) for s in spaces])
    expected = np.array([[1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [1, 0, 0, 0, 1],
                         [0, 1, 1, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 0, 1]], np.float32)
    np.testing.assert_array_equal(c, expected)
    drawn = np.asarray(sample_classes(pgan_cond, jax.random.key(0), 600))
    counts = np.sum(np.all(drawn[:, None] == expected[None], axis=2), axis=0)
    assert counts.sum() == 600 and counts.min() > 60  # only valid vectors, every combination
    # the reference's recorded images, each with its own category vector
    io = np.load(PGGAN / "pgan_cond16_io.npz")
    for row, c_row in enumerate(io["c"]):
        index = int(np.flatnonzero(np.all(expected == c_row, axis=1))[0])
        image = spaces[index].decode(pgan_cond.params, jnp.asarray(io["z"][row: row + 1]))
        assert relative_error(nchw(image), io["out_avgG"][row: row + 1]) < PARITY_RTOL
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 6\)"):
        latent_space(pgan_cond, "z", class_index=6)
    with pytest.raises(ValueError, match="class_index"):
        latent_space(pgan_cond, "z").decode(pgan_cond.params, jnp.zeros((1, pgan_cond.z_dim)))


def test_pggan_iso_density_walk_keeps_the_density(pgan_cond):
    space = latent_space(pgan_cond, "z", class_index=5)
    directions = sefa(space, k=3).vectors
    start = space.sample(jax.random.key(2), 1)[0]
    path = sweep(iso_density, space, start, directions, jnp.linspace(-20.0, 20.0, 100)).reshape(-1, pgan_cond.z_dim)
    np.testing.assert_allclose(space.log_density(path), space.log_density(start[None])[0], rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(start), rtol=1e-5)


# --- GANSpace on features ------------------------------------------------------------------------
def test_pggan_ganspace_regresses_feature_pcs_to_z(pgan_plain):
    """The same samples (the documented key schedule of `latent.stream`), redone in float64 numpy:
    PCA of the 'b4.fc' features, then z regressed on the standardised PC coordinates."""
    G = pgan_plain
    space = latent_space(G, "z")
    features = jax.jit(lambda x: space.features(G.params, x, ["b4.fc"])["b4.fc"])
    key, n, batch, k = jax.random.key(4), 1200, 400, 3
    d = ganspace(space, key=key, k=k, num_samples=n, batch_size=batch, regression_samples=n, progress=False)
    assert d.settings["layer"] == "b4.fc" and d.settings["num_samples_used"] == n
    np.testing.assert_allclose(np.linalg.norm(d.vectors, axis=1), 1, atol=1e-6)

    def draw(stream_key):
        z = np.concatenate([np.asarray(space.sample(jax.random.fold_in(stream_key, i), batch)) for i in range(n // batch)])
        f = np.asarray(features(jnp.asarray(z))).reshape(n, -1)
        return z.astype(np.float64), f.astype(np.float64)

    _, f = draw(jax.random.fold_in(key, 0))
    mean = f.mean(0)
    values, vectors = np.linalg.eigh(np.cov(f, rowvar=False))
    values, vectors = values[::-1], vectors[:, ::-1]
    q = int(np.sum(values > 1e-6 * values[0]))
    np.testing.assert_allclose(d.scores, np.sqrt(values[:k]), rtol=1e-3)  # standard deviations
    z, f = draw(jax.random.fold_in(key, 1))
    coords = (f - mean) @ vectors[:, :q] / np.sqrt(values[:q])
    solution = np.linalg.lstsq(coords, z, rcond=None)[0][:k]
    _assert_same_directions(d.vectors, solution / np.linalg.norm(solution, axis=1, keepdims=True), tol=1e-3)
    # and what the regression means: moving z along direction i moves PC i's coordinate the most
    grad = np.asarray(jax.jacfwd(lambda x: features(x).reshape(-1))(jnp.asarray(z[0:1]))).reshape(-1, G.z_dim)
    change = (vectors[:, :k].T @ grad @ d.vectors.T) / np.sqrt(values[:k])[:, None]  # [PC, direction]
    assert np.all(np.argmax(np.abs(change), axis=0) == np.arange(k))


# --- latentjax discover ------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["biggan", "pggan"])
def test_discover_sefa_smoke_on_biggan_and_pggan(tmp_path, family, request):
    path, G = (BIGGAN, request.getfixturevalue("biggan")) if family == "biggan" else (
        PGGAN / "pgan_tiny.pth", request.getfixturevalue("pgan_tiny"))
    extra = ["--config.space.class_index=7"] if family == "biggan" else []
    out = tmp_path / family
    assert cli_main(["discover", f"--config={CONFIGS / 'sefa.py'}:smoke", f"--config.generator={path}",
                     "--workdir", str(out)] + extra) == 0
    d = Directions.load(out / "directions.npz")
    expected = sefa(G, k=3)
    np.testing.assert_array_equal(d.vectors, expected.vectors)
    np.testing.assert_array_equal(d.scores, expected.scores)
    assert d.space == (latent_space(G, "z", class_index=7) if family == "biggan" else latent_space(G, "z")).spec
    report = (out / "report.html").read_text()
    assert "sefa directions in z" in report and f"{d.scores[0]:.6g}" in report
    assert report.count("<img") == 1 + 3  # the seed's grid and one GIF per direction
