"""PSNR, SSIM and identity similarity against independent numpy formulas and scikit-image's numbers."""

import numpy as np
import pytest
from support import FIXTURES

from latentjax.metrics.image import gaussian_window, identity_similarity, image_metrics, psnr, ssim
from latentjax.metrics.lpips import load_lpips


def pair(shape, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    return x, np.clip(x + noise * rng.normal(size=shape), -1, 1).astype(np.float32)


def reference_ssim(x, y, data_range, k1=0.01, k2=0.03, size=11, sigma=1.5):
    """Wang et al. (2004) with an explicit 2-D Gaussian window over each valid position, in float64."""
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    out = []
    for a, b in zip(x.astype(np.float64), y.astype(np.float64)):
        values = []
        for c in range(a.shape[-1]):
            for i in range(a.shape[0] - size + 1):
                for j in range(a.shape[1] - size + 1):
                    pa, pb = a[i:i + size, j:j + size, c], b[i:i + size, j:j + size, c]
                    ma, mb = np.sum(window * pa), np.sum(window * pb)
                    va, vb = np.sum(window * (pa - ma) ** 2), np.sum(window * (pb - mb) ** 2)
                    cov = np.sum(window * (pa - ma) * (pb - mb))
                    values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
        out.append(np.mean(values))
    return np.array(out)


def test_ssim_and_psnr_match_scikit_image():
    # skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    # data_range=2.0, channel_axis=-1) and peak_signal_noise_ratio(x, y, data_range=2.0), scikit-image 0.26.0,
    # float64, on these inputs.
    x, y = pair((2, 24, 20, 3))
    np.testing.assert_allclose(ssim(x, y), [0.6487643441847534, 0.6509329523911547], rtol=1e-5)
    np.testing.assert_allclose(psnr(x, y), [17.12249230057349, 17.319717164276838], rtol=1e-5)


def test_ssim_matches_the_explicit_window_formula():
    x, y = pair((2, 15, 17, 2), seed=1, noise=0.1)
    x, y = (x + 1) / 2, (y + 1) / 2  # [0, 1] images, data_range 1
    np.testing.assert_allclose(ssim(x, y, data_range=1.0), reference_ssim(x, y, 1.0), rtol=1e-5)
    np.testing.assert_allclose(ssim(x, y, data_range=1.0, k1=0.05, k2=0.1), reference_ssim(x, y, 1.0, 0.05, 0.1),
                               rtol=1e-5)
    np.testing.assert_allclose(ssim(x, x), 1.0, rtol=1e-6)
    g = gaussian_window()
    assert g.shape == (11,) and abs(g.sum() - 1) < 1e-6 and g.argmax() == 5


def test_psnr_formula():
    x = np.zeros((3, 8, 8, 1), np.float32)
    y = x + np.array([0.1, 0.01, 0.5], np.float32)[:, None, None, None]
    np.testing.assert_allclose(psnr(x, y), 10 * np.log10(4.0 / np.array([0.1, 0.01, 0.5]) ** 2), rtol=1e-5)
    np.testing.assert_allclose(psnr(x, y, data_range=1.0), 10 * np.log10(1.0 / np.array([0.1, 0.01, 0.5]) ** 2),
                               rtol=1e-5)


def test_identity_similarity_is_the_cosine_of_embeddings():
    x, y = pair((3, 8, 8, 3), seed=2)
    projection = np.random.default_rng(3).normal(size=(8 * 8 * 3, 5)).astype(np.float32)
    embed = lambda images: images.reshape(len(images), -1) @ projection
    ex, ey = embed(x), embed(y)
    expected = np.sum(ex * ey, -1) / np.linalg.norm(ex, axis=-1) / np.linalg.norm(ey, axis=-1)
    np.testing.assert_allclose(identity_similarity(embed, x, y), expected, rtol=1e-5)
    np.testing.assert_allclose(identity_similarity(embed, x, x), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"embed must return \[N, D\] embeddings"):
        identity_similarity(lambda images: images.sum(), x, y)


def test_image_metrics_clip_and_collect_everything():
    x, y = pair((2, 16, 16, 3), seed=4)
    lpips = load_lpips(FIXTURES / "lpips" / "vgg16_random.pth", FIXTURES / "lpips" / "lpips_vgg_narrow_lin.pth")
    out = image_metrics(x * 1.5, y, lpips=lpips, embed=lambda images: images.reshape(len(images), -1))
    assert set(out) == {"psnr", "ssim", "lpips", "identity"}
    clipped = np.clip(x * 1.5, -1, 1)
    np.testing.assert_allclose(out["psnr"], psnr(clipped, y), rtol=1e-6)
    np.testing.assert_allclose(out["ssim"], ssim(clipped, y), rtol=1e-6)
    np.testing.assert_allclose(out["lpips"], lpips(clipped, y), rtol=1e-5)
    assert set(image_metrics(x[:, :8, :8], y[:, :8, :8])) == {"psnr"}  # smaller than the SSIM window


def test_mismatched_or_non_nhwc_inputs_are_refused():
    x, y = pair((2, 16, 16, 3))
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, y[:1])
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        ssim(x[0], y[0])
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(x[:, :8, :8], y[:, :8, :8])
