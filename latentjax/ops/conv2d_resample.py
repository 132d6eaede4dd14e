"""2-D convolution with optional FIR upsampling, NHWC activations and HWIO weights.

Semantics follow the reference's `conv2d_resample`: padding is given with respect to the
upsampled image, `flip_weight=True` means correlation (what `conv2d` computes) and `False`
true convolution. `impl='fast'` fuses zero insertion into the convolution (a transposed
convolution) and filters afterwards; `impl='ref'` upsamples with the FIR first and then
convolves, the plain order. The two agree because both steps are linear and commute.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.ops.upfirdn2d import parse_padding, upfirdn2d

_DIMS = ("NHWC", "HWIO", "NHWC")
MATMUL_MAX_POSITIONS = 16  # output positions up to which `conv_general_dilated` runs as patches @ weights


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count: int = 1, batch_group_count: int = 1,
                         precision=None, preferred_element_type=None):
    """`jax.lax.conv_general_dilated`, except that an NHWC / HWIO convolution with at most
    MATMUL_MAX_POSITIONS output positions per image runs as one matmul of its patches: XLA's CPU
    convolution is 10-20x slower than that on maps of 2x2 or 1x1 positions with hundreds of channels
    (a ResNet's last stages on 32 px images). Flax's `nn.Conv(conv_general_dilated=...)` takes it."""
    plain = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                 feature_group_count=feature_group_count, batch_group_count=batch_group_count, precision=precision,
                 preferred_element_type=preferred_element_type)
    nhwc = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DIMS)
    given = (jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
             if dimension_numbers is not None else None)
    undilated = all(d == 1 for d in (*(lhs_dilation or (1, 1)), *(rhs_dilation or (1, 1))))
    if given != nhwc or not undilated or feature_group_count != 1 or batch_group_count != 1 or lhs.ndim != 4:
        return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, **plain)
    kh, kw = rhs.shape[:2]
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
    (py0, py1), (px0, px1) = padding
    sy, sx = window_strides
    ho, wo = (lhs.shape[1] + py0 + py1 - kh) // sy + 1, (lhs.shape[2] + px0 + px1 - kw) // sx + 1
    if ho * wo > MATMUL_MAX_POSITIONS or min(py0, py1, px0, px1) < 0:
        return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, **plain)
    x = jnp.pad(lhs, ((0, 0), (py0, py1), (px0, px1), (0, 0)))
    patches = jnp.concatenate([x[:, i:i + sy * (ho - 1) + 1:sy, j:j + sx * (wo - 1) + 1:sx, :]
                               for i in range(kh) for j in range(kw)], axis=-1)
    return jnp.matmul(patches, rhs.reshape(-1, rhs.shape[-1]).astype(lhs.dtype), precision=precision,
                      preferred_element_type=preferred_element_type)


def conv2d(x, w, padding=(0, 0), flip_weight: bool = True, feature_group_count: int = 1,
           lhs_dilation=(1, 1)):
    """Plain convolution; `padding` is ((y0, y1), (x0, x1)) or (py, px)."""
    if not flip_weight:
        w = w[::-1, ::-1]
    if isinstance(padding[0], int):
        padding = ((padding[0], padding[0]), (padding[1], padding[1]))
    return jax.lax.conv_general_dilated(
        x, w.astype(x.dtype), window_strides=(1, 1), padding=padding, lhs_dilation=lhs_dilation,
        dimension_numbers=_DIMS, feature_group_count=feature_group_count)


def conv2d_resample(x, w, f=None, up: int = 1, padding=0, flip_weight: bool = True,
                    impl: str = "fast"):
    """Convolve x [N, H, W, I] with w [kh, kw, I, O], upsampling by `up` with filter `f`."""
    kh, kw = w.shape[:2]
    px0, px1, py0, py1 = parse_padding(padding)
    if up == 1:
        if px0 != px1 or py0 != py1:
            raise ValueError(f"asymmetric padding {padding!r} needs up > 1")
        return conv2d(x, w, padding=(py0, px0), flip_weight=flip_weight)
    if f is None:
        raise ValueError("upsampling needs a resample filter f")
    fh, fw = np.shape(f)
    # Padding that centres the FIR on the upsampled grid (as the reference computes it).
    px0 += (fw + up - 1) // 2
    px1 += (fw - up) // 2
    py0 += (fh + up - 1) // 2
    py1 += (fh - up) // 2
    if impl == "ref":
        x = upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up * up, impl="ref")
        return conv2d(x, w, flip_weight=flip_weight)
    if impl != "fast":
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    # Transposed convolution: zero insertion (lhs dilation) and a full-size convolution.
    x = conv2d(x, w, padding=((kh - 1, kh - 1), (kw - 1, kw - 1)), flip_weight=flip_weight,
               lhs_dilation=(up, up))
    # The transposed convolution covered kw-1 (before) and kw-up (after) of the padding.
    return upfirdn2d(x, f, padding=(px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)),
                     gain=up * up)
