"""Train-state checkpoints: an orbax `CheckpointManager` under `WORKDIR/checkpoints/<step>`.

Saves are asynchronous (the device-to-host copy blocks, the write does not) and atomic: a run killed
mid-write leaves a temporary directory that the next run ignores, so resuming always starts from the
latest complete checkpoint. Restoring goes through an abstract state that carries the shardings, so
every array lands directly on its devices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


def open_manager(workdir, keep: int | None = None, create: bool = True) -> ocp.CheckpointManager:
    """The manager of `workdir/checkpoints`, keeping the newest `keep` checkpoints (None: all)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    return ocp.CheckpointManager(Path(workdir).absolute() / CHECKPOINT_DIR, options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def with_shardings(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs of `abstract` that also carry the target shardings."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    manager.save(step, args=ocp.args.StandardSave(state))


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Restore checkpoint `step` into the structure, dtypes and shardings of `target` (abstract)."""
    try:
        return manager.restore(step, args=ocp.args.StandardRestore(target))
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise ValueError(f"{manager.directory / str(step)}: cannot restore the train state; it does not match "
                         f"the state this config builds (was the config changed?): {e}") from e


def read_state(workdir, step: int | None = None) -> Any:
    """A saved train state as numpy arrays on this host, whatever the devices it was saved from.

    For analysis and export outside training; `step` defaults to the latest checkpoint.
    """
    with open_manager(workdir, create=False) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{manager.directory}: no checkpoint")
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                              manager.item_metadata(step))
        return jax.tree.map(np.asarray, restore(manager, step, target))
