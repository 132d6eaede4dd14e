"""InterFaceGAN: the linear SVM against scikit-learn's SVC, the boundary recipe against the
reference's steps, projections against the reference's closed forms, the edit, and the method
recovering planted attributes from a scorer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.svm import SVC

import latentjax as lj
from latentjax import walks
from latentjax.directions import fit_boundary, interfacegan, project_boundary, train_boundary
from latentjax.directions.svm import linear_svm
from latentjax.metrics.scorer import Scorer, score_samples
from support import make_generator


def planted(n, d, noise, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)
    return x, x @ w + noise * rng.normal(size=n), w


@pytest.mark.parametrize("n,d,noise", [(300, 12, 0.0), (400, 24, 0.6)])
def test_linear_svm_matches_sklearn_svc(n, d, noise):
    x, s, _ = planted(n, d, noise, seed=d)
    labels = (s > 0.1).astype(int)
    ours = linear_svm(x, labels)
    reference = SVC(kernel="linear").fit(x, labels)
    coef = reference.coef_[0]
    cosine = ours.coef @ coef / np.linalg.norm(ours.coef) / np.linalg.norm(coef)
    assert cosine > 0.9999, cosine
    assert abs(ours.intercept - reference.intercept_[0]) < 0.02 * max(1.0, abs(reference.intercept_[0]))
    assert np.mean(ours.predict(x) == reference.predict(x)) > 0.99
    assert ours.violation < 1e-3
    # the same problem through the on-the-fly Gram columns (rounding differs: the same optimum to tol)
    streamed = linear_svm(x, labels, gram_bytes=0).coef
    assert streamed @ ours.coef / np.linalg.norm(streamed) / np.linalg.norm(ours.coef) > 0.99999


def test_linear_svm_refuses_bad_input():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="both classes"):
        linear_svm(x, np.ones(4, int))
    with pytest.raises(ValueError, match="0/1 or -1/\\+1"):
        linear_svm(x, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="labels must be \\[N=4\\]"):
        linear_svm(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="C must be a positive number"):
        linear_svm(x, np.array([0, 1, 0, 1]), C=0)


def reference_split(latents, scores, chosen_num_or_ratio, split_ratio, seed):
    """The reference's selection and split, written out step by step (its shuffle: NumPy's global
    state after `np.random.seed(seed)`)."""
    order = np.argsort(scores[:, None], axis=0)[::-1, 0]
    latents, scores = latents[order], scores[order]
    n = len(scores)
    chosen = int(n * chosen_num_or_ratio) if chosen_num_or_ratio <= 1 else int(chosen_num_or_ratio)
    chosen = min(chosen, n // 2)
    train = int(chosen * split_ratio)
    np.random.seed(seed)
    pos, neg = np.arange(chosen), np.arange(chosen)
    np.random.shuffle(pos)
    np.random.shuffle(neg)
    x = np.concatenate([latents[:chosen][pos[:train]], latents[n - chosen:][neg[:train]]])
    y = np.concatenate([np.ones(train, int), np.zeros(train, int)])
    return x, y, chosen - train


def test_train_boundary_follows_the_reference_recipe():
    latents, scores, truth = planted(3000, 16, 0.3, seed=1)
    x, y, val = reference_split(latents, scores, 0.1, 0.7, seed=5)
    svc = SVC(kernel="linear").fit(x, y)
    reference = svc.coef_[0]
    np.random.seed(5)  # the reference's shuffle draws from NumPy's global state: the same split
    normal = train_boundary(latents, scores[:, None], 0.1, 0.7)
    assert normal.shape == (16,) and normal.dtype == np.float32
    assert abs(np.linalg.norm(normal) - 1) < 1e-6
    assert normal @ reference / np.linalg.norm(reference) > 0.9999
    assert normal @ truth > 0.9  # it points up the planted score
    np.random.seed(5)
    fit = fit_boundary(latents, scores, 0.1, 0.7)
    assert (fit.train_num, fit.val_num, fit.remaining_num, fit.dropped) == (210, val, 2400, 0)
    # the remaining samples are labelled by the midpoint of the highest and lowest score
    ranked = np.argsort(scores)[::-1][300:-300]
    remaining_labels = (scores[ranked] >= (scores.max() + scores.min()) / 2).astype(int)
    expected = np.mean(svc.predict(latents[ranked]) == remaining_labels)
    assert fit.val_accuracy == 1.0 and abs(fit.remaining_accuracy - expected) < 0.005
    # ties (a 0/1 attribute) are broken as the reference's sort breaks them
    ties = np.round(scores)
    x, y, _ = reference_split(latents, ties, 0.3, 0.7, seed=2)
    np.random.seed(2)
    normal = train_boundary(latents, ties, 0.3, 0.7)
    reference = SVC(kernel="linear").fit(x, y).coef_[0]
    assert normal @ reference / np.linalg.norm(reference) > 0.9999
    # counts above 1 are sample counts, capped at N // 2
    assert fit_boundary(latents[:40], scores[:40], 100, 0.5).train_num == 10


def test_train_boundary_drops_invalid_scores_and_says_so():
    latents, scores, _ = planted(400, 8, 0.0, seed=2)
    scores[:50] = np.nan
    scores[50:60] = -1.0
    fit = fit_boundary(latents, scores, 0.25, invalid_value=-1.0)
    assert fit.dropped == 60
    assert fit.train_num + fit.val_num == int(340 * 0.25)
    with pytest.raises(ValueError, match="scores must be \\[N\\] or \\[N, 1\\] with N = 400"):
        train_boundary(latents, scores[:10])
    with pytest.raises(ValueError, match="not w\\+"):
        train_boundary(latents.reshape(400, 2, 4), scores)
    with pytest.raises(ValueError, match="no training samples"):
        train_boundary(latents[:3], scores[100:103], 0.02)


def reference_projection(primal, *conditions):
    """The reference's `project_boundary` for one and two conditions, on [1, d] arrays."""
    if len(conditions) == 1:
        c = conditions[0]
        new = primal - primal.dot(c.T) * c
    else:
        c1, c2 = conditions
        p1, p2, c12 = primal.dot(c1.T), primal.dot(c2.T), c1.dot(c2.T)
        alpha = (p1 - p2 * c12) / (1 - c12 ** 2 + 1e-8)
        beta = (p2 - p1 * c12) / (1 - c12 ** 2 + 1e-8)
        new = primal - alpha * c1 - beta * c2
    return new / np.linalg.norm(new)


def test_project_boundary_matches_the_reference_and_generalises():
    rng = np.random.default_rng(3)
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    n, c1, c2, c3 = (unit(rng.normal(size=(1, 10))) for _ in range(4))
    for conditions in ((c1,), (c1, c2)):
        np.testing.assert_allclose(project_boundary(n, *conditions), reference_projection(n, *conditions), atol=1e-6)
    flat = project_boundary(n[0], c1[0], c2[0], c3[0])
    assert flat.shape == (10,)
    np.testing.assert_allclose(np.stack([c1[0], c2[0], c3[0]]) @ flat, 0, atol=1e-6)
    np.testing.assert_allclose(flat, walks.conditional_direction(n[0], np.concatenate([c1, c2, c3])), atol=1e-5)
    np.testing.assert_array_equal(project_boundary(n), n)
    with pytest.raises(ValueError, match="condition 0 must be"):
        project_boundary(n, np.ones(3))
    with pytest.raises(ValueError, match="span of the conditions"):
        project_boundary(c1, c1)


def test_boundary_walk_sets_the_distance_in_w_and_shifts_in_w_plus():
    G, *_ = make_generator()
    normal = jnp.asarray(np.eye(8, dtype=np.float32)[2])
    w = lj.latent_space(G, "w")
    latent = jnp.arange(8, dtype=jnp.float32)
    for step in (-3.0, 0.5):
        edited = walks.boundary(w, latent, normal, step)
        assert float(edited @ normal) == pytest.approx(step)  # absolute distance, not relative
        np.testing.assert_allclose(np.delete(np.asarray(edited), 2), np.delete(np.asarray(latent), 2))
    wp = lj.latent_space(G, "w+")
    code = jnp.ones(wp.shape)
    np.testing.assert_allclose(walks.boundary(wp, code, normal, 2.0), code + 2.0 * normal)


def planted_scorer(G):
    """Scores that are linear in the images: a mean of the red channel and the image's top-half
    brightness (and NaN where an image is darker than a threshold, to exercise dropping)."""
    def apply(_, images):
        red = jnp.mean(images[..., 0], axis=(1, 2))
        top = jnp.mean(images[:, : images.shape[1] // 2], axis=(1, 2, 3))
        scores = jnp.stack([red, top], axis=-1)
        return jnp.where(jnp.mean(images, axis=(1, 2, 3))[:, None] < -0.1, jnp.nan, scores)

    return Scorer(apply, ("red", "top"))


def test_interfacegan_finds_the_directions_that_raise_each_score():
    G, *_ = make_generator()
    scorer = planted_scorer(G)
    space = lj.latent_space(G, "w")
    d = interfacegan(space, scorer, num_samples=600, chosen_num_or_ratio=0.2, batch_size=200, progress=False)
    assert d.method == "interfacegan" and d.settings["directions"] == ["red", "top"] and len(d) == 2
    assert np.all(d.scores > 0.8)
    latents, scores = score_samples(space, scorer, 600, batch_size=128, key=jax.random.key(0), progress=False)
    # the same table whatever the batch size
    again, _ = score_samples(space, scorer, 600, batch_size=600, key=jax.random.key(0), progress=False)
    np.testing.assert_allclose(latents, again, rtol=1e-5, atol=1e-6)
    # the method is the boundary recipe on the scored table (NaN rows dropped)
    for column in range(2):
        fit = fit_boundary(latents, scores[:, column], 0.2, 0.7, seed=0)
        assert d.settings["dropped"][column] == fit.dropped > 0
        np.testing.assert_allclose(d.vectors[column], fit.normal, atol=1e-4)
    # moving along 'red' raises red, more than most random directions do
    probe = jnp.asarray(latents[:32])
    decode, red_gain = jax.jit(lambda latents: space.decode(G.params, latents)), []
    for v in (d.vectors[0], *np.random.default_rng(0).normal(size=(8, 8))):
        v = jnp.asarray(v / np.linalg.norm(v), jnp.float32)
        up, down = decode(probe + 0.5 * v), decode(probe - 0.5 * v)
        red_gain.append(float(jnp.nanmean(scorer(up)[:, 0] - scorer(down)[:, 0])))
    assert red_gain[0] > 0 and red_gain[0] > np.median(np.abs(red_gain[1:]))
    conditioned = interfacegan(space, scorer, num_samples=600, chosen_num_or_ratio=0.2, batch_size=200,
                               conditions=("top",), progress=False)
    np.testing.assert_allclose(conditioned.vectors[0], project_boundary(d.vectors[0], d.vectors[1]), atol=1e-6)
    np.testing.assert_allclose(conditioned.vectors[1], d.vectors[1])  # a condition is not projected on itself
    with pytest.raises(ValueError, match="unknown attribute\\(s\\) \\['blue'\\]"):
        interfacegan(space, scorer, num_samples=10, attributes=("blue",), progress=False)
