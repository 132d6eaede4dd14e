"""The StyleGAN2 discriminator matches stylegan2-ada-pytorch (outputs, intermediate blocks, R1 gradient)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import FIXTURES, PARITY_RTOL, nchw, relative_error
from latentjax.io.torch_pickle import load
from latentjax.nn import discriminator as sd

# The reference groups samples {0,2,4,6} and {1,3,5,7} for the minibatch stddev; we group 0-3 and 4-7.
PERM = np.array([0, 2, 4, 6, 1, 3, 5, 7])


@pytest.fixture(scope="module")
def reference():
    snapshot = load(FIXTURES / "stylegan2" / "ada_s32_snapshot.pkl")
    config, params = sd.from_nvidia(snapshot["D"].state_dict(), snapshot["D"].init_kwargs, where="snapshot[D]")
    outputs = np.load(FIXTURES / "stylegan2_discriminator" / "ada_s32_D_io.npz")
    return config, params, snapshot["D"].state_dict(), outputs


def test_matches_reference_outputs_blocks_and_r1_gradient(reference):
    config, params, _, ref = reference
    assert config.channels == (64, 64, 32, 16) and config.conv_clamp == 256
    def forward(x):
        logits, state = sd.Discriminator(config).apply({"params": params}, x, capture_intermediates=True)
        return logits.sum(), (logits, state["intermediates"])

    img = jnp.asarray(ref["img"].transpose(0, 2, 3, 1)[PERM])
    (_, (logits, blocks)), grad = jax.jit(jax.value_and_grad(forward, has_aux=True))(img)
    assert relative_error(logits, ref["logits"][PERM]) < PARITY_RTOL
    assert relative_error(nchw(blocks["b16"]["__call__"][0]), ref["feat_b16"][PERM]) < PARITY_RTOL
    assert relative_error(nchw(blocks["b8"]["__call__"][0]), ref["feat_b8"][PERM]) < PARITY_RTOL
    assert relative_error(nchw(grad), ref["r1_grad"][PERM]) < PARITY_RTOL


def test_minibatch_stddev_groups_are_consecutive_samples(reference):
    """Samples 0-3 form a group: their logits do not depend on samples 4-7, so a batch split over
    devices in groups of 4 gives the logits of the whole batch."""
    config, params, _, ref = reference
    D = jax.jit(lambda x: sd.Discriminator(config).apply({"params": params}, x))
    img = jnp.asarray(ref["img"].transpose(0, 2, 3, 1))
    whole = D(img)
    other_half = D(img.at[4:].set(-img[4:] * 2))
    np.testing.assert_allclose(whole[:4], other_half[:4], rtol=1e-6, atol=1e-7)
    assert not np.allclose(whole[4:], other_half[4:], atol=1e-3)
    assert not np.allclose(D(img[PERM])[:4], whole[PERM][:4], atol=1e-4)  # the grouping does matter


def test_minibatch_stddev_values():
    x = jax.random.normal(jax.random.key(0), (6, 2, 2, 4))
    y = jax.jit(sd.minibatch_stddev, static_argnums=(1, 2))(x, 3, 2)
    assert y.shape == (6, 2, 2, 6)
    groups = np.asarray(x).reshape(2, 3, 2, 2, 2, 2)
    expected = np.sqrt(groups.var(axis=1) + 1e-8).mean(axis=(1, 2, 4))  # [2 groups, 2 features]
    np.testing.assert_allclose(np.asarray(y)[:, 0, 0, 4:], np.repeat(expected, 3, axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="batch 5 must be divisible by the group size 3"):
        sd.minibatch_stddev(x[:5], group_size=3)


def test_config_round_trip_and_conversion_errors(reference):
    config, _, state_dict, _ = reference
    assert sd.DiscriminatorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(sd.ConversionError, match=r"unexpected keys \['b4.extra'\]"):
        sd.from_nvidia({**state_dict, "b4.extra": np.zeros(3, np.float32)}, {})
    with pytest.raises(sd.ConversionError, match="architecture 'skip' is not supported"):
        sd.from_nvidia(state_dict, {"architecture": "skip"})
    with pytest.raises(ValueError, match="channels must list one width"):
        sd.DiscriminatorConfig(img_resolution=32, img_channels=3, channels=(8, 8))
