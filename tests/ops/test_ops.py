"""Each op's fast path agrees with its plain reference path, and ops agree under jit/vmap/grad."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.ops import bias_act, conv2d_resample, modulated_conv2d, setup_filter, upfirdn2d, upsample2d
from latentjax.ops.bias_act import ACTIVATIONS
from latentjax.ops.conv2d_resample import conv_general_dilated

FIR = setup_filter([1, 3, 3, 1])
ASYM_FIR = np.arange(1, 13, dtype=np.float32).reshape(3, 4) / 78  # not symmetric: catches flips


def _rand(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("up,down,padding,flip,f", [
    (1, 1, 0, False, FIR), (2, 1, (2, 1, 2, 1), False, FIR), (1, 2, (1, 1, 1, 1), False, FIR),
    (2, 2, (1, 2, 0, 3), True, ASYM_FIR), (3, 1, (-1, 2, 1, -2), False, ASYM_FIR), (1, 1, (-1, -1, 0, 0), True, FIR)])
def test_upfirdn2d_fast_matches_ref(up, down, padding, flip, f):
    x = _rand((2, 7, 6, 3))
    fast = upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up * up, flip_filter=flip)
    ref = upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up * up, flip_filter=flip, impl="ref")
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-6)


def test_upfirdn2d_convolves_unless_flip_filter():
    """A single impulse reproduces the filter flipped (convolution) or as is (correlation)."""
    x = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
    out = upfirdn2d(x, ASYM_FIR, padding=(1, 2, 1, 1))[0, ..., 0]
    np.testing.assert_allclose(out[1:4, 0:4], ASYM_FIR, rtol=1e-6)
    out = upfirdn2d(x, ASYM_FIR, padding=(2, 1, 1, 1), flip_filter=True)[0, ..., 0]
    np.testing.assert_allclose(out[1:4, 1:5], ASYM_FIR[::-1, ::-1], rtol=1e-6)


def test_upsample2d_preserves_constants_and_doubles_size():
    x = jnp.full((1, 4, 4, 2), 3.0)
    y = upsample2d(x, FIR)
    assert y.shape == (1, 8, 8, 2)
    np.testing.assert_allclose(y[:, 2:-2, 2:-2], 3.0, rtol=1e-6)  # interior: gain up^2 keeps the level


@pytest.mark.parametrize("up,k,flip", list(itertools.product([1, 2], [1, 3], [True, False])))
def test_conv2d_resample_fast_matches_ref(up, k, flip):
    x, w = _rand((2, 5, 5, 4)), _rand((k, k, 4, 3), 1)
    pad = k // 2
    fast = conv2d_resample(x, w, f=FIR, up=up, padding=pad, flip_weight=flip)
    ref = conv2d_resample(x, w, f=FIR, up=up, padding=pad, flip_weight=flip, impl="ref")
    assert fast.shape == (2, 5 * up, 5 * up, 3)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size, kernel, stride, padding", [
    (1, 3, 1, ((1, 1), (1, 1))), (2, 3, 1, "SAME"), (4, 3, 2, ((1, 1), (1, 1))), (5, 5, 1, "VALID"),
    (3, 1, 1, ((0, 0), (0, 0))), (16, 3, 1, "SAME")])  # the last has 272 positions: lax's own convolution
def test_conv_general_dilated_matches_lax_with_its_gradients(size, kernel, stride, padding):
    """The patches-matmul path for small outputs computes lax's convolution, values and gradients."""
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (3, size, size + 1, 7))
    w = jax.random.normal(kw, (kernel, kernel, 7, 5))
    args = ((stride, stride), padding)
    dims = dict(dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ours = lambda x, w: conv_general_dilated(x, w, *args, **dims)
    lax = lambda x, w: jax.lax.conv_general_dilated(x, w, *args, **dims)
    assert ("conv_general_dilated" in str(jax.make_jaxpr(ours)(x, w))) == (size == 16)  # which path ran
    np.testing.assert_allclose(jax.jit(ours)(x, w), lax(x, w), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(x, w) for f in (ours, lax)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("up,demodulate", [(1, True), (2, True), (1, False)])
def test_modulated_conv_fast_matches_ref(up, demodulate):
    x, w = _rand((3, 4, 4, 5)), _rand((3, 3, 5, 6), 1)
    styles, noise = 1 + _rand((3, 5), 2), _rand((3, 4 * up, 4 * up, 1), 3)
    kwargs = dict(noise=noise, up=up, padding=1, resample_filter=FIR, demodulate=demodulate, flip_weight=up == 1)
    fast = modulated_conv2d(x, w, styles, **kwargs)
    ref = modulated_conv2d(x, w, styles, impl="ref", **kwargs)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-5)


def test_modulated_conv_demodulation_normalises_output_scale():
    """With demodulation, unit-variance inputs give unit-variance outputs whatever the styles."""
    x, w = _rand((2, 32, 32, 64)), _rand((3, 3, 64, 8), 1)
    y = modulated_conv2d(x, w, 10.0 * jnp.abs(_rand((2, 64), 2)) + 0.1, padding=1)
    assert 0.5 < float(jnp.std(y[:, 2:-2, 2:-2])) < 1.5


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_matches_numpy(act):
    x, b = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 12), np.float32([0.5] * 12)
    numpy_funcs = {"linear": lambda v: v, "relu": lambda v: np.maximum(v, 0),
                   "lrelu": lambda v: np.where(v >= 0, v, 0.2 * v), "tanh": np.tanh,
                   "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "elu": lambda v: np.where(v > 0, v, np.expm1(v)),
                   "selu": lambda v: 1.0507009873554805 * np.where(v > 0, v, 1.6732632423543772 * np.expm1(v)),
                   "softplus": lambda v: np.log1p(np.exp(v)), "swish": lambda v: v / (1 + np.exp(-v))}
    expected = np.clip(numpy_funcs[act](x + b) * ACTIVATIONS[act].default_gain, -1.2, 1.2)
    np.testing.assert_allclose(bias_act(x, b, act=act, clamp=1.2), expected, rtol=1e-5, atol=1e-6)


def test_bias_act_rejects_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bias_act(jnp.ones(3), act="gelu")


def test_ops_under_jit_vmap_grad():
    x, w, styles = _rand((2, 4, 4, 3)), _rand((3, 3, 3, 2), 1), 1 + _rand((2, 3), 2)
    f = lambda x, s: modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=FIR, flip_weight=False)
    eager = f(x, styles)
    np.testing.assert_allclose(jax.jit(f)(x, styles), eager, rtol=1e-5, atol=1e-6)
    per_sample = jax.vmap(lambda xi, si: f(xi[None], si[None])[0])(x, styles)
    np.testing.assert_allclose(per_sample, eager, rtol=1e-5, atol=1e-6)
    loss = lambda s, impl: jnp.sum(modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=FIR, impl=impl) ** 2)
    np.testing.assert_allclose(jax.grad(loss)(styles, "fast"), jax.grad(loss)(styles, "ref"), rtol=1e-4, atol=1e-5)
