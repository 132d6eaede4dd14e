"""`load_generator` / `save_generator`: the one place that knows every checkpoint format and family.

`load_generator` recognises a checkpoint by content and reads it without torch and without
executing anything from the file: `builtin:NAME`, a latentjax directory, a pytorch-pretrained-BigGAN
directory, NVIDIA network snapshots and state dicts (StyleGAN2, StyleGAN3-T/R), rosinality `.pt`
files and pytorch_GAN_zoo ProgressiveGAN checkpoints. Where a file holds both, the EMA generator is
read by default and the other with `ema=False`.
Details: docs/networks.md#latentjaxload
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from latentjax import builtin
from latentjax.errors import CheckpointError, ConversionError
from latentjax.io.native import is_native_dir, network_from_directory, read_directory_config, write_directory
from latentjax.io.torch_pickle import PersistentObject, load as load_pickle
from latentjax.models import FAMILIES, biggan_convert, pggan_convert, stylegan2_convert, stylegan3_convert

FORMAT = "latentjax.generator"


def load_generator(path, *, ema: bool = True):
    """Load a generator from any supported file or directory; see the module docstring.

    `ema=False` selects the training copy (`G` / `g` / `netG`) where a checkpoint holds both.
    """
    if isinstance(path, str) and path.startswith(builtin.SCHEME):
        return load_builtin(path[len(builtin.SCHEME):])
    if isinstance(path, str) and "://" in path:
        raise CheckpointError(f"{path}: URLs are not fetched; download the file and pass its path")
    path = Path(path)
    if path.is_dir():
        if is_native_dir(path):
            return load_native(path)
        if is_biggan_dir(path):
            return load_biggan_dir(path)
        raise CheckpointError(f"{path}: a directory must hold a latentjax generator (config.json + params/) "
                              f"or a pytorch-pretrained-BigGAN model (config.json + pytorch_model.bin)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or directory")
    return from_checkpoint(load_pickle(path, extra_records=pggan_convert.GAN_ZOO_RECORDS), path, ema=ema)


def save_generator(generator, out_dir) -> Path:
    """Write `generator` to `out_dir` as a latentjax directory (created; an existing params/ is replaced)."""
    meta = {"family": generator.family, "config": generator.config.to_dict(), "metadata": generator.metadata}
    return write_directory(out_dir, FORMAT, meta, generator.params)


def load_native(path):
    """Read a directory written by `save_generator`."""
    meta, config_file = read_directory_config(path, FORMAT, "generator")
    family = meta.get("family")
    if family not in FAMILIES:
        raise CheckpointError(f"{config_file}: unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    generator_cls, config_cls = FAMILIES[family]
    return network_from_directory(path, meta, config_file, generator_cls, config_cls, family)


def is_biggan_dir(path) -> bool:
    """A pytorch-pretrained-BigGAN directory: `config.json` next to `pytorch_model.bin`."""
    path = Path(path)
    return path.is_dir() and (path / biggan_convert.CONFIG_NAME).is_file() and (path / biggan_convert.WEIGHTS_NAME).is_file()


def load_biggan_dir(path):
    """A pytorch-pretrained-BigGAN directory (`config.json` + `pytorch_model.bin`) as a BigGAN."""
    path = Path(path)
    config_file, weights_file = path / biggan_convert.CONFIG_NAME, path / biggan_convert.WEIGHTS_NAME
    for file in (config_file, weights_file):
        if not file.is_file():
            raise CheckpointError(f"{file}: missing; a BigGAN directory holds {biggan_convert.CONFIG_NAME} and "
                                  f"{biggan_convert.WEIGHTS_NAME}")
    try:
        spec = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConversionError(f"{config_file}: not a valid BigGAN config ({e})") from e
    config = biggan_convert.config_from_dict(spec, str(config_file))
    return biggan_convert.from_state_dict(load_pickle(weights_file), config, where=str(weights_file),
                                          config_file=str(config_file))


def load_pggan(path, ema: bool = True):
    """A pytorch_GAN_zoo ProgressiveGAN checkpoint file as a PGGAN (`avgG`, or `netG` with ema=False)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    return pggan_convert.from_gan_zoo(load_pickle(path, extra_records=pggan_convert.GAN_ZOO_RECORDS), str(path),
                                      ema=ema)


def load_builtin(name: str):
    """The built-in generator `name` (see `latentjax.builtin`)."""
    try:
        directory = builtin.path(name)
    except ValueError as e:
        raise CheckpointError(f"{builtin.SCHEME}{name}: {e}") from None
    if not is_native_dir(directory):
        raise CheckpointError(f"{builtin.SCHEME}{name}: its weights are missing ({directory} must hold config.json "
                              f"and params/); reinstall latentjax with its package data, or load a generator "
                              f"directory by path")
    return load_native(directory)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, np.ndarray) for v in obj.values())


def _snapshot_class(class_name: str, init_kwargs: Mapping[str, Any], state_keys=()) -> str:
    """Snapshots store the bare class name ('Generator'); its module lives in source we never run.

    A StyleGAN3 generator has `synthesis.input.*` in its state. Of the StyleGAN2 ones,
    stylegan2-ada-pytorch's Generator takes `synthesis_kwargs`; the StyleGAN3 repository's
    StyleGAN2 Generator cannot (it takes those arguments flat), which tells the two apart.
    """
    if "." in class_name:
        return class_name
    if class_name != "Generator":
        raise CheckpointError(f"network class {class_name!r} is not a supported generator")
    if stylegan3_convert.STATE_MARKER in state_keys:
        return stylegan3_convert.GENERATOR_CLASS
    return "training.networks.Generator" if "synthesis_kwargs" in init_kwargs else "training.networks_stylegan2.Generator"


def _from_nvidia(state_dict, init_kwargs, class_name: str, where: str, kwargs_where: str | None = None):
    """An NVIDIA generator (StyleGAN2 or StyleGAN3, by its class name) from its state dict and kwargs
    (read from `kwargs_where`, default `where`)."""
    if class_name == stylegan3_convert.GENERATOR_CLASS:
        return stylegan3_convert.from_nvidia(state_dict, init_kwargs, class_name, where=where)
    return stylegan2_convert.from_nvidia(state_dict, init_kwargs, class_name, where=where, kwargs_where=kwargs_where)


def from_checkpoint(obj: Any, path: Path, *, ema: bool = True):
    """Build a generator from an unpickled checkpoint object; `path` names it in errors."""
    where = str(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("G_ema"), PersistentObject):
        key = "G_ema" if ema else "G"
        network = obj.get(key)
        if not isinstance(network, PersistentObject):
            raise CheckpointError(f"{where}: key {key!r} is not a network object")
        kwargs, state = network.init_kwargs, network.state_dict()
        return _from_nvidia(state, kwargs, _snapshot_class(network.class_name, kwargs, state), where=f"{where} [{key}]")
    if pggan_convert.is_gan_zoo_checkpoint(obj):
        return pggan_convert.from_gan_zoo(obj, where, ema=ema)
    if isinstance(obj, Mapping) and "g_ema" in obj:
        key = "g_ema" if ema else "g"
        if not _is_state_dict(obj.get(key)):
            raise CheckpointError(f"{where}: key {key!r} is not a state dict of tensors")
        latent_avg = obj.get("latent_avg")
        return stylegan2_convert.from_rosinality(obj[key], latent_avg, where=f"{where} [{key}]")
    if _is_state_dict(obj) and "style.1.weight" in obj:
        return stylegan2_convert.from_rosinality(obj, None, where=where)
    if _is_state_dict(obj) and "mapping.fc0.weight" in obj:
        kwargs_file = path.with_suffix(".json")
        if not kwargs_file.is_file():
            raise CheckpointError(f"{where}: an NVIDIA state dict needs its constructor kwargs in {kwargs_file} "
                                  f"(a JSON object with 'init_kwargs')")
        try:
            spec = json.loads(kwargs_file.read_text())
            init_kwargs = spec["init_kwargs"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{kwargs_file}: expected a JSON object with 'init_kwargs' ({e!r})") from e
        if not isinstance(init_kwargs, dict) or not isinstance(spec.get("class_name", ""), str):
            raise CheckpointError(f"{kwargs_file}: 'init_kwargs' must be a JSON object and 'class_name' a string, "
                                  f"got a JSON {type(init_kwargs).__name__} and {spec.get('class_name')!r:.40}")
        default_class = (stylegan3_convert.GENERATOR_CLASS if stylegan3_convert.is_stylegan3_state(obj)
                         else "training.networks.Generator")
        return _from_nvidia(obj, init_kwargs, spec.get("class_name", default_class), where=where,
                            kwargs_where=str(kwargs_file))
    keys = sorted(map(str, obj))[:12] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(f"{where}: not a recognised generator checkpoint (top level: {keys}); expected an "
                          f"NVIDIA snapshot, an NVIDIA state dict + .json, a rosinality checkpoint, a ProgressiveGAN checkpoint or a latentjax directory")
