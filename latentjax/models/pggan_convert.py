"""Key map from pytorch_GAN_zoo ProgressiveGAN checkpoints to `PGGAN` params, and the loader.

A checkpoint is what `BaseGAN.save()` writes: `{'config', 'netG', 'avgG', 'netD'}`; its pickled
config is read as a data record (`GAN_ZOO_RECORDS`), never imported. `avgG` is read by default,
`netG` with `ema=False`; `netD` is ignored. Sizes are read from weight shapes and the stored config
must agree with them; the config supplies what the weights cannot tell. Every key must be used:
unknown or missing keys are errors that name the key and the file.
Details: docs/networks.md#latentjaxmodelspggan_convert
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from latentjax.errors import ConversionError
from latentjax.io.torch_pickle import Record
from latentjax.models.pggan import PGGAN, PGGANConfig

GAN_ZOO_RECORDS = ("models.utils.config.BaseConfig",)  # extra_records for torch_pickle.load
# lossCriterion -> the generator's output activation (the loss classes' `generationActivation`)
LOSS_ACTIVATIONS = {"WGANGP": "linear", "Logistic": "linear", "MSE": "tanh", "DCGAN": "tanh"}


def is_gan_zoo_checkpoint(obj: Any) -> bool:
    """True for the top-level object of a pytorch_GAN_zoo checkpoint (`config` + `netG`)."""
    return isinstance(obj, Mapping) and "config" in obj and "netG" in obj


def gan_zoo_key_map(config: PGGANConfig) -> dict[str, tuple[str, ...]]:
    """Checkpoint key -> params path, for every tensor of a `GNet` with this config."""
    layers = {"formatLayer": ("b4", "fc"), "groupScale0.0": ("b4", "conv")}
    for s, res in enumerate(config.block_resolutions[1:]):
        layers.update({f"scaleLayers.{s}.{j}": (f"b{res}", f"conv{j}") for j in (0, 1)})
    layers.update({f"toRGBLayers.{i}": (f"b{res}", "torgb") for i, res in enumerate(config.block_resolutions)})
    return {f"{layer}.module.{leaf}": (*path, leaf) for layer, path in layers.items() for leaf in ("weight", "bias")}


def _check(condition: bool, where: str, message: str):
    if not condition:
        raise ConversionError(f"{where}: {message}")


def _with_module_keys(state_dict: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
    """Keys in the `<layer>.module.<leaf>` layout; old `<layer>.<leaf>` keys are renamed."""
    out = {}
    for key, value in state_dict.items():
        _check(isinstance(key, str) and isinstance(value, np.ndarray), where,
               f"entry {key!r} is a {type(value).__name__}, expected a tensor")
        layer, _, leaf = key.rpartition(".")
        name = key if layer.endswith(".module") or leaf not in ("weight", "bias") else f"{layer}.module.{leaf}"
        _check(name not in out, where, f"key {key!r} appears in both the old and the '.module.' layout")
        out[name] = value
    return out


def _config_fields(config: Any, where: str) -> dict[str, Any]:
    if isinstance(config, Record):
        return vars(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise ConversionError(f"{where}: 'config' is a {type(config).__name__}, expected the pickled BaseConfig")


def _weight(state: dict[str, np.ndarray], key: str, ndim: int, where: str) -> np.ndarray:
    _check(key in state, where, f"missing key {key!r}")
    value = state[key]
    _check(value.ndim == ndim, where, f"key {key!r} has shape {value.shape}, expected {ndim} dimensions")
    return value


def _config_from(state: dict[str, np.ndarray], fields: dict[str, Any], where: str) -> PGGANConfig:
    """The architecture from weight shapes, cross-checked against the stored config."""
    def field(name, kind):
        _check(name in fields, where, f"config has no field {name!r}")
        try:
            return kind(fields[name])
        except (TypeError, ValueError):
            raise ConversionError(f"{where}: config {name}={fields[name]!r:.80} cannot be read as "
                                  f"{kind.__name__}") from None

    def agree(name, value, implied, source):
        _check(value == implied, where, f"config {name}={value!r} does not match the weights, which imply "
                                        f"{implied!r} ({source})")

    scales = {int(m[1]) for key in state if (m := re.match(r"scaleLayers\.(\d+)\.", key))}
    channels = [int(_weight(state, "groupScale0.0.module.weight", 4, where).shape[0])]
    channels += [int(_weight(state, f"scaleLayers.{s}.0.module.weight", 4, where).shape[0])
                 for s in range(max(scales, default=-1) + 1)]
    latent_dim = int(_weight(state, "formatLayer.module.weight", 2, where).shape[1])
    img_channels = int(_weight(state, "toRGBLayers.0.module.weight", 4, where).shape[0])
    agree("depthScale0", field("depthScale0", int), channels[0], "'groupScale0.0.module.weight'")
    agree("depthOtherScales", field("depthOtherScales", list), channels[1:],
          "the 'scaleLayers.<s>.0.module.weight' keys")
    agree("latentVectorDim", field("latentVectorDim", int), latent_dim, "'formatLayer.module.weight'")
    agree("dimOutput", field("dimOutput", int), img_channels, "'toRGBLayers.0.module.weight'")
    z_dim, c_dim = field("noiseVectorDim", int), field("categoryVectorDim", int)
    _check(z_dim + c_dim == latent_dim, where,
           f"config noiseVectorDim={z_dim} + categoryVectorDim={c_dim} does not match the weights: "
           f"'formatLayer.module.weight' takes {latent_dim} inputs")
    loss = field("lossCriterion", str)
    _check(loss in LOSS_ACTIVATIONS, where,
           f"config lossCriterion={loss!r} is unknown; expected one of {sorted(LOSS_ACTIVATIONS)}")
    # The reference applies alpha only once scales have been added (ProgressiveGAN.getNetG).
    alpha = field("alpha", float) if len(channels) > 1 else 0.0
    try:
        return PGGANConfig(z_dim=z_dim, c_dim=c_dim, channels=tuple(channels), img_channels=img_channels,
                           leaky_relu_slope=field("leakyReluLeak", float),
                           pixel_norm=field("perChannelNormalization", bool),
                           equalized_lr=field("equalizedlR", bool), alpha=alpha,
                           output_activation=LOSS_ACTIVATIONS[loss])
    except ValueError as e:
        raise ConversionError(f"{where}: the stored config is invalid ({e})") from e


# our layout's axes in torch's order: HWIO -> OIHW, (in, out) -> (out, in), biases unchanged
_TO_TORCH = {4: (3, 2, 0, 1), 2: (1, 0), 1: (0,)}


def _to_params(state: dict[str, np.ndarray], config: PGGANConfig, where: str):
    """Fill the params tree of `config` through the key map, transposing to our layouts."""
    abstract = PGGAN(config, None).abstract_params()
    key_map = gan_zoo_key_map(config)
    unexpected = sorted(set(state) - set(key_map))
    _check(not unexpected, where, f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''} "
                                  f"({len(unexpected)} in all) that this ProgressiveGAN layout does not use")
    params: dict = {}
    for key, path in key_map.items():
        _check(key in state, where, f"missing key {key!r}")
        value = state[key]
        expected = abstract
        for name in path:
            expected = expected[name]
        torch_shape = tuple(expected.shape[i] for i in _TO_TORCH[len(expected.shape)])
        _check(value.shape == torch_shape, where, f"key {key!r} has shape {value.shape}, but the config implies "
                                                  f"{torch_shape}")
        value = value.transpose(np.argsort(_TO_TORCH[value.ndim]))  # OIHW -> HWIO, (out, in) -> (in, out)
        node = params
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = np.array(value, dtype=np.float32, order="C")
    return params


def _categories(fields: dict[str, Any], c_dim: int) -> list | None:
    """The category vector's layout, [[attribute, [values]], ...] in input order, from attribKeysOrder."""
    keys = fields.get("attribKeysOrder")
    try:
        ordered = sorted(keys.items(), key=lambda item: int(item[1]["order"]))
        layout = [[str(name), [str(v) for v in spec["values"]]] for name, spec in ordered]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return layout if sum(len(values) for _, values in layout) == c_dim else None


def from_gan_zoo(obj: Any, where: str = "checkpoint", ema: bool = True) -> PGGAN:
    """Build a `PGGAN` from an unpickled pytorch_GAN_zoo checkpoint (`avgG`, or `netG` with ema=False)."""
    _check(is_gan_zoo_checkpoint(obj), where, "expected a pytorch_GAN_zoo checkpoint: a dict with 'config', 'netG' "
                                              "and 'avgG'")
    network = "avgG" if ema else "netG"
    _check(network in obj, where, f"missing key {network!r}" + ("; pass ema=False to read 'netG'" if ema else ""))
    state_dict = obj[network]
    _check(isinstance(state_dict, Mapping), where, f"key {network!r} is a {type(state_dict).__name__}, "
                                                   f"expected a state dict")
    where = f"{where} [{network}]"
    state = _with_module_keys(state_dict, where)
    _check("groupScale0.0.module.weight" in state, where,
           "no 'groupScale0.0.module.weight': not a ProgressiveGAN generator (pytorch_GAN_zoo's DCGAN and "
           "StyleGAN checkpoints are not supported)")
    fields = _config_fields(obj["config"], where)
    config = _config_from(state, fields, where)
    metadata = {"source_format": "pytorch_GAN_zoo", "network": network, "loss_criterion": fields["lossCriterion"]}
    categories = _categories(fields, config.c_dim) if config.c_dim else None
    if categories:
        metadata["categories"] = categories
    return PGGAN(config, _to_params(state, config, where), metadata)
