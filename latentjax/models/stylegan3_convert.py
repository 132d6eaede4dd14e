"""Key map from NVIDIA StyleGAN3 generators (`training.networks_stylegan3.Generator`) to `StyleGAN3` params.

The source is a `G_ema` state dict plus the constructor's `init_kwargs` (flat synthesis
arguments, nested `mapping_kwargs`). Our parameter paths are the NVIDIA module paths, so the
map is a rule: 'a.b.weight' -> params['a']['b']['weight'], transposed to our layouts. The
layer schedule is derived from `init_kwargs` and its layer names must be the state dict's;
the FIR filters are read from the state (absent = one tap) into the config. Widths are read
from the weights and cross-checked against the kwargs; every key must be used, and each
error names the key and the file.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import numpy as np

from latentjax.errors import ConversionError
from latentjax.io.state_dict import Source, check, fill_params
from latentjax.models.stylegan2_convert import _with_w_avg
from latentjax.models.stylegan3 import StyleGAN3, StyleGAN3Config, filters_to_config

GENERATOR_CLASS = "training.networks_stylegan3.Generator"
STATE_MARKER = "synthesis.input.affine.weight"  # a key only StyleGAN3 generators have
_GENERATOR_KWARGS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"}
_MAPPING_KWARGS = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
                   "w_avg_beta": None}  # None: training only
_SYNTHESIS_KWARGS = {
    "channel_base": "channel_base", "channel_max": "channel_max", "num_layers": "num_layers",
    "num_critical": "num_critical", "first_cutoff": "first_cutoff", "first_stopband": "first_stopband",
    "last_stopband_rel": "last_stopband_rel", "margin_size": "margin_size", "output_scale": "output_scale",
    "conv_kernel": "conv_kernel", "filter_size": "filter_size", "lrelu_upsampling": "lrelu_upsampling",
    "use_radial_filters": "use_radial_filters", "conv_clamp": "conv_clamp",
    "num_fp16_res": None, "magnitude_ema_beta": None,  # precision and training only: we run float32
}


def is_stylegan3_state(state_dict: Mapping[str, Any]) -> bool:
    return STATE_MARKER in state_dict


def _config_kwargs(kwargs: Mapping[str, Any], where: str) -> dict:
    """Our config fields from `init_kwargs` (unknown arguments are errors, training-only ones dropped)."""
    mapping_kw = dict(kwargs.get("mapping_kwargs") or {})
    synthesis_kw = {k: v for k, v in kwargs.items() if k not in _GENERATOR_KWARGS}
    out = {}
    for name, given, known in (("init_kwargs.mapping_kwargs", mapping_kw, _MAPPING_KWARGS),
                               ("init_kwargs", synthesis_kw, _SYNTHESIS_KWARGS)):
        unknown = sorted(set(given) - set(known))
        check(not unknown, where, f"{name} has unsupported arguments {unknown}; known: {sorted(known)}")
        out.update({known[k]: v for k, v in given.items() if known[k] is not None})
    types = {f.name: f.type for f in dataclasses.fields(StyleGAN3Config)}
    for name, value in out.items():
        if name == "conv_clamp":
            out[name] = None if value is None else float(value)
        elif name == "use_radial_filters":
            out[name] = bool(value)
        elif types[name] in ("int", int):
            check(float(value) == int(value), where, f"init_kwargs {name}={value!r} must be an integer")
            out[name] = int(value)
        else:
            out[name] = float(value)
    return out


def from_nvidia(state_dict: Mapping[str, np.ndarray], init_kwargs: Mapping[str, Any],
                class_name: str = GENERATOR_CLASS, where: str = "checkpoint") -> StyleGAN3:
    """Build a `StyleGAN3` from an NVIDIA StyleGAN3 `Generator` state dict and its `init_kwargs`."""
    check(class_name == GENERATOR_CLASS, where,
          f"class {class_name!r} is not a StyleGAN3 generator; expected {GENERATOR_CLASS!r}")
    src = Source(state_dict, where)
    check(is_stylegan3_state(state_dict), where, f"missing key {STATE_MARKER!r}: not a StyleGAN3 generator state dict")
    kwargs = dict(init_kwargs)
    fields = _config_kwargs(kwargs, where)

    fc = sorted(int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    check(bool(fc) and fc == list(range(len(fc))), where, "expected mapping.fc0.weight, mapping.fc1.weight, ...")
    w_dim = int(src.arrays[f"mapping.fc{fc[-1]}.weight"].shape[0])
    embed = src.arrays.get("mapping.embed.weight")
    c_dim = 0 if embed is None else int(embed.shape[1])
    z_dim = int(src.arrays["mapping.fc0.weight"].shape[1]) - (w_dim if c_dim else 0)
    derived = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim)
    for name, value in derived.items():
        if name in kwargs:
            check(int(kwargs[name]) == value, where,
                  f"init_kwargs {name}={kwargs[name]} does not match the weights, which imply {value}")
    check("mapping_layers" not in fields or fields["mapping_layers"] == len(fc), where,
          f"mapping_kwargs num_layers={fields.get('mapping_layers')} but the weights have {len(fc)} layers")
    fields["mapping_layers"] = len(fc)
    for name in ("img_resolution", "img_channels"):
        check(name in kwargs, where, f"init_kwargs has no {name!r}")
        fields[name] = int(kwargs[name])
    try:
        config = StyleGAN3Config(**derived, **fields)
        layers = config.layers
    except ValueError as e:
        raise ConversionError(f"{where}: init_kwargs do not describe a StyleGAN3 generator ({e})") from e

    # The schedule's layer names must be the state dict's.
    found = sorted({m.group(1) for k in state_dict if (m := re.fullmatch(r"synthesis\.(L\d+_\d+_\d+)\..*", k))},
                   key=lambda name: int(name[1:].split("_")[0]))
    expected = [spec.name for spec in layers]
    check(found == expected, where, f"init_kwargs imply the layers {expected}, but the state dict has {found}")

    up_filters, down_filters = [], []
    for spec in layers:
        for kind, taps, radial, out in (("up", spec.up_taps, False, up_filters),
                                        ("down", spec.down_taps, spec.down_radial, down_filters)):
            key = f"synthesis.{spec.name}.{kind}_filter"
            if taps == 1:
                check(key not in src, where, f"key {key!r}: layer {spec.name} has one {kind} tap (no filter)")
                out.append(None)
                continue
            shape = (taps, taps) if radial else (taps,)
            check(key in src, where, f"missing key {key!r}")
            value = src.get(key)
            check(value.shape == shape, where, f"key {key!r} has shape {value.shape}, expected {shape}")
            out.append(value)
    config = dataclasses.replace(config, up_filters=filters_to_config(up_filters),
                                 down_filters=filters_to_config(down_filters))
    params = fill_params(src, StyleGAN3(config, None).abstract_params())
    src.check_all_used()
    generator = StyleGAN3(config, params, {"source_format": "nvidia", "class_name": class_name})
    return _with_w_avg(generator, "mapping.w_avg" in src)

