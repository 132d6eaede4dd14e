"""Config helpers shared by `configs/*.py`.

A config file has `get_config(arg=None)`; `--config configs/x.py:smoke,res=64` passes the text after
the colon as `arg`. `parse_arg` turns it into typed fields. Every config understands `smoke`, which
shrinks it to something that runs in seconds (used by CI on every config).
"""

from __future__ import annotations

import ml_collections


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
