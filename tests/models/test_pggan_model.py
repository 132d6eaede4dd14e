"""PGGAN model properties: transforms agree with eager, normalisation, blending, input weight, contracts."""

import dataclasses
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.models import FAMILIES
from latentjax.models.pggan import PGGAN, PGGANConfig, upsample_nearest
from latentjax.load import load_pggan
from support import FIXTURES, REPO, relative_error

SMALL = PGGANConfig(z_dim=6, c_dim=3, channels=(8, 4), img_channels=3, alpha=0.3, output_activation="tanh")


@pytest.fixture(scope="module")
def G():
    G = PGGAN.init(SMALL, jax.random.key(0))
    # fresh models have zero biases; random ones make every term of the layer formula matter
    rng = np.random.RandomState(9)
    return PGGAN(SMALL, jax.tree.map(lambda x: x + 0.2 * rng.randn(*x.shape).astype(np.float32) if x.ndim == 1 else x,
                                     G.params))


def _inputs(n=3, cfg=SMALL):
    z = jax.random.normal(jax.random.key(1), (n, cfg.z_dim))
    c = jax.nn.one_hot(jnp.arange(n) % cfg.c_dim, cfg.c_dim) if cfg.c_dim else None
    return z, c


def _variant(G, **changes):
    """The same weights under another config (fields that do not change any shape)."""
    return PGGAN(dataclasses.replace(G.config, **changes), G.params)


def test_shapes_and_layer_names(G):
    z, c = _inputs()
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (6, 3, 8, 3)
    assert G.layer_names == ("b4.fc", "b4", "b4.img", "b8.conv0", "b8", "b8.img")
    features = G.features(G.params, z, c)
    assert list(features) == list(G.layer_names) + ["img"]
    assert features["b4.fc"].shape == (3, 4, 4, 8) and features["b8.conv0"].shape == (3, 8, 8, 4)
    assert features["b4.img"].shape == (3, 4, 4, 3) and features["img"].shape == (3, 8, 8, 3)
    assert all(v.dtype == jnp.float32 for v in features.values())
    assert list(G.features(G.params, z, c, layers=["b8"])) == ["b8"]
    with pytest.raises(ValueError, match="unknown layers"):
        G.features(G.params, z, c, layers=["b16"])


def test_jit_vmap_grad_match_eager(G):
    z, c = _inputs()
    target = jax.random.normal(jax.random.key(3), (3, 8, 8, 3))
    direction = jax.random.normal(jax.random.key(2), z.shape)

    def loss(z):
        return jnp.mean((G.generate(G.params, z, c) - target) ** 2)

    def sample_loss(zi, ci):
        return jnp.sum((G.generate(G.params, zi[None], ci[None]) - target[:1]) ** 2)

    @jax.jit  # one compilation for all transformed versions
    def transformed(z, c, direction):
        return {"jit": G.generate(G.params, z, c),
                "vmap": jax.vmap(lambda zi, ci: G.generate(G.params, zi[None], ci[None])[0])(z, c),
                "grad": jax.grad(loss)(z),
                "jvp": jax.jvp(loss, (z,), (direction,))[1],
                "per_sample_grad": jax.vmap(jax.grad(sample_loss))(z, c),
                "summed_grad": jax.grad(lambda z: jnp.sum((G.generate(G.params, z, c) - target[:1]) ** 2))(z)}

    t = transformed(z, c, direction)
    eager = G.generate(G.params, z, c)
    assert relative_error(t["jit"], eager) < 1e-5  # XLA fuses and reorders float ops
    assert relative_error(t["vmap"], eager) < 1e-5
    g_eager = jax.grad(loss)(z)
    assert np.all(np.isfinite(g_eager)) and np.abs(g_eager).max() > 0
    np.testing.assert_allclose(t["grad"], g_eager, rtol=1e-4, atol=1e-7)
    # Reverse mode agrees with forward mode along a random direction. (Not finite differences:
    # features move by ~50 per unit of z, so steps small enough to stay linear are below float32 resolution.)
    np.testing.assert_allclose(jnp.vdot(g_eager, direction), t["jvp"], rtol=1e-4)
    # Per-sample gradients by vmap equal the gradient of the summed loss.
    np.testing.assert_allclose(t["per_sample_grad"], t["summed_grad"], rtol=1e-4, atol=1e-6)


def test_pixel_norm_makes_z_scale_irrelevant(G):
    unconditional = PGGAN.init(dataclasses.replace(SMALL, c_dim=0), jax.random.key(4))
    z, _ = _inputs()
    img = unconditional.generate(unconditional.params, z)
    assert relative_error(unconditional.generate(unconditional.params, 5.0 * z), img) < 1e-5
    plain = _variant(unconditional, pixel_norm=False)
    assert relative_error(plain.generate(plain.params, 5.0 * z), plain.generate(plain.params, z)) > 1e-2
    # with pixel norm every 4x4 feature has unit mean square over channels
    fc = unconditional.features(unconditional.params, z, layers=["b4.fc"])["b4.fc"]
    np.testing.assert_allclose(jnp.mean(fc ** 2, axis=-1), 1.0, rtol=1e-4)


def test_alpha_blends_the_previous_scale_and_tanh_is_last(G):
    z, c = _inputs()
    f = G.features(G.params, z, c)
    prev, last = upsample_nearest(f["b4.img"]), f["b8.img"]
    np.testing.assert_allclose(f["img"], jnp.tanh(0.3 * prev + 0.7 * last), rtol=1e-5, atol=1e-6)
    for alpha, expected in ((0.0, last), (1.0, prev)):
        H = _variant(G, alpha=alpha, output_activation="linear")
        np.testing.assert_allclose(H.generate(H.params, z, c), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(prev[:, ::2, ::2], f["b4.img"])
    np.testing.assert_array_equal(prev[:, 1::2, 1::2], f["b4.img"])


def test_input_weight_is_the_effective_linear_map_of_z(G):
    """With identity activation and no pixel norm, b4.fc is affine in z with slope `input_weight`."""
    for equalized in (True, False):
        H = _variant(G, pixel_norm=False, leaky_relu_slope=1.0, equalized_lr=equalized)
        z, c = _inputs()
        fc = lambda z: H.features(H.params, z, c, layers=["b4.fc"])["b4.fc"]
        diff = (fc(z) - fc(jnp.zeros_like(z))).transpose(0, 3, 1, 2).reshape(len(z), -1)  # reference (C, 4, 4) order
        weight = H.input_weight(H.params)
        assert weight.shape == (16 * 8, SMALL.z_dim)
        np.testing.assert_allclose(diff, z @ weight.T, rtol=1e-4, atol=1e-5)
    scale = np.sqrt(2.0 / SMALL.latent_dim)
    np.testing.assert_allclose(G.input_weight(G.params), G.params["b4"]["fc"]["weight"][:6].T * scale, rtol=1e-6)


def test_no_truncation(G):
    z, c = _inputs()
    with pytest.raises(ValueError, match="PGGAN has no truncation"):
        G.generate(G.params, z, c, truncation_psi=0.7)
    with pytest.raises(ValueError, match="not a traced value"):
        jax.jit(G.generate)(G.params, z, c, truncation_psi=1.0)
    with pytest.raises(ValueError, match="truncation_cutoff must be None"):
        G.generate(G.params, z, c, truncation_cutoff=2)
    with pytest.raises(ValueError, match="noise_mode"):
        G.generate(G.params, z, c, noise_mode="fixed")
    img = G.generate(G.params, z, c)
    np.testing.assert_array_equal(G.generate(G.params, z, c, noise_mode="random", key=jax.random.key(1)), img)


def test_input_contracts(G):
    z, c = _inputs()
    with pytest.raises(ValueError, match=r"z must have shape \[N, 6\]"):
        G.generate(G.params, z[:, :4], c)
    with pytest.raises(ValueError, match="conditional"):
        G.generate(G.params, z)
    with pytest.raises(ValueError, match=r"c must have shape \[3, 3\]"):
        G.generate(G.params, z, c[:, :2])
    unconditional = PGGAN.init(dataclasses.replace(SMALL, c_dim=0), jax.random.key(0))
    with pytest.raises(ValueError, match="unconditional"):
        unconditional.generate(unconditional.params, z, c)


def test_categories_change_the_image(G):
    z, c = _inputs()
    assert relative_error(G.generate(G.params, z, c), G.generate(G.params, z, c[::-1])) > 1e-2


def test_bfloat16_compute_is_close_by_image_metric(G):
    z, c = _inputs()
    bf16 = G.generate(G.params, z, c, compute_dtype=jnp.bfloat16)
    assert bf16.dtype == jnp.float32
    assert relative_error(bf16, G.generate(G.params, z, c)) < 5e-2


def test_config_round_trip_and_validation():
    assert PGGANConfig.from_dict(SMALL.to_dict()) == SMALL
    assert SMALL.img_resolution == 8 and SMALL.latent_dim == 9
    with pytest.raises(ValueError, match="unknown PGGAN config keys"):
        PGGANConfig.from_dict({**SMALL.to_dict(), "widths": 3})
    with pytest.raises(ValueError, match=r"missing the required keys \['channels'\]"):
        PGGANConfig.from_dict({"z_dim": 4})
    with pytest.raises(ValueError, match="at least two scales"):
        PGGANConfig(z_dim=4, channels=(8,), alpha=0.5)
    with pytest.raises(ValueError, match="output_activation"):
        PGGANConfig(z_dim=4, channels=(8,), output_activation="sigmoid")
    with pytest.raises(ValueError, match="at least one positive width"):
        PGGANConfig(z_dim=4, channels=())


def test_convert_script_writes_a_native_generator(tmp_path, monkeypatch, capsys):
    from latentjax.load import load_native

    monkeypatch.setitem(FAMILIES, "pggan", (PGGAN, PGGANConfig))
    def convert(argv):
        monkeypatch.setattr("sys.argv", ["convert/pggan.py", *argv])
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(REPO / "convert" / "pggan.py"), run_name="__main__")
        return done.value.code

    source = FIXTURES / "pggan" / "pgan_cond16.pth"
    assert convert([str(source), str(tmp_path / "g"), "--no-ema"]) == 0
    G, reference = load_native(tmp_path / "g"), load_pggan(source, ema=False)
    assert G.config == reference.config and G.metadata == reference.metadata and G.metadata["network"] == "netG"
    jax.tree.map(np.testing.assert_array_equal, G.params, reference.params)
    assert convert([str(tmp_path / "absent.pth"), str(tmp_path / "h")]) == 2
    assert "absent.pth: no such file" in capsys.readouterr().err
