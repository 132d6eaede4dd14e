"""Train-state checkpoints: an orbax `CheckpointManager` under `WORKDIR/checkpoints/<step>`.

Saves are asynchronous (the device-to-host copy blocks, the write does not) and atomic: a run killed
mid-write leaves a temporary directory that the next run ignores. Restoring goes through an abstract
state that carries the shardings, so every array lands directly on its devices.

Each checkpoint records a digest of its arrays' bits and how many non-finite values they held
(orbax custom metadata). `restore_latest` resumes from the newest *intact* checkpoint: one that
cannot be read (a truncated file, an empty or stray step directory), whose arrays do not match the
digest, or that holds more NaN/inf than were saved is skipped with a note saying why, and moved to
`WORKDIR/checkpoints_damaged/` so that orbax neither resumes from nor overwrites it. A checkpoint
whose tree of shapes differs from the one the config builds is not damage: that is an error (the
config changed), and older checkpoints are not tried.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from latentjax.train.metrics import note

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "checkpoints_damaged"


def open_manager(workdir, keep: int | None = None, create: bool = True) -> ocp.CheckpointManager:
    """The manager of `workdir/checkpoints`, keeping the newest `keep` checkpoints (None: all)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    return ocp.CheckpointManager(Path(workdir).absolute() / CHECKPOINT_DIR, options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def with_shardings(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs of `abstract` that also carry the target shardings."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


# ----------------------------------------------------------------------------------------------
# Integrity: a digest of the arrays' bits and a count of non-finite values
# ----------------------------------------------------------------------------------------------

def _leaf_summary(x):
    """(digest, non-finite count) of one array. The digest is a position-weighted sum of the bits as
    uint32, exact modulo 2**32 and so independent of the sharding and of the reduction order."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    nonfinite = jnp.sum(~jnp.isfinite(x), dtype=jnp.int32) if jnp.issubdtype(x.dtype, jnp.inexact) \
        else jnp.zeros((), jnp.int32)
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
    bits = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).ravel()
    index = jnp.arange(bits.size, dtype=jnp.uint32)
    mixed = bits * (index * jnp.uint32(0x9E3779B1) + jnp.uint32(0x85EBCA77))
    mixed = mixed ^ (mixed >> 16)
    return jnp.sum(mixed, dtype=jnp.uint32), nonfinite


@jax.jit
def _summary(tree):
    """(digest of the whole tree, non-finite count of every leaf)."""
    digest, counts = jnp.uint32(0), []
    for i, leaf in enumerate(jax.tree.leaves(tree)):
        d, n = _leaf_summary(leaf)
        digest = digest + d * jnp.uint32(2 * i + 1)
        counts.append(n)
    return digest, jnp.stack(counts) if counts else jnp.zeros((0,), jnp.int32)


def summary(tree) -> tuple[int, np.ndarray]:
    """The digest (an int) and the per-leaf non-finite counts of a (sharded) tree, on every process."""
    digest, counts = multihost_utils.process_allgather(_summary(tree), tiled=True)
    return int(digest), np.asarray(counts)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    digest, counts = summary(state)
    manager.save(step, args=ocp.args.StandardSave(state),
                 custom_metadata={"digest": digest, "nonfinite": int(counts.sum())})


# ----------------------------------------------------------------------------------------------
# Restore
# ----------------------------------------------------------------------------------------------

class DamagedCheckpoint(Exception):
    """A checkpoint that cannot be trusted (unreadable, empty, not matching its digest, non-finite)."""


def _short(e: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _path(keys) -> str:
    """'state/opt/0/mu/w1' for a key path, whatever the node types (orbax's metadata has dicts and
    lists where the state has named tuples)."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys)


def _check_tree(manager, step: int, target: Any) -> None:
    """Raise DamagedCheckpoint if the step's metadata cannot be read, ValueError (the config changed)
    if its tree of arrays differs from `target`'s."""
    where = manager.directory / str(step)
    try:
        metadata = manager.item_metadata(step)
        tree = getattr(metadata, "tree", metadata)
        if tree is None:
            raise ValueError("no array metadata")
        saved = {_path(k): v for k, v in jax.tree_util.tree_leaves_with_path(tree)}
    except Exception as e:  # orbax raises anything from ValueError to a bare Exception
        empty = where.is_dir() and not any(where.iterdir())
        raise DamagedCheckpoint("an empty step directory" if empty else
                                f"its metadata cannot be read ({_short(e)})") from e
    if not saved:
        raise DamagedCheckpoint("it holds no arrays")
    expected = {_path(k): v for k, v in jax.tree_util.tree_leaves_with_path(target)}
    problems = [f"{k}: missing" for k in expected if k not in saved]
    problems += [f"{k}: not in this config's state" for k in saved if k not in expected]
    for k, v in expected.items():
        if k in saved:
            shape, dtype = tuple(getattr(saved[k], "shape", ()) or ()), getattr(saved[k], "dtype", None)
            if shape != tuple(v.shape) or (dtype is not None and np.dtype(dtype) != np.dtype(v.dtype)):
                problems.append(f"{k}: saved {dtype} {shape}, this config builds {np.dtype(v.dtype)} {tuple(v.shape)}")
    if problems:
        raise ValueError(f"{where}: cannot restore the train state; it does not match the state this config builds "
                         f"(was the config changed?): " + "; ".join(problems[:5])
                         + (f" ... ({len(problems)} differences)" if len(problems) > 5 else ""))


def _recorded(manager, step: int) -> dict:
    try:
        return dict(manager.metadata(step).custom_metadata or {})
    except Exception:  # a damaged _CHECKPOINT_METADATA only loses the integrity record
        return {}


def _restore_checked(manager, step: int, target: Any) -> Any:
    """Restore `step` into `target`, or raise DamagedCheckpoint / ValueError (config changed)."""
    _check_tree(manager, step, target)
    try:
        state = manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:
        raise DamagedCheckpoint(f"its data cannot be read ({_short(e)})") from e
    digest, counts = summary(state)
    record = _recorded(manager, step)
    if "digest" in record and int(record["digest"]) != digest:
        raise DamagedCheckpoint("its arrays do not match the digest saved with them (the data changed on disk)")
    if counts.sum() > int(record.get("nonfinite", 0)):
        paths = [_path(k) for k, _ in jax.tree_util.tree_leaves_with_path(state)]
        bad = [f"{p} ({n})" for p, n in zip(paths, counts) if n]
        raise DamagedCheckpoint(f"it holds {int(counts.sum())} non-finite values (NaN or infinity) in "
                                + ", ".join(bad[:4]) + (" ..." if len(bad) > 4 else ""))
    return state


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Restore checkpoint `step` into the structure, dtypes and shardings of `target` (abstract);
    a damaged checkpoint or one of another config is a ValueError naming it."""
    try:
        return _restore_checked(manager, step, target)
    except DamagedCheckpoint as e:
        raise ValueError(f"{manager.directory / str(step)}: damaged checkpoint: {e}") from e


def _move_aside(manager, step: int) -> Path:
    source = Path(manager.directory) / str(step)
    aside = Path(manager.directory).parent / DAMAGED_DIR
    destination, n = aside / str(step), 1
    while destination.exists():
        destination, n = aside / f"{step}.{n}", n + 1
    if jax.process_index() == 0:
        aside.mkdir(exist_ok=True)
        shutil.move(str(source), str(destination))
    return destination


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> tuple[Any, int | None]:
    """(state, step) of the newest intact checkpoint, or (None, None) when there is none at all.

    Damaged checkpoints newer than it are moved to `checkpoints_damaged/` with a note naming each
    and why; if every checkpoint is damaged nothing is moved and a ValueError lists them. A
    checkpoint of another config (a different tree of shapes) is a ValueError.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    skipped = []
    for step in steps:
        try:
            state = _restore_checked(manager, step, target)
        except DamagedCheckpoint as e:
            skipped.append((step, str(e)))
            continue
        if skipped:
            for bad, why in skipped:
                moved = _move_aside(manager, bad)
                note(f"skipped checkpoint {manager.directory / str(bad)}: {why}; moved it to {moved}")
            if jax.process_count() > 1:
                multihost_utils.sync_global_devices("latentjax.checkpoint.skip_damaged")
            manager.reload()
        return state, step
    if skipped:
        raise ValueError(f"{manager.directory}: no intact checkpoint to resume from: "
                         + "; ".join(f"{step}: {why}" for step, why in skipped)
                         + ". Move or delete these step directories to train from step 0")
    return None, None


def read_state(workdir, step: int | None = None) -> Any:
    """A saved train state as numpy arrays on this host, whatever the devices it was saved from.

    For analysis and export outside training; `step` defaults to the latest checkpoint.
    """
    with open_manager(workdir, create=False) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{manager.directory}: no checkpoint")
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        metadata = manager.item_metadata(step)
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                              getattr(metadata, "tree", metadata))
        return jax.tree.map(np.asarray, restore(manager, step, target))
