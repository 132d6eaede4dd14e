"""2-D convolution with optional FIR upsampling, NHWC activations and HWIO weights.

Semantics follow the reference's `conv2d_resample`: padding is given with respect to the
upsampled image, `flip_weight=True` means correlation (what `conv2d` computes) and `False`
true convolution. `impl='fast'` fuses zero insertion into the convolution (a transposed
convolution) and filters afterwards; `impl='ref'` upsamples with the FIR first and then
convolves, the plain order. The two agree because both steps are linear and commute.
"""

from __future__ import annotations

import jax
import numpy as np

from latentjax.ops.upfirdn2d import parse_padding, upfirdn2d

_DIMS = ("NHWC", "HWIO", "NHWC")


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
