"""Numerical building blocks shared by the generators; each has a plain reference path."""

from latentjax.ops.bias_act import ACTIVATIONS, bias_act
from latentjax.ops.conv2d_resample import conv2d, conv2d_resample
from latentjax.ops.filtered_lrelu import filtered_lrelu
from latentjax.ops.modulated_conv import demodulation_coefficients, modulated_conv2d
from latentjax.ops.upfirdn2d import setup_filter, upfirdn2d, upsample2d

__all__ = ["ACTIVATIONS", "bias_act", "conv2d", "conv2d_resample", "demodulation_coefficients", "filtered_lrelu",
           "modulated_conv2d", "setup_filter", "upfirdn2d", "upsample2d"]
