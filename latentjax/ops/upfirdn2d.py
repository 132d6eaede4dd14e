"""FIR resampling of NHWC images: upsample by zero insertion, pad (or crop), filter, downsample.

This is the resampling primitive of StyleGAN2 (`upfirdn2d` in the reference). Filters are 2-D
numpy arrays (constants of the architecture, not parameters). Negative padding crops.
`impl='fast'` filters separable kernels (all StyleGAN filters) in two 1-D passes and others with
a depthwise convolution; `impl='ref'` is a plain 2-D shift-and-add used in tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Padding = tuple[int, int, int, int]  # (x0, x1, y0, y1), as in the reference


def parse_padding(padding: int | tuple[int, ...]) -> Padding:
    """Expand an int, (x, y) or (x0, x1, y0, y1) padding to four ints."""
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        px, py = padding
        return (px, px, py, py)
    if len(padding) == 4:
        return tuple(int(p) for p in padding)
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1); got {padding!r}")


def _prepare_filter(f, gain: float, flip_filter: bool, dtype) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"filter must be 2-D (fh, fw); got shape {f.shape}")
    f = f * gain
    if not flip_filter:  # the reference convolves (flipped filter) unless asked to correlate
        f = f[::-1, ::-1]
    return np.ascontiguousarray(f).astype(dtype)


def upfirdn2d(x, f, up: int = 1, down: int = 1, padding=0, gain: float = 1.0,
              flip_filter: bool = False, impl: str = "fast"):
    """Resample `x` [N, H, W, C] with the 2-D FIR filter `f` [fh, fw].

    Output size per axis: (in * up + pad0 + pad1 - f_size) // down + 1.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NHWC input, got shape {x.shape}")
    px0, px1, py0, py1 = parse_padding(padding)
    kernel = _prepare_filter(f, gain, flip_filter, np.float32)
    if impl == "fast":
        return _upfirdn2d_fast(x, kernel, up, down, (px0, px1, py0, py1))
    if impl == "ref":
        return _upfirdn2d_ref(x, kernel, up, down, (px0, px1, py0, py1))
    raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")


def _upfirdn2d_fast(x, kernel, up, down, padding):
    px0, px1, py0, py1 = padding
    # Interior padding inserts up-1 zeros between samples; the reference also appends up-1
    # zeros after the last one, hence the extra high padding. lax.pad crops on negative pads.
    x = jax.lax.pad(x, jnp.zeros((), x.dtype), (
        (0, 0, 0), (py0, py1 + up - 1, up - 1), (px0, px1 + up - 1, up - 1), (0, 0, 0)))
    separable = _separate(kernel)
    if separable is not None:
        # Two 1-D passes of shifted adds: XLA fuses them into one memory-bound loop, which is
        # many times faster than a depthwise convolution on CPU.
        fv, fh = separable
        x = _shift_add(x, fv.astype(x.dtype), axis=1)
        x = _shift_add(x, fh.astype(x.dtype), axis=2)
        return x[:, ::down, ::down, :]
    channels = x.shape[-1]
    rhs = jnp.asarray(np.tile(kernel[:, :, None, None], (1, 1, 1, channels)), dtype=x.dtype)
    return jax.lax.conv_general_dilated(
        x, rhs, window_strides=(down, down), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def _separate(kernel: np.ndarray):
    """(vertical, horizontal) 1-D filters whose outer product is `kernel`, or None if it is not rank 1."""
    u, s, vt = np.linalg.svd(kernel.astype(np.float64))
    if s[0] == 0 or (len(s) > 1 and s[1] > 1e-7 * s[0]):
        return None
    return u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])


def _shift_add(x, taps: np.ndarray, axis: int):
    """Valid correlation of `x` with 1-D `taps` along `axis`."""
    n = x.shape[axis] - len(taps) + 1
    return sum(jax.lax.slice_in_dim(x, i, i + n, axis=axis) * t for i, t in enumerate(taps))


def _upfirdn2d_ref(x, kernel, up, down, padding):
    px0, px1, py0, py1 = padding
    n, h, w, c = x.shape
    # Zero insertion: each sample followed by up-1 zeros.
    x = jnp.zeros((n, h, up, w, up, c), x.dtype).at[:, :, 0, :, 0, :].set(x)
    x = x.reshape(n, h * up, w * up, c)
    x = jnp.pad(x, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
    x = x[:, max(-py0, 0): x.shape[1] - max(-py1, 0), max(-px0, 0): x.shape[2] - max(-px1, 0), :]
    fh, fw = kernel.shape
    out_h, out_w = x.shape[1] - fh + 1, x.shape[2] - fw + 1
    y = sum(x[:, i:i + out_h, j:j + out_w, :] * kernel[i, j] for i in range(fh) for j in range(fw))
    return y[:, ::down, ::down, :]


def upsample2d(x, f, up: int = 2, padding=0, impl: str = "fast"):
    """Upsample by `up` with filter `f`, keeping the FIR centred (output size in * up)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fh, fw = np.shape(f)
    pad = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=pad, gain=up * up, impl=impl)


def setup_filter(taps, normalize: bool = True) -> np.ndarray:
    """The 2-D filter the reference builds from 1-D taps: outer product, normalised to sum 1."""
    taps = np.asarray(taps, dtype=np.float64)
    f = np.outer(taps, taps) if taps.ndim == 1 else taps
    if normalize:
        f = f / f.sum()
    return f.astype(np.float32)
