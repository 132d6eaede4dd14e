"""latentjax's own generator format: a directory with `config.json` and orbax `params/`.

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

from latentjax.io.torch_pickle import CheckpointError
from latentjax.models import FAMILIES

FORMAT = "latentjax.generator"
FORMAT_VERSION = 1


def is_native_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and (path / "params").is_dir()


def save_generator(generator, out_dir) -> Path:
    """Write `generator` to `out_dir` (created; an existing params/ is replaced)."""
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": generator.family,
            "config": generator.config.to_dict(), "metadata": generator.metadata}
    params = jax.tree.map(np.asarray, generator.params)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(out_dir / "params", params, force=True)
    (out_dir / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out_dir


def load_native(path):
    """Read a directory written by `save_generator`."""
    path = Path(path).absolute()
    config_file = path / "config.json"
    try:
        meta = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_file}: cannot read the generator config ({e})") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{config_file}: 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{config_file}: format_version {meta.get('format_version')!r} is not "
                              f"supported (this version reads {FORMAT_VERSION})")
    family = meta.get("family")
    if family not in FAMILIES:
        raise CheckpointError(f"{config_file}: unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    generator_cls, config_cls = FAMILIES[family]
    try:
        config = config_cls.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{config_file}: invalid {family} config ({e})") from e
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            params = checkpointer.restore(path / "params")
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise CheckpointError(f"{path / 'params'}: cannot restore params ({e})") from e
    _check_matches(params, generator_cls(config, None).abstract_params(), f"{path / 'params'}", config_file)
    return generator_cls(config, params, meta.get("metadata"))


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
