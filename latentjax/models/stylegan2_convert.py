"""Key maps from the StyleGAN2 checkpoints people have to `StyleGAN2` params.

Two source layouts:
- NVIDIA stylegan2-ada-pytorch (and the StyleGAN3 repository's `networks_stylegan2`):
  a `G_ema` state dict plus the constructor's `init_kwargs`. Our parameter paths are the
  NVIDIA module paths, so the map is a rule: 'a.b.weight' -> params['a']['b']['weight'],
  transposed to our layouts.
- rosinality stylegan2-pytorch: a `g_ema` state dict (+ optional `latent_avg`), first renamed
  to the NVIDIA names (table in `rosinality_to_nvidia`).

Widths and depths are read from weight shapes; constructor arguments are cross-checked
against them, never trusted over them. Every key must be used: unknown or missing keys are
errors that name the key and the file.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import numpy as np

from latentjax.config import coerce
from latentjax.errors import ConversionError
from latentjax.io.state_dict import Source, check, fill_params, unique_filter
from latentjax.models.stylegan2 import StyleGAN2, StyleGAN2Config

NVIDIA_CLASSES = {
    # class name -> constructor defaults that differ between the two NVIDIA code bases
    "training.networks.Generator": {"conv_clamp": None},
    "training.networks_stylegan2.Generator": {"conv_clamp": 256},
}
_GENERATOR_KWARGS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
_MAPPING_KWARGS = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta"}
_SYNTHESIS_KWARGS = {"channel_base", "channel_max", "num_fp16_res", "architecture", "resample_filter", "conv_clamp",
                     "use_fp16", "fp16_channels_last", "fused_modconv_default", "kernel_size", "use_noise",
                     "activation", "channels_last"}
# The types of the constructor arguments this converter reads (others are checked against the weights).
_KWARG_TYPES = {"z_dim": int, "c_dim": int, "w_dim": int, "img_resolution": int, "img_channels": int,
                "num_layers": int, "embed_features": int | None, "layer_features": int | None, "activation": str,
                "lr_multiplier": float, "w_avg_beta": float | None, "channel_base": int, "channel_max": int,
                "num_fp16_res": int, "architecture": str, "resample_filter": tuple[float, ...],
                "conv_clamp": float | None, "use_fp16": bool, "kernel_size": int, "use_noise": bool}
W_AVG_SAMPLES = 10_000  # z samples used to estimate w_avg when a checkpoint has none


def _with_w_avg(generator: StyleGAN2, has_w_avg: bool) -> StyleGAN2:
    """Estimate w_avg as the mean of mapped z samples when the checkpoint has none."""
    if has_w_avg:
        generator.metadata["w_avg"] = "checkpoint"
        return generator
    cfg = generator.config
    z = jax.random.normal(jax.random.key(0), (W_AVG_SAMPLES, cfg.z_dim))
    c = None
    if cfg.c_dim:  # classes drawn uniformly, as one-hot labels
        c = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (W_AVG_SAMPLES,), 0, cfg.c_dim), cfg.c_dim)
    w = generator.mapping(generator.params, z, c)[:, 0]
    generator.params["mapping"]["w_avg"] = np.asarray(w.mean(axis=0))
    generator.metadata["w_avg"] = f"estimated from {W_AVG_SAMPLES} mapped samples"
    return generator


def from_nvidia(state_dict: Mapping[str, np.ndarray], init_kwargs: Mapping[str, Any],
                class_name: str = "training.networks.Generator", where: str = "checkpoint",
                kwargs_where: str | None = None) -> StyleGAN2:
    """Build a `StyleGAN2` from an NVIDIA `Generator` state dict and its `init_kwargs` (read from
    `kwargs_where`, default `where`: the file that errors in them name)."""
    check(class_name in NVIDIA_CLASSES, where,
           f"class {class_name!r} is not a supported StyleGAN2 generator; expected one of {sorted(NVIDIA_CLASSES)}")
    src = Source(state_dict, where)
    kw_where = kwargs_where or where
    check(isinstance(init_kwargs, Mapping), kw_where,
          f"init_kwargs must be an object of constructor arguments, got {type(init_kwargs).__name__}")
    kwargs = dict(init_kwargs)
    for name in ("mapping_kwargs", "synthesis_kwargs"):
        check(kwargs.get(name) is None or isinstance(kwargs[name], Mapping), kw_where,
              f"init_kwargs.{name} must be an object of arguments, got {type(kwargs.get(name)).__name__}")
    mapping_kw = dict(kwargs.get("mapping_kwargs") or {})
    synthesis_kw = dict(kwargs.get("synthesis_kwargs") or {})
    # The StyleGAN3 repository passes synthesis arguments at the top level.
    top_level = {k: v for k, v in kwargs.items() if k not in _GENERATOR_KWARGS}
    unknown_top = sorted(set(top_level) - _SYNTHESIS_KWARGS)
    check(not unknown_top, kw_where, f"init_kwargs has unsupported arguments {unknown_top}; known: "
                                     f"{sorted(_GENERATOR_KWARGS | _SYNTHESIS_KWARGS)}")
    synthesis_kw.update(top_level)
    for name, given, known in (("init_kwargs.mapping_kwargs", mapping_kw, _MAPPING_KWARGS),
                               ("init_kwargs.synthesis_kwargs", synthesis_kw, _SYNTHESIS_KWARGS)):
        unknown = sorted(set(given) - known)
        check(not unknown, kw_where, f"{name} has unsupported arguments {unknown}; known: {sorted(known)}")
    try:
        for prefix, given in (("init_kwargs", kwargs), ("init_kwargs.mapping_kwargs", mapping_kw),
                              ("init_kwargs.synthesis_kwargs", synthesis_kw)):
            for name, value in list(given.items()):
                if name in _KWARG_TYPES:
                    given[name] = coerce(value, _KWARG_TYPES[name], f"{prefix}.{name}")
    except ValueError as e:
        raise ConversionError(f"{kw_where}: {e}") from None

    fc = sorted(int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    check(bool(fc) and fc == list(range(len(fc))), where, "expected mapping.fc0.weight, mapping.fc1.weight, ...")
    fc0 = src.arrays["mapping.fc0.weight"]
    w_dim = int(src.arrays[f"mapping.fc{fc[-1]}.weight"].shape[0])
    embed = src.arrays.get("mapping.embed.weight")
    c_dim = 0 if embed is None else int(embed.shape[1])
    embed_features = 0 if embed is None else int(embed.shape[0])
    z_dim = int(fc0.shape[1]) - embed_features
    resolutions = sorted(int(m.group(1)) for k in state_dict
                         if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
    check("synthesis.input.affine.weight" not in src, where,
           "this is an alias-free StyleGAN3 generator (synthesis.input.*), which is not supported yet")
    check(bool(resolutions), where, "no synthesis.b{res}.conv1.weight keys: not a StyleGAN2 generator state dict")
    channels = tuple(int(src.arrays[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions)
    last_torgb = f"synthesis.b{resolutions[-1]}.torgb.weight"
    check(last_torgb in src, where, f"missing key {last_torgb!r}")

    derived = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolutions[-1],
                   img_channels=int(src.arrays[last_torgb].shape[0]))
    for name, value in derived.items():
        if name in kwargs:
            check(int(kwargs[name]) == value, where,
                   f"init_kwargs {name}={kwargs[name]} does not match the weights, which imply {value}")
    if "num_layers" in mapping_kw:
        check(int(mapping_kw["num_layers"]) == len(fc), where,
               f"mapping_kwargs num_layers={mapping_kw['num_layers']} but the weights have {len(fc)} layers")
    if "channel_base" in synthesis_kw or "channel_max" in synthesis_kw:
        base, cmax = int(synthesis_kw.get("channel_base", 32768)), int(synthesis_kw.get("channel_max", 512))
        expected = tuple(min(base // r, cmax) for r in resolutions)
        check(expected == channels, where, f"channel_base={base}, channel_max={cmax} imply widths {expected}, "
                                            f"but the weights have {channels}")

    architecture = synthesis_kw.get("architecture", "skip")
    has_skip = any(k.endswith(".skip.weight") for k in state_dict)
    check(has_skip == (architecture == "resnet"), where,
           f"architecture {architecture!r} does not match the weights (skip-branch weights present: {has_skip})")
    filter_keys = sorted(k for k in state_dict if k.endswith("resample_filter"))
    resample_filter = unique_filter(src, filter_keys)
    conv_clamp = synthesis_kw.get("conv_clamp", NVIDIA_CLASSES[class_name]["conv_clamp"])
    try:
        config = StyleGAN2Config(
            z_dim=z_dim, w_dim=w_dim, c_dim=c_dim, embed_features=embed_features,
            img_resolution=derived["img_resolution"], img_channels=derived["img_channels"], channels=channels,
            mapping_layers=len(fc), mapping_features=int(fc0.shape[0]) if len(fc) > 1 else 0,
            mapping_lr_multiplier=float(mapping_kw.get("lr_multiplier", 0.01)),
            mapping_activation=str(mapping_kw.get("activation", "lrelu")),
            activation=str(synthesis_kw.get("activation", "lrelu")), architecture=architecture,
            kernel_size=int(src.arrays[f"synthesis.b{resolutions[0]}.conv1.weight"].shape[-1]),
            use_noise=f"synthesis.b{resolutions[0]}.conv1.noise_strength" in src,
            conv_clamp=None if conv_clamp is None else float(conv_clamp),
            **({} if resample_filter is None else {"resample_filter": tuple(map(tuple, resample_filter.tolist()))}))
    except ValueError as e:
        raise ConversionError(f"{kw_where}: the constructor arguments give an invalid config ({e})") from None
    params = fill_params(src, StyleGAN2(config, None).abstract_params(), {"const": (1, 2, 0)})  # CHW const -> HWC
    src.check_all_used()
    generator = StyleGAN2(config, params, {"source_format": "nvidia", "class_name": class_name})
    return _with_w_avg(generator, "mapping.w_avg" in src)


def rosinality_to_nvidia(state_dict: Mapping[str, np.ndarray], where: str = "checkpoint") -> dict[str, np.ndarray]:
    """Rename (and reshape) a rosinality `Generator` state dict to NVIDIA's key names.

    rosinality folds 1/sqrt(fan_in) into modulated conv weights before demodulation, while
    NVIDIA does not: the factor is multiplied in here so that the demodulation epsilon acts
    on the same numbers. toRGB has no demodulation; its factor lives in our styles.
    """
    src = Source(state_dict, where)
    mlp = sorted(int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    check(bool(mlp) and mlp == list(range(1, len(mlp) + 1)), where, "expected style.1.weight, style.2.weight, ...")
    out: dict[str, np.ndarray] = {}
    for i in mlp:
        out[f"mapping.fc{i - 1}.weight"] = src.get(f"style.{i}.weight", ndim=2)
        out[f"mapping.fc{i - 1}.bias"] = src.get(f"style.{i}.bias", ndim=1)
    out["synthesis.b4.const"] = src.get("input.input", ndim=4)[0]

    def conv(src_name: str, dst: str, noise_index: int):
        weight = src.get(f"{src_name}.conv.weight", ndim=5)[0]  # (1, O, I, k, k) -> OIkk
        fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
        out[f"{dst}.weight"] = weight * np.float32(1 / np.sqrt(fan_in))
        out[f"{dst}.affine.weight"] = src.get(f"{src_name}.conv.modulation.weight", ndim=2)
        out[f"{dst}.affine.bias"] = src.get(f"{src_name}.conv.modulation.bias", ndim=1)
        out[f"{dst}.noise_strength"] = src.get(f"{src_name}.noise.weight", ndim=1).reshape(())
        out[f"{dst}.noise_const"] = src.get(f"noises.noise_{noise_index}", ndim=4)[0, 0]
        out[f"{dst}.bias"] = src.get(f"{src_name}.activate.bias", ndim=1)
        if f"{src_name}.conv.blur.kernel" in src:
            out[f"{dst}.resample_filter"] = src.get(f"{src_name}.conv.blur.kernel", ndim=2)

    def torgb(src_name: str, dst: str):
        out[f"{dst}.weight"] = src.get(f"{src_name}.conv.weight", ndim=5)[0]
        out[f"{dst}.affine.weight"] = src.get(f"{src_name}.conv.modulation.weight", ndim=2)
        out[f"{dst}.affine.bias"] = src.get(f"{src_name}.conv.modulation.bias", ndim=1)
        out[f"{dst}.bias"] = src.get(f"{src_name}.bias", ndim=4).reshape(-1)
        if f"{src_name}.upsample.kernel" in src:
            out[f"{dst}.resample_filter"] = src.get(f"{src_name}.upsample.kernel", ndim=2)

    conv("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    num_upper = sum(1 for k in state_dict if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
    for k in range(num_upper):
        res = 8 * 2 ** k
        conv(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1)
        conv(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2)
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
    src.check_all_used()
    return out


def from_rosinality(state_dict: Mapping[str, np.ndarray], latent_avg: np.ndarray | None = None,
                    where: str = "checkpoint") -> StyleGAN2:
    """Build a `StyleGAN2` from a rosinality `g_ema` state dict (mapping lr multiplier 0.01)."""
    nvidia = rosinality_to_nvidia(state_dict, where)
    if latent_avg is not None:
        nvidia["mapping.w_avg"] = np.asarray(latent_avg).reshape(-1)
    generator = from_nvidia(nvidia, {"synthesis_kwargs": {"conv_clamp": None}}, where=where)
    generator.metadata.update(source_format="rosinality", class_name="model.Generator")
    return generator
