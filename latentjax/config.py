"""Configs: `to_dict` / `from_dict` for the frozen-dataclass configs (models, methods, inversion,
metrics), and `parse_arg` for the `get_config(arg)` of `configs/*.py`.

Tuples and arrays become JSON lists and come back as tuples (nested ones too), so a config
survives `json.dumps` / `json.loads` unchanged. Unknown keys are an error that names the config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import ml_collections
import numpy as np


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

def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """'smoke,res=64' -> {smoke: True, res: 64, ...defaults}; values take the type of their default.

    A bare word sets a boolean default to True. Unknown names are an error that lists the known ones.
    """
    defaults.setdefault("smoke", False)
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        name, eq, value = item.partition("=")
        name = name.strip()
        if name not in defaults:
            raise ValueError(f"unknown config argument {name!r} in {arg!r}; expected some of {sorted(defaults)}")
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
