"""LowRankGAN: robust PCA and the per-latent directions against outputs of the reference
(zhujiapeng/LowRankGAN, `tests/fixtures/lowrank/README.md`), `jacobian`'s default mode against the
formula computed here from jax.jacrev, and the 'averaged' mode and the errors."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from latentjax.directions import JacobianConfig, jacobian
from latentjax.directions.jacobian import lowrank_directions
from latentjax.directions.robust_pca import RobustPCA, robust_pca
from latentjax.latent import latent_space
from support import FIXTURES

jacobian_module = importlib.import_module("latentjax.directions.jacobian")  # the name is the function
REFERENCE = FIXTURES / "lowrank" / "lowrank_reference.npz"
FLOAT64_TOL = 1e-10  # float64, the reference's own operations: relative to the matrix's largest entry


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {name: data[name] for name in data.files}


def _assert_same_rows_up_to_sign(actual, expected, atol):
    assert actual.shape == expected.shape
    signs = np.sign(np.sum(actual * expected, axis=1, keepdims=True))
    np.testing.assert_allclose(actual * signs, expected, atol=atol)


# --- robust PCA and the directions against the reference -----------------------------------------
@pytest.mark.parametrize("name", ["f0", "b0", "f1", "b1"])
def test_robust_pca_matches_the_reference(reference, name):
    m = reference[f"M_{name}"]
    result = robust_pca(m)
    scale = np.abs(m).max()
    np.testing.assert_allclose(result.low_rank, reference[f"L_{name}"], rtol=0, atol=FLOAT64_TOL * scale)
    np.testing.assert_allclose(result.sparse, reference[f"S_{name}"], rtol=0, atol=FLOAT64_TOL * scale)
    assert result.iterations == reference[f"iterations_{name}"] and result.converged
    assert np.linalg.matrix_rank(result.low_rank) == reference[f"rank_{name}"]


def test_robust_pca_stops_at_max_iter_as_the_reference(reference):
    m = reference["M_f0"]
    result = robust_pca(m, max_iter=5)
    assert result.iterations == 5 and not result.converged
    np.testing.assert_allclose(result.low_rank, reference["L_f0_iter5"], rtol=0, atol=FLOAT64_TOL * np.abs(m).max())
    np.testing.assert_allclose(result.sparse, reference["S_f0_iter5"], rtol=0, atol=FLOAT64_TOL * np.abs(m).max())


def test_robust_pca_of_zero_and_bad_input():
    zero = robust_pca(np.zeros((4, 4)))
    assert zero.iterations == 0 and not zero.low_rank.any() and not zero.sparse.any()
    with pytest.raises(ValueError, match="matrix must be a finite 2-D array"):
        robust_pca(np.ones(4))
    with pytest.raises(ValueError, match="lam must be positive"):
        robust_pca(np.eye(3), lam=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        robust_pca(np.eye(3), max_iter=0)


@pytest.mark.parametrize("sample", [0, 1])
def test_directions_match_the_reference(reference, sample):
    m_f, m_b = reference[f"M_f{sample}"], reference[f"M_b{sample}"]
    rank_f, rank_b = int(reference[f"rank_f{sample}"]), int(reference[f"rank_b{sample}"])
    unprojected = lowrank_directions(m_f)
    assert unprojected.rank_f == rank_f and unprojected.rank_b is None
    _assert_same_rows_up_to_sign(unprojected.vectors, reference[f"principal{sample}"], 1e-10)
    np.testing.assert_allclose(unprojected.scores, np.linalg.svd(reference[f"L_f{sample}"])[1][:rank_f], rtol=1e-10)
    for relax, key in ((0, f"projected{sample}"), (2, f"projected_relax2_{sample}")):
        found = lowrank_directions(m_f, m_b, num_relax=relax)
        assert (found.rank_f, found.rank_b) == (rank_f, rank_b)
        assert found.null_space_dim == 16 - max(1, rank_b - relax)  # the reference's max(1, rank_b - num_relax)
        _assert_same_rows_up_to_sign(found.vectors, reference[key], 1e-10)
        np.testing.assert_allclose(found.scores, unprojected.scores)  # F's order and scores


# --- jacobian(): the default mode is the reference's formula ------------------------------------
@pytest.fixture(scope="module")
def gray():
    G = lj.load_generator(FIXTURES / "stylegan2" / "ada_gray_s16.pt")
    return G, latent_space(G, "w+")


def _grams(G, space, latents, rows, cols):
    """Per latent, the region's and the rest's JᵀJ / pixels (float64; the rest None if empty), J by jax.jacrev."""
    image = lambda v, x: jnp.mean(space.decode(G.params, (x + space.embed(v, None))[None])[0], axis=-1)
    jacobians = jax.jit(jax.vmap(jax.jacrev(image), (None, 0)))(jnp.zeros(space.direction_dim), latents)
    grams = []
    for J in np.asarray(jacobians, np.float64):
        mask = np.zeros(J.shape[:2], bool)
        mask[rows, cols] = True
        region, rest = J[mask], J[~mask]
        grams.append((region.T @ region / len(region), rest.T @ rest / len(rest) if len(rest) else None))
    return grams


def test_jacobian_of_one_latent_is_the_reference_formula(gray):
    G, space = gray
    latent = space.sample(jax.random.key(0), 5)[1:2]  # its region's low-rank part has rank 3
    d = jacobian(space, latents=latent, region=(0.25, 0.75, 0.25, 0.75), protect="complement", k=None,
                 progress=False)
    [(m_f, m_b)] = _grams(G, space, latent, slice(4, 12), slice(4, 12))
    L_f, L_b = robust_pca(m_f).low_rank, robust_pca(m_b).low_rank
    rank_f, rank_b = np.linalg.matrix_rank(L_f), np.linalg.matrix_rank(L_b)
    _, singular, vh_f = np.linalg.svd(L_f)
    null = np.linalg.svd(L_b)[2][max(1, rank_b):].T
    expected = (null @ null.T @ vh_f[:rank_f].T).T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert rank_f == 3 and len(d) == 3
    assert d.settings["rank_f"] == [3] and d.settings["rank_b"] == [rank_b] and d.settings["sample"] == [0, 0, 0]
    assert d.settings["null_space_dim"] == [16 - max(1, rank_b)] and d.settings["num_samples"] == 1
    _assert_same_rows_up_to_sign(d.vectors, expected, 1e-5)  # forward- vs reverse-mode J (float32): 2e-7 seen
    np.testing.assert_allclose(d.scores, singular[:3], rtol=1e-5)
    assert d.layers.shape == (3, space.num_layers) and d.layers.all()


def test_jacobian_stacks_the_latents_sets_in_order(gray, monkeypatch):
    _, space = gray
    latents = space.sample(jax.random.key(0), 3)
    box = dict(region=(0.25, 0.75, 0.25, 0.75), progress=False)
    every = jacobian(space, latents=latents, k=None, **box)
    ranks = every.settings["rank_f"]
    assert len(ranks) == 3 and every.settings["sample"] == [i for i, r in enumerate(ranks) for _ in range(r)]
    assert "rank_b" not in every.settings  # nothing protected: the unprojected principal directions
    last = jacobian(space, latents=latents[2:], k=None, **box)
    np.testing.assert_array_equal(every.vectors[-ranks[2]:], last.vectors)
    np.testing.assert_array_equal(every.scores[-ranks[2]:], last.scores)
    first = jacobian(space, latents=latents, k=2, **box)
    np.testing.assert_array_equal(first.vectors, every.vectors[:2])
    assert first.settings["sample"] == every.settings["sample"][:2]
    with pytest.warns(UserWarning, match=rf"found {len(every)} directions, fewer than k=40"):
        sampled = jacobian(space, num_samples=3, key=jax.random.key(0), k=40, **box)  # the same latents
    np.testing.assert_array_equal(sampled.vectors, every.vectors)
    # a latent whose region's low-rank part is 0 gives no direction; none at all is an error
    monkeypatch.setattr(jacobian_module, "robust_pca", lambda m, *args: RobustPCA(0 * m, m, 1, True))
    with pytest.raises(ValueError, match="rank-0"):
        jacobian(space, latents=latents[:1], **box)


# --- the 'averaged' mode and the settings -------------------------------------------------------
def test_averaged_mode_uses_the_given_latents(gray):
    G, space = gray
    latents = space.sample(jax.random.key(1), 2)
    sampled = jacobian(space, mode="averaged", k=4, num_samples=2, key=jax.random.key(1), progress=False)
    given = jacobian(space, mode="averaged", k=4, latents=latents, progress=False)
    np.testing.assert_array_equal(given.vectors, sampled.vectors)
    m_f = np.mean([m for m, _ in _grams(G, space, latents, slice(None), slice(None))], axis=0)
    values = np.linalg.eigvalsh(m_f)[::-1][:4]
    np.testing.assert_allclose(given.scores, values, rtol=1e-4)
    assert given.settings["mode"] == "averaged" and "rank_f" not in given.settings


def test_bad_settings_name_the_argument(gray):
    _, space = gray
    with pytest.raises(ValueError, match="mode must be one of"):
        JacobianConfig(mode="mean")
    with pytest.raises(ValueError, match="k must be a positive integer in mode 'averaged'"):
        JacobianConfig(mode="averaged", k=None)
    with pytest.raises(ValueError, match="num_relax must be >= 0"):
        JacobianConfig(num_relax=-1)
    with pytest.raises(ValueError, match="lam must be positive"):
        JacobianConfig(lam=0.0)
    with pytest.raises(ValueError, match=r"latents must be an array \[N, 6, 16\]"):
        jacobian(space, latents=np.zeros((4, 16)), progress=False)  # one latent needs its batch axis
    assert JacobianConfig.from_dict({"k": None}).k is None  # all the reference finds
