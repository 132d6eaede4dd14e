"""Key map from pytorch-pretrained-BigGAN directories to `BigGAN` params.

A directory holds `config.json` and `pytorch_model.bin` (legacy or zip serialisation), read without
torch by `latentjax.io.torch_pickle.load`. The config decides the layout; every tensor of that
layout must be present with the shape the config implies, and every key of the file must be used
(the reference's `load_state_dict(strict=False)` would ignore both). Spectral norm is resolved from
the stored vectors as the reference does in eval mode, with no power iteration.
Details: docs/networks.md#latentjaxmodelsbiggan_convert
"""

from __future__ import annotations

import re
from typing import Mapping

import jax
import numpy as np

from latentjax.errors import ConversionError
from latentjax.models.biggan import GEN_Z_MULTIPLIER, IMG_CHANNELS, BigGAN, BigGANConfig
from latentjax.io.state_dict import Source

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
SN_SUFFIXES = ("weight_orig", "weight_u", "weight_v")
_ATTENTION = ("theta", "phi", "g", "o_conv")


def source_name(config: BigGANConfig, names: tuple[str, ...]) -> str:
    """The reference's name of our param `names` (a leaf path such as ('block3', 'conv_1', 'weight'))."""
    head, rest = names[0], list(names[1:])
    if head.startswith("block"):
        i = int(head[len("block"):])
        shift = int(config.has_attention and i >= config.attention_layer_position)
        return ".".join([f"generator.layers.{i + shift}", *rest])
    if head == "attention":
        if rest[0] in _ATTENTION:
            rest[0] = f"snconv1x1_{rest[0]}"
        return ".".join([f"generator.layers.{config.attention_layer_position}", *rest])
    return ".".join([head if head == "embeddings" else f"generator.{head}", *rest])


def _is_spectral(names: tuple[str, ...], ndim: int) -> bool:
    """Every weight matrix / kernel is spectrally normalised except the class embedding."""
    return ndim >= 2 and names[-1] in ("weight", *_ATTENTION) and names[0] != "embeddings"


def key_map(config: BigGANConfig) -> dict[str, tuple[str, ...]]:
    """Our param path ('block0/conv_1/weight') -> the source keys it is made from, for `config`'s layout."""
    table = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(BigGAN(config, None).abstract_params()):
        names = tuple(p.key for p in path)
        name = source_name(config, names)
        if _is_spectral(names, len(leaf.shape)):
            name = name[: -len(".weight")] if names[-1] == "weight" else name
            table["/".join(names)] = tuple(f"{name}.{s}" for s in SN_SUFFIXES)
        else:
            table["/".join(names)] = (name,)
    return table


def _source_shape(config: BigGANConfig, names: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The reference's shape of a tensor whose converted shape is `shape`."""
    if names[0] == "conv_to_rgb":  # the reference computes channel_width outputs and keeps 3
        shape = (*shape[:-1], config.channel_width)
    if len(shape) == 4 and names[-1] not in ("running_means", "running_vars"):
        return (shape[3], shape[2], shape[0], shape[1])  # HWIO -> OIHW
    if len(shape) == 2 and names[-1] not in ("running_means", "running_vars"):
        return (shape[1], shape[0])  # (in, out) -> (out, in)
    return (1,) if names[-1] == "gamma" else shape


def _spectral_normalized(src: Source, name: str, shape: tuple[int, ...], config_file: str) -> np.ndarray:
    """weight_orig / sigma with sigma = u . (W_mat v), from the stored u and v (eval mode)."""
    orig, u, v = (src.get(f"{name}.{s}") for s in SN_SUFFIXES)
    out, fan_in = shape[0], int(np.prod(shape[1:]))
    for key, value, expected in ((f"{name}.weight_orig", orig, shape), (f"{name}.weight_u", u, (out,)),
                                 (f"{name}.weight_v", v, (fan_in,))):
        if value.shape != expected:
            raise ConversionError(f"{src.where}: key {key!r} has shape {value.shape}, but {config_file} "
                                  f"implies {expected}")
    w = orig.astype(np.float64)
    sigma = float(u.astype(np.float64) @ (w.reshape(out, fan_in) @ v.astype(np.float64)))
    if not np.isfinite(sigma) or sigma == 0:
        raise ConversionError(f"{src.where}: spectral norm of {name!r} from weight_u / weight_v is {sigma}; "
                              f"expected a finite non-zero value")
    return w / sigma


def _check_layout(src: Source, config: BigGANConfig, config_file: str):
    """Cross-check the config's global numbers against the weights, for errors that name the field."""
    arrays, where = src.arrays, src.where

    def shape(key):
        if key not in arrays:
            raise ConversionError(f"{where}: missing key {key!r}")
        return tuple(np.shape(arrays[key]))

    emb = shape("embeddings.weight")
    if emb != (config.z_dim, config.num_classes):
        raise ConversionError(f"{where}: key 'embeddings.weight' has shape {emb}, but {config_file} has "
                              f"z_dim={config.z_dim}, num_classes={config.num_classes} (expected "
                              f"{(config.z_dim, config.num_classes)})")
    gen_z = shape("generator.gen_z.weight_orig")
    expected = (4 * 4 * GEN_Z_MULTIPLIER * config.channel_width, config.cond_dim)
    if gen_z != expected:
        raise ConversionError(f"{where}: key 'generator.gen_z.weight_orig' has shape {gen_z}, but {config_file} has "
                              f"channel_width={config.channel_width}, z_dim={config.z_dim} (expected {expected})")
    indices = {int(m[1]) for key in arrays if (m := re.match(r"generator\.layers\.(\d+)\.", key))}
    modules = len(config.layers) + int(config.has_attention)
    if indices != set(range(modules)):
        raise ConversionError(f"{where}: the weights have generator.layers indices {sorted(indices)}, but "
                              f"{config_file} describes {len(config.layers)} GenBlocks"
                              f"{' + 1 attention layer' if config.has_attention else ''} (0 .. {modules - 1})")
    attention = sorted({int(m[1]) for key in arrays if (m := re.match(r"generator\.layers\.(\d+)\.snconv1x1_", key))})
    expected_attention = [config.attention_layer_position] if config.has_attention else []
    if attention != expected_attention:
        raise ConversionError(f"{where}: the weights have attention layers at generator.layers {attention}, but "
                              f"{config_file} has attention_layer_position={config.attention_layer_position} "
                              f"(expected {expected_attention})")
    stats = shape("generator.bn.running_means")
    if stats[0] != config.n_stats:
        raise ConversionError(f"{where}: key 'generator.bn.running_means' has {stats[0]} rows, but {config_file} has "
                              f"n_stats={config.n_stats}")


def from_state_dict(state_dict: Mapping[str, np.ndarray], config: BigGANConfig, where: str = "checkpoint",
                    config_file: str = "the config") -> BigGAN:
    """Build a `BigGAN` from a reference state dict and its config; `where`/`config_file` name them in errors."""
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, np.ndarray) for v in state_dict.values()):
        found = type(state_dict).__name__ if not isinstance(state_dict, Mapping) else "a mapping with non-tensor values"
        raise ConversionError(f"{where}: expected a state dict of tensors, found {found}")
    src = Source(state_dict, where)
    _check_layout(src, config, config_file)

    def fill(path, leaf):
        names = tuple(p.key for p in path)
        name = source_name(config, names)
        shape = _source_shape(config, names, leaf.shape)
        if _is_spectral(names, len(leaf.shape)):
            value = _spectral_normalized(src, name[: -len(".weight")] if names[-1] == "weight" else name,
                                         shape, config_file)
        else:
            value = src.get(name)
            if value.shape != shape:
                raise ConversionError(f"{where}: key {name!r} has shape {value.shape}, but {config_file} "
                                      f"implies {shape}")
        if names[0] == "conv_to_rgb":
            value = value[:IMG_CHANNELS]
        if value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif value.ndim == 2 and names[-1] not in ("running_means", "running_vars"):
            value = value.T  # (out, in) -> (in, out)
        return np.array(value.reshape(leaf.shape), dtype=np.float32, order="C")

    params = jax.tree_util.tree_map_with_path(fill, BigGAN(config, None).abstract_params())
    left = sorted(set(src.arrays) - src.used)
    if left:
        raise ConversionError(f"{where}: unexpected keys {left[:10]}{' ...' if len(left) > 10 else ''} "
                              f"({len(left)} in all) that the layout of {config_file} does not use")
    return BigGAN(config, params, {"source_format": "pytorch-pretrained-biggan"})


def config_from_dict(d, config_file: str) -> BigGANConfig:
    """The BigGANConfig of a pytorch-pretrained-BigGAN `config.json` (its parsed contents `d`)."""
    try:
        return BigGANConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{config_file}: not a valid BigGAN config ({e})") from e
