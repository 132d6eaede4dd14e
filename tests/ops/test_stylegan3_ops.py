"""ops.filtered_lrelu: the fast path (polyphase / strided shifted slices) against the plain reference path,
and the StyleGAN3 filter design against the filters NVIDIA's code stored in the fixture snapshots."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.io.torch_pickle import load
from latentjax.models import stylegan3_convert
from latentjax.models.stylegan3 import StyleGAN3Config, design_lowpass_filter, designed_filters
from latentjax.ops.filtered_lrelu import filtered_lrelu, output_size
from latentjax.ops.upfirdn2d import upfirdn2d
from support import FIXTURES, relative_error

SG3 = FIXTURES / "stylegan3"


def _lowpass(taps, cutoff=0.4, asymmetric=False):
    f = design_lowpass_filter(taps, cutoff, 0.3, 2.0)
    return f * np.linspace(0.6, 1.4, taps, dtype=np.float32) if asymmetric else f


CASES = {  # name: (fu, fd, up, down, padding, clamp)
    "sg3_up2": (_lowpass(12), _lowpass(12), 2, 2, (9, 8, 9, 8), 1.0),
    "sg3_up4": (_lowpass(24), _lowpass(12), 4, 2, (-6, -9, -6, -9), 1.5),
    "sg3r_radial": (_lowpass(12), design_lowpass_filter(12, 0.4, 0.3, 2.0, radial=True), 2, 2, (11, 10, 11, 10), 0.3),
    "critical_crop": (_lowpass(12), _lowpass(12), 2, 2, (-5, -6, 3, -4), None),
    "asymmetric_taps": (_lowpass(7, asymmetric=True), _lowpass(5, asymmetric=True), 3, 2, (2, 5, 4, 1), 1.0),
    "few_taps_up4": (_lowpass(3, asymmetric=True), None, 4, 1, (1, 0, 2, 3), None),
    "torgb": (None, None, 1, 1, 0, 0.5),
}


@pytest.mark.parametrize("flip_filter", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_matches_reference_path(name, flip_filter):
    fu, fd, up, down, padding, clamp = CASES[name]
    x = jax.random.normal(jax.random.key(0), (2, 20, 22, 3))
    b = jnp.asarray([0.5, -0.2, 0.1])
    gain, slope = (1.0, 1.0) if name == "torgb" else (float(np.sqrt(2)), 0.2)
    kw = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp,
              flip_filter=flip_filter)
    ref = filtered_lrelu(x, impl="ref", **kw)
    fast = jax.jit(lambda x: filtered_lrelu(x, impl="fast", **kw))(x)
    pads = padding if isinstance(padding, tuple) else (padding,) * 4
    assert ref.shape == (2, output_size(20, fu, fd, up, down, pads[2], pads[3]),
                         output_size(22, fu, fd, up, down, pads[0], pads[1]), 3)
    assert fast.shape == ref.shape
    assert relative_error(fast, ref) < 1e-6
    if clamp is not None:  # the clamp acts (before the down filter)
        unclamped = filtered_lrelu(x, impl="ref", **{**kw, "clamp": None})
        assert relative_error(unclamped, ref) > 1e-3


def test_reference_path_is_the_documented_recipe():
    """bias -> upfirdn2d(gain up^2) -> lrelu * gain -> clamp -> upfirdn2d(down), written out."""
    fu, fd, up, down, padding, clamp = CASES["sg3_up4"]
    x = jax.random.normal(jax.random.key(1), (1, 16, 16, 2))
    b = jnp.asarray([0.3, -0.3])
    y = upfirdn2d(x + b, np.outer(fu, fu), up=up, padding=padding, gain=up * up, impl="ref")
    y = jnp.clip(jnp.where(y >= 0, y, 0.2 * y) * np.sqrt(2), -clamp, clamp)
    y = upfirdn2d(y, np.outer(fd, fd), down=down, impl="ref")
    np.testing.assert_allclose(filtered_lrelu(x, fu, fd, b, up, down, padding, clamp=clamp, impl="ref"), y,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_gradients_agree():
    fu, fd, up, down, padding, _ = CASES["sg3_up2"]
    x = jax.random.normal(jax.random.key(2), (1, 10, 10, 2))
    loss = lambda x, impl: jnp.sum(jnp.sin(filtered_lrelu(x, fu, fd, None, up, down, padding, impl=impl)))
    g_fast, g_ref = (jax.grad(loss)(x, impl) for impl in ("fast", "ref"))
    assert relative_error(g_fast, g_ref) < 1e-6


def test_bfloat16_stays_close():
    fu, fd, up, down, padding, clamp = CASES["sg3r_radial"]
    x = jax.random.normal(jax.random.key(3), (1, 12, 12, 4))
    y32 = filtered_lrelu(x, fu, fd, None, up, down, padding)
    y16 = filtered_lrelu(x.astype(jnp.bfloat16), fu, fd, None, up, down, padding)
    assert y16.dtype == jnp.bfloat16 and relative_error(y16.astype(jnp.float32), y32) < 2e-2


def test_bad_arguments():
    x = jnp.zeros((1, 8, 8, 2))
    with pytest.raises(ValueError, match="NHWC"):
        filtered_lrelu(x[0])
    with pytest.raises(ValueError, match="fu"):
        filtered_lrelu(x, fu=np.ones((2, 3)))
    with pytest.raises(ValueError, match="bias"):
        filtered_lrelu(x, b=jnp.zeros(3))
    with pytest.raises(ValueError, match="impl"):
        filtered_lrelu(x, impl="cuda")


@pytest.mark.parametrize("stem", ["sg3t_s32", "sg3r_s32"])
def test_designed_filters_equal_the_snapshots(stem):
    """Our schedule and filter design (no scipy) give NVIDIA's stored filters, separable and radial."""
    network = load(SG3 / f"{stem}.pkl")["G_ema"]
    G = stylegan3_convert.from_nvidia(network.state_dict(), network.init_kwargs, where=stem)
    for i, (fu, fd) in enumerate(designed_filters(G.config)):
        for ours, stored in zip((fu, fd), G.config.filters(i)):
            assert (ours is None) == (stored is None)
            if stored is not None:
                assert ours.shape == stored.shape
                np.testing.assert_allclose(ours, stored, rtol=0, atol=1e-7 * np.abs(stored).max())
    fresh = StyleGAN3Config(**{k: v for k, v in G.config.to_dict().items() if k not in ("up_filters", "down_filters")})
    assert fresh.layers == G.config.layers


def test_schedule_matches_the_reference_table():
    """T-1024 (REFERENCES-2 section 7): names, up/down factors, taps and paddings."""
    cfg = StyleGAN3Config(z_dim=512, w_dim=512, img_resolution=1024)
    names = [s.name for s in cfg.layers]
    assert names == ["L0_36_512", "L1_36_512", "L2_52_512", "L3_52_512", "L4_84_512", "L5_148_512", "L6_148_512",
                     "L7_276_323", "L8_276_203", "L9_532_128", "L10_1044_81", "L11_1044_51", "L12_1044_32",
                     "L13_1024_32", "L14_1024_3"]
    by_name = {s.name: s for s in cfg.layers}
    assert (by_name["L0_36_512"].up, by_name["L0_36_512"].padding[:2]) == (2, (9, 8))
    assert (by_name["L2_52_512"].up, by_name["L2_52_512"].up_taps, by_name["L2_52_512"].padding[:2]) == (4, 24, (-6, -9))
    assert by_name["L13_1024_32"].padding[:2] == (-11, -12)
    assert (by_name["L14_1024_3"].up, by_name["L14_1024_3"].down, by_name["L14_1024_3"].padding) == (1, 1, (0,) * 4)
    r = StyleGAN3Config(z_dim=512, w_dim=512, img_resolution=1024, channel_base=65536, channel_max=1024,
                        conv_kernel=1, use_radial_filters=True)
    assert [s.out_channels for s in r.layers][6:] == [1024, 645, 406, 256, 161, 102, 64, 64, 3]
    assert r.layers[0].padding[:2] == (11, 10) and r.layers[2].padding[:2] == (-2, -5)
    assert r.layers[13].padding[:2] == (-9, -10)
    assert r.layers[0].down_radial and not r.layers[12].down_radial
