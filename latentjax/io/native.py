"""latentjax's own directory format for networks (generators, encoders): `config.json` and orbax `params/`.

`config.json` names the family, its architecture config and provenance metadata; restored
params are checked against the tree the config implies, so a config that does not match the
weights fails with the offending path instead of producing a wrong model.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from latentjax.errors import CheckpointError

FORMAT_VERSION = 1


def is_native_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and (path / "params").is_dir()


def write_directory(out_dir, fmt: str, meta: dict, params) -> Path:
    """Write `config.json` ({'format': fmt, 'format_version', **meta}) and orbax `params/` to `out_dir`
    (created; an existing params/ is replaced). `config.json` is written last, so a directory
    that has one is complete."""
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(out_dir / "params", jax.tree.map(np.asarray, params), force=True)
    meta = {"format": fmt, "format_version": FORMAT_VERSION, **meta}
    (out_dir / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out_dir


def read_directory_config(path, fmt: str, what: str) -> tuple[dict, Path]:
    """The `config.json` of a directory written by `write_directory` with format `fmt`, and its path."""
    config_file = Path(path).absolute() / "config.json"
    try:
        meta = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_file}: cannot read the {what} config ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{config_file}: expected a JSON object with 'format', 'config' and 'metadata', "
                              f"got a JSON {type(meta).__name__}")
    if meta.get("format") != fmt:
        raise CheckpointError(f"{config_file}: 'format' is {meta.get('format')!r}, expected {fmt!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{config_file}: format_version {meta.get('format_version')!r} is not "
                              f"supported (this version reads {FORMAT_VERSION})")
    return meta, config_file


def network_from_directory(path, meta: dict, config_file: Path, network_cls, config_cls, what: str):
    """`network_cls(config, params, metadata)` from a directory's `config.json` contents `meta` (read
    by `read_directory_config`) and its params, checked against the tree the config implies."""
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{config_file}: 'config' must be a JSON object of the {what} architecture, got "
                              + ("nothing (the key is missing)" if "config" not in meta else
                                 f"a JSON {type(meta['config']).__name__}"))
    metadata = meta.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{config_file}: 'metadata' must be a JSON object, got a JSON {type(metadata).__name__}")
    try:
        config = config_cls.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{config_file}: invalid {what} config ({e})") from e
    params = restore_directory_params(path, network_cls(config, None).abstract_params(), config_file)
    return network_cls(config, params, metadata)


def restore_directory_params(path, abstract, config_file: Path):
    """The params in `path/params`, checked to have exactly the tree of shapes of `abstract`."""
    params_dir = Path(path).absolute() / "params"
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            params = checkpointer.restore(params_dir)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise CheckpointError(f"{params_dir}: cannot restore params ({e})") from e
    _check_matches(params, abstract, str(params_dir), config_file)
    for keys, value in jax.tree_util.tree_leaves_with_path(params):  # bit flips on disk: NaN / inf weights
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise CheckpointError(f"{params_dir}: {jax.tree_util.keystr(keys)} holds "
                                  f"{int(np.sum(~np.isfinite(value)))} non-finite value(s) (NaN or infinity); "
                                  f"the directory is damaged")
    return params


def _check_matches(params, abstract, where: str, config_file: Path):
    """Orbax restores what was saved; the config must imply exactly that tree of shapes."""
    found = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(params)}
    expected = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(abstract)}
    problems = [f"{k}: missing" for k in expected if k not in found]
    problems += [f"{k}: unexpected" for k in found if k not in expected]
    problems += [f"{k}: shape {found[k]}, config implies {v}" for k, v in expected.items() if k in found and found[k] != v]
    if problems:
        raise CheckpointError(f"{where}: params do not match the config in {config_file}: " + "; ".join(problems[:5])
                              + (f" ... ({len(problems)} problems)" if len(problems) > 5 else ""))
