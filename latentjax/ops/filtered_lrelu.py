"""StyleGAN3's filtered leaky ReLU on NHWC images: bias, FIR upsample, leaky ReLU, clamp, FIR downsample.

Follows the reference's `filtered_lrelu` (`torch_utils/ops/filtered_lrelu.py`). Filters are numpy
constants: None, 1-D taps (separable) or 2-D. `impl='ref'` is the reference's recipe through the
plain `upfirdn2d(impl='ref')`; `impl='fast'` never multiplies an inserted zero nor computes a pixel
that decimation drops (polyphase upsampling, downsampling only at the kept pixels).
Details: docs/networks.md#latentjaxopsfiltered_lrelu
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.ops.bias_act import bias_act
from latentjax.ops.upfirdn2d import parse_padding, upfirdn2d

def filter_size(f) -> int:
    """Taps of a filter along each axis (1 for None)."""
    return 1 if f is None else int(np.shape(f)[0])


def _check_filter(f, name: str):
    if f is None:
        return None
    f = np.asarray(f, np.float32)
    if f.ndim not in (1, 2) or (f.ndim == 2 and f.shape[0] != f.shape[1]):
        raise ValueError(f"filtered_lrelu: {name} must be None, 1-D [taps] or square 2-D [taps, taps]; "
                         f"got shape {f.shape}")
    return f


def output_size(in_size: int, fu, fd, up: int, down: int, pad0: int, pad1: int) -> int:
    """Output size along one axis, as the reference computes it."""
    return (in_size * up + pad0 + pad1 - (filter_size(fu) - 1) - (filter_size(fd) - 1) + down - 1) // down


def filtered_lrelu(x, fu=None, fd=None, b=None, up: int = 1, down: int = 1, padding=0, gain: float = float(np.sqrt(2)),
                   slope: float = 0.2, clamp: float | None = None, flip_filter: bool = False, impl: str = "fast"):
    """x [N, H, W, C] -> [N, H', W', C] in x's dtype; see the module docstring."""
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects NHWC input, got shape {x.shape}")
    fu, fd = _check_filter(fu, "fu"), _check_filter(fd, "fd")
    padding = parse_padding(padding)
    if b is not None and b.shape != (x.shape[-1],):
        raise ValueError(f"filtered_lrelu: bias shape {b.shape} does not match {x.shape[-1]} channels")
    if impl == "ref":
        return _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    if impl != "fast":
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    return _filtered_lrelu_fast(x, b, _hashable(fu), _hashable(fd), up, down, tuple(padding), float(gain),
                                float(slope), None if clamp is None else float(clamp), bool(flip_filter))


def _hashable(f):
    """A filter as a static argument of `jax.jit`: None, or (shape, taps)."""
    return None if f is None else (f.shape, tuple(f.ravel().tolist()))


@functools.partial(jax.jit, static_argnums=tuple(range(2, 11)))
def _filtered_lrelu_fast(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    """The fast path, compiled once per layer configuration: eagerly it runs as one program instead
    of dozens of single-op ones (under an outer jit it is inlined)."""
    fu, fd = (None if f is None else np.reshape(np.asarray(f[1], np.float32), f[0]) for f in (fu, fd))
    x = bias_act(x, b)
    x = _resample(x, fu, up=up, down=1, padding=padding, gain=up * up, flip_filter=flip_filter)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return _resample(x, fd, up=1, down=down, padding=(0, 0, 0, 0), gain=1.0, flip_filter=flip_filter)


def _as_2d(f) -> np.ndarray:
    if f is None:
        return np.ones((1, 1), np.float32)
    return np.outer(f, f) if f.ndim == 1 else f


def _filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    x = bias_act(x, b)
    x = upfirdn2d(x, _as_2d(fu), up=up, padding=padding, gain=up * up, flip_filter=flip_filter, impl="ref")
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, _as_2d(fd), down=down, flip_filter=flip_filter, impl="ref")


def _resample(x, f, up: int, down: int, padding, gain: float, flip_filter: bool):
    """upfirdn2d with up == 1 or down == 1 as sums of shifted (and strided) slices, which XLA fuses into
    one loop: upsampling runs polyphase (each output phase is a correlation of the input with
    every up-th tap), downsampling evaluates only the kept pixels."""
    px0, px1, py0, py1 = padding
    if f is None:
        f = np.ones((1,), np.float32)
    if not flip_filter:  # the reference convolves; the sums below correlate
        f = f[::-1] if f.ndim == 1 else f[::-1, ::-1]
    if f.ndim == 1:
        taps = f.astype(np.float64) * np.sqrt(gain)  # gain ** (ndim / 2) per pass, as the reference
        x = _fir_axis(x, taps, 1, up, down, py0, py1)
        return _fir_axis(x, taps, 2, up, down, px0, px1)
    if up > 1:  # not used by StyleGAN3 (its 2-D filters only downsample)
        return upfirdn2d(x, f[::-1, ::-1], up=up, down=down, padding=padding, gain=gain)
    x = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (py0, py1, 0), (px0, px1, 0), (0, 0, 0)))
    kh, kw = f.shape
    out_h, out_w = (x.shape[1] - kh) // down + 1, (x.shape[2] - kw) // down + 1
    f = f.astype(np.float64) * gain
    return sum(_window(_window(x, i, out_h, down, 1), j, out_w, down, 2) * jnp.asarray(f[i, j], x.dtype)
               for i in range(kh) for j in range(kw))


def _window(x, start: int, n: int, stride: int, axis: int):
    """x[start : start + (n - 1) * stride + 1 : stride] along `axis`."""
    return jax.lax.slice_in_dim(x, start, start + (n - 1) * stride + 1, stride, axis=axis)


def _fir_axis(x, taps: np.ndarray, axis: int, up: int, down: int, pad0: int, pad1: int):
    """Zero insertion by `up`, padding (pad0, pad1; negative crops), valid correlation with `taps`
    and decimation by `down` along one axis, for up == 1 or down == 1."""
    length, k = x.shape[axis], len(taps)
    if up == 1:
        widths = [(0, 0, 0)] * x.ndim
        widths[axis] = (pad0, pad1, 0)
        x = jax.lax.pad(x, jnp.zeros((), x.dtype), widths)
        n = (x.shape[axis] - k) // down + 1
        return sum(_window(x, i, n, down, axis) * jnp.asarray(t, x.dtype) for i, t in enumerate(taps))
    if down != 1:
        raise ValueError("filtered_lrelu resamples up or down in one pass, not both")
    n = length * up + pad0 + pad1 - k + 1  # output length
    per_phase = -(-n // up)
    phases = []
    for phase in range(up):
        # Output pixel phase + up * q reads input pixel q + offset through tap i.
        terms = [(t, (phase + i - pad0) // up) for i, t in enumerate(taps) if (phase + i - pad0) % up == 0]
        if not terms:
            shape = list(x.shape)
            shape[axis] = per_phase
            phases.append(jnp.zeros(shape, x.dtype))
            continue
        lo = max(0, -min(o for _, o in terms))
        hi = max(0, per_phase - 1 + max(o for _, o in terms) - (length - 1))
        widths = [(0, 0, 0)] * x.ndim
        widths[axis] = (lo, hi, 0)
        xp = jax.lax.pad(x, jnp.zeros((), x.dtype), widths)
        phases.append(sum(jax.lax.slice_in_dim(xp, o + lo, o + lo + per_phase, axis=axis) * jnp.asarray(t, x.dtype)
                          for t, o in terms))
    y = jnp.stack(phases, axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = per_phase * up
    return jax.lax.slice_in_dim(y.reshape(shape), 0, n, axis=axis)
