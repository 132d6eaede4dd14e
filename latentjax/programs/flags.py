"""`--config FILE[:variant] --config.field=value --workdir DIR`: the flags of the config-driven commands."""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags


def parse_config_flags(argv, command: str, define_extra=None):
    """`--config FILE[:variant] --config.field=value ... --workdir DIR` through ml_collections' config flags.

    `define_extra(flag_values)` may declare more flags (e.g. `train`'s multi-process ones). Returns the
    parsed `absl.flags.FlagValues` (`.config` is the ConfigDict with overrides applied).
    """
    argv = [f"latentjax {command}"] + list(argv)
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file (get_config), optionally FILE:variant",
                                    flag_values=values, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "output directory", flag_values=values)
    if define_extra is not None:
        define_extra(values)
    try:
        rest = values(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        raise SystemExit(f"error: {command}: bad flags: {e!r}") from None
    if len(rest) > 1 or values.config is None or not values.workdir:
        raise SystemExit(f"error: {command} takes --config FILE[:variant], --config.<field>=VALUE overrides and "
                         f"--workdir DIR; got {argv[1:]}")
    return values
