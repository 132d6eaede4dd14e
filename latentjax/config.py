"""Configs: `to_dict` / `from_dict` for the frozen-dataclass configs (models, methods, inversion,
metrics); `configure`, the one way from a config block to such a dataclass; and `parse_arg` and
`space_config` for the `get_config(arg)` of `configs/*.py`.

Tuples and arrays become JSON lists and come back as tuples (nested ones too), so a config
survives `json.dumps` / `json.loads` unchanged. Unknown keys are an error that names the config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import ml_collections
import numpy as np
from ml_collections import config_dict


def _to_json(value):
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_to_json(v) for v in value]
    return value


def _from_json(value):
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value


class ConfigMixin:
    """Mixed into a frozen dataclass; `config_name` (default: the class name) names it in errors."""

    config_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown {cls.config_name or cls.__name__} keys {sorted(unknown)}; "
                             f"expected a subset of {sorted(fields)}")
        return cls(**{k: _from_json(v) for k, v in d.items()})


def configure(cls, config=None, overrides: Mapping[str, Any] | None = None):
    """An instance of the config dataclass `cls` from `config`: None (the defaults), an instance, a
    mapping or an ml_collections `ConfigDict` (a config file's block), with `overrides` applied."""
    if config is None:
        config = cls()
    elif isinstance(config, ml_collections.ConfigDict):
        config = cls.from_dict(config.to_dict())
    elif isinstance(config, Mapping):
        config = cls.from_dict(config)
    elif not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, a dict or a ConfigDict, got {type(config).__name__}")
    return dataclasses.replace(config, **(overrides or {}))


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """'smoke,res=64' -> {smoke: True, res: 64, ...defaults}: the variant of `configs/x.py:arg`.

    Values take the type of their default, and a bare word sets a boolean to True. A default given
    as a tuple of words is a choice (default: its first word), picked by `name=word` or by the bare
    word alone: `parse_arg("biggan,smoke", model=("shapes", "biggan"))` -> model 'biggan', smoke.
    Every config has `smoke` (shrunk to seconds on CPU, for the tests). Unknown names are an error.
    """
    defaults.setdefault("smoke", False)
    choices = {name: tuple(words) for name, words in defaults.items() if isinstance(words, tuple)}
    out = ml_collections.ConfigDict({name: choices[name][0] if name in choices else value
                                     for name, value in defaults.items()})
    known = sorted(set(defaults) | {word for words in choices.values() for word in words})
    picked = {}
    for item in filter(None, (arg or "").split(",")):
        name, eq, value = (part.strip() for part in item.partition("="))
        if not eq and name not in defaults:  # a bare word: the word of a choice
            owner = next((c for c, words in choices.items() if name in words), None)
            name, value = (owner, name) if owner else (name, value)
        if name not in defaults:
            raise ValueError(f"unknown config argument {name!r} in {arg!r} (unknown variant); expected some of {known}")
        if name in choices:
            if value not in choices[name]:
                raise ValueError(f"config argument {name}={value!r}: expected one of {list(choices[name])}")
            if picked.get(name, value) != value:
                raise ValueError(f"pick one {name} of {list(choices[name])}, got {picked[name]!r} and {value!r}")
            picked[name] = out[name] = value
            continue
        kind = type(defaults[name])
        if not eq:
            if kind is not bool:
                raise ValueError(f"config argument {name!r} needs a value ({name}=...)")
            out[name] = True
        elif kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"config argument {name}={value!r}: expected true or false")
            out[name] = value.lower() in ("true", "1")
        else:
            out[name] = kind(value)
    return out


def space_config(name: str = "", class_index: int | None = None) -> ml_collections.ConfigDict:
    """The `space` block of a config (`latentjax.latent.space_from_spec`): `name` ('' = the family's
    editing space) and the options, unset (None) unless given, each overridable from the command line."""
    return ml_collections.ConfigDict({
        "name": name,
        "class_index": config_dict.placeholder(int) if class_index is None else class_index,  # conditional
        "truncation_psi": config_dict.placeholder(float),
        "fit_samples": config_dict.placeholder(int),  # StyleGAN2 w / w+: samples for the w Gaussian
    })
