"""Configs: `to_dict` / `from_dict` for the frozen-dataclass configs (models, methods, inversion,
metrics); `configure`, the one way from a config block to such a dataclass; and `parse_arg` and
`space_config` for the `get_config(arg)` of `configs/*.py`.

Tuples and arrays become JSON lists and come back as tuples (nested ones too), so a config
survives `json.dumps` / `json.loads` unchanged. Unknown keys are an error that names the config,
and `from_dict` checks every value against its field's annotation (`coerce`): an int field refuses
bools, strings and non-integral floats, a float field takes ints but not NaN, a tuple field needs a
list of the right elements, `X | None` allows None. Signs and ranges are each config's
`__post_init__` (helpers: `check_positive`, `check_number`, `check_filter`, `check_clamp`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
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


def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({_describe(args[0])})"
        return f"a list [{', '.join(_describe(a) for a in args)}]"
    if origin is typing.Literal:
        return f"one of {list(args)}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null", dict: "an object", list: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value, tp, where: str = "value"):
    """`value` checked against the type annotation `tp` (and converted: numpy scalars to Python,
    integral floats to int, lists to tuples); a ValueError naming `where` and what was expected.

    Annotations it does not know (Any, arrays, callables) accept anything.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def refuse():
        shown = repr(value)
        raise ValueError(f"{where} must be {_describe(tp)}, got {shown if len(shown) <= 80 else shown[:80] + '...'}")

    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            refuse()
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ValueError:
                pass
        refuse()
    if origin is typing.Literal:
        if value in args:
            return value
        refuse()
    if tp is type(None):
        if value is not None:
            refuse()
        return None
    if tp is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        refuse()
    if tp is int:
        if isinstance(value, (bool, np.bool_)):
            refuse()
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
            return int(value)
        refuse()
    if tp is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            refuse()
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"{where} must be {_describe(tp)} within the float range, got an integer of "
                             f"{int(value).bit_length()} bits") from None
        if math.isnan(value):
            raise ValueError(f"{where} must be a number, got NaN")
        return value
    if tp is str:
        if isinstance(value, str):
            return value
        refuse()
    if tp is dict or origin is dict:
        if isinstance(value, Mapping):
            return value
        refuse()
    if tp in (tuple, list) or origin in (tuple, list):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (tuple, list)):
            refuse()
        if not args:
            items = list(value)
        elif len(args) == 2 and args[1] is Ellipsis:
            items = [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        elif origin is list:
            items = [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            if len(value) != len(args):
                refuse()
            items = [coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        return tuple(items) if (tp is tuple or origin is tuple) else items
    return value


def coerce_fields(cls, d, name: str) -> dict:
    """The mapping `d` of a config dataclass `cls`'s fields, every value `coerce`d to its annotation:
    unknown and missing (required) keys, a `d` that is not a mapping and wrong types are ValueErrors
    that name the config (`name`) and the field."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{name} must be an object of fields, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields), key=str)
    if unknown:
        raise ValueError(f"unknown {name} keys {unknown}; expected a subset of {sorted(fields)}")
    missing = [k for k, f in fields.items() if k not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{name} is missing the required keys {missing}")
    hints = typing.get_type_hints(cls)
    return {k: coerce(_from_json(v), hints.get(k, Any), f"{name} field {k!r}") for k, v in d.items()}


def check_positive(config, *names: str, minimum: int | float = 1, what: str = "positive") -> None:
    """Every field in `names` (a number or a tuple of numbers) is >= `minimum` (and finite)."""
    for name in names:
        value = getattr(config, name)
        values = value if isinstance(value, tuple) else (value,)
        if any(not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v >= minimum)
               for v in values):
            raise ValueError(f"{name} must be {what}, got {value!r}")


def check_number(name: str, value, positive: bool = False, negative: bool = False) -> float:
    """`value` as a float: a ValueError unless it is a finite number (a bool is not) that is > 0
    (`positive`), >= 0 (default) or of any sign (`negative`). (A NaN learning rate makes every
    step NaN; a negative loss weight maximises its term.)"""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(value)
    if not ok or (positive and not value > 0) or (not positive and not negative and value < 0):
        expected = ("a finite number" if negative else "a finite number > 0" if positive else "a finite number >= 0")
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


MAX_RESOLUTION = 2 ** 14


def check_resolution(value, minimum: int, name: str = "img_resolution") -> int:
    """A power of two in [minimum, MAX_RESOLUTION]; returns its log2."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) \
            or not minimum <= value <= MAX_RESOLUTION or value & (value - 1):
        raise ValueError(f"{name} must be a power of two in [{minimum}, {MAX_RESOLUTION}], got {value!r:.40}")
    return int(value).bit_length() - 1


def check_clamp(value, name: str = "conv_clamp") -> None:
    """A clamp is None (off) or a finite number > 0."""
    if value is not None and not (isinstance(value, (int, float, np.integer, np.floating)) and
                                  math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be null (no clamp) or a finite number > 0, got {value!r}")


def check_filter(value, name: str = "resample_filter") -> None:
    """A resample filter is a non-empty rectangular 2-D table of finite numbers with a non-zero sum."""
    try:
        f = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-empty rectangular 2-D table of numbers, got {value!r:.80}") from None
    if f.ndim != 2 or f.size == 0:
        raise ValueError(f"{name} must be a non-empty rectangular 2-D table of numbers, got shape {f.shape}")
    if not np.all(np.isfinite(f)) or f.sum() == 0:
        raise ValueError(f"{name} must hold finite numbers with a non-zero sum, got {value!r:.80}")


class ConfigMixin:
    """Mixed into a frozen dataclass; `config_name` (default: the class name) names it in errors."""

    config_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        return cls(**coerce_fields(cls, d, cls.config_name or cls.__name__))


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
