"""Command-line values: argparse types that refuse nonsense (`positive_int`, `finite_float`, ...), and
`--config FILE[:variant] --config.field=value --workdir DIR`, the flags of the config-driven commands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from absl import flags
from ml_collections import config_flags


def _number(kind, text: str, accept, expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v > 0, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def seed(text: str) -> int:
    return _number(int, text, lambda v: 0 <= v < 2 ** 32, "a seed in [0, 2**32)")


def finite_float(text: str) -> float:
    return _number(float, text, math.isfinite, "a finite number")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: math.isfinite(v) and v > 0, "a positive finite number")


def _config_argument(argv) -> str | None:
    """The value of `--config` in `argv` (`--config X` or `--config=X`), if any."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _unknown_fields(argv, config) -> list[str]:
    """The `--config.a.b=...` overrides of `argv` that name no field of `config`, as 'a.b'."""
    unknown = []
    for arg in argv:
        if arg.startswith("--config.") and "=" in arg:
            node = config
            for part in arg[len("--config."):].split("=", 1)[0].split("."):
                if not hasattr(node, "keys") or part not in node:
                    unknown.append(arg[len("--config."):].split("=", 1)[0])
                    break
                node = node[part]
    return unknown


def _parse(argv, command: str, define_extra):
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file (get_config), optionally FILE:variant",
                                    flag_values=values, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "output directory", flag_values=values)
    if define_extra is not None:
        define_extra(values)
    return values, values(argv)


def parse_config_flags(argv, command: str, define_extra=None):
    """`--config FILE[:variant] --config.field=value ... --workdir DIR` through ml_collections' config flags.

    `define_extra(flag_values)` may declare more flags (e.g. `train`'s multi-process ones). Returns the
    parsed `absl.flags.FlagValues` (`.config` is the ConfigDict with overrides applied). Bad flags end
    the command with one line naming the file or field.
    """
    argv = [f"latentjax {command}"] + list(argv)
    usage = (f"{command} takes --config FILE[:variant], --config.<field>=VALUE overrides and --workdir DIR; "
             f"got {argv[1:]}")
    spec = _config_argument(argv[1:])
    if spec is None:
        raise SystemExit(f"error: {usage}")
    file = spec.split(":", 1)[0]
    if not Path(file).is_file():
        raise SystemExit(f"error: {command}: --config {file}: no such file")
    try:
        values, rest = _parse(argv, command, define_extra)
    except SyntaxError as e:
        where = f", line {e.lineno}" if e.lineno else ""
        raise SystemExit(f"error: {command}: --config {file}: not a Python config file ({e.msg}{where})") from None
    except (AttributeError, KeyError) as e:
        plain = [a for a in argv if not a.startswith("--config.")]
        config = _parse(plain, command, define_extra)[0].config
        unknown = _unknown_fields(argv, config) or [repr(e)]
        raise SystemExit(f"error: {command}: --config.{unknown[0]}: {file} has no such field; its fields are "
                         f"{sorted(config.keys())}") from None
    except (flags.Error, TypeError, ValueError, OSError) as e:
        message = str(e).strip().splitlines()
        raise SystemExit(f"error: {command}: bad flags: {message[-1] if message else e!r}") from None
    if len(rest) > 1 or values.config is None or not values.workdir:
        raise SystemExit(f"error: {usage}")
    return values
