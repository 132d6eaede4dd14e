"""Damaged training runs resume from the newest intact checkpoint, saying what was skipped and why;
the record of what was trained (config.json) survives a refused run; a changed config is named."""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from latentjax.train import Task, checkpoint, train
from latentjax.train.checkpoint import open_manager
from support import assert_trees_close
from test_trainer import make_task, tiny_config


def run(workdir, **overrides):
    config = tiny_config(**{"total_steps": 8, "ckpt_every": 4, "keep_ckpts": 3, "eval_every": 0, **overrides})
    return train(config, workdir, task=make_task(config))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 12-step run: what every fallback must reproduce exactly."""
    return run(tmp_path_factory.mktemp("straight"), total_steps=12)


@pytest.fixture
def two_checkpoints(tmp_path):
    run(tmp_path)
    assert open_manager(tmp_path).all_steps() == [4, 8]
    return tmp_path


def _cut(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate(step_dir: Path):
    """The largest array data file cut in half (a kill or full disk mid-write, a partial copy)."""
    _cut(max((p for p in step_dir.rglob("d/*") if p.is_file()), key=lambda p: p.stat().st_size))


def _truncate_metadata(step_dir: Path):
    _cut(step_dir / "default" / "_METADATA")


def _truncate_array_metadata(step_dir: Path):
    _cut(step_dir / "default" / "array_metadatas" / "process_0")


def _empty(step_dir: Path):
    for p in sorted(step_dir.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()


def _resave(step_dir: Path, change, metadata):
    """Replace the checkpoint at `step_dir` with its state changed by `change`, saved by plain orbax
    with `metadata(original_state)` as its record (what damage on disk looks like to the reader)."""
    workdir, step = step_dir.parent.parent, int(step_dir.name)
    state = checkpoint.read_state(workdir, step)
    with open_manager(workdir) as manager:
        manager.delete(step)
        manager.save(step, args=ocp.args.StandardSave(change(state)), custom_metadata=metadata(state), force=True)
        manager.wait_until_finished()


def _nan(step_dir: Path):
    def poison(state):
        w1 = state["state"]["params"]["w1"].copy()
        w1[0, 3] = np.nan
        return {**state, "state": {**state["state"], "params": {**state["state"]["params"], "w1": w1}}}
    _resave(step_dir, poison, lambda state: None)


def _flipped(step_dir: Path):
    """Finite but different values under the original digest: a silent bit flip."""
    def flip(state):
        b1 = state["state"]["params"]["b1"].copy()
        b1.view(np.uint32)[2] ^= 1 << 7
        return {**state, "state": {**state["state"], "params": {**state["state"]["params"], "b1": b1}}}

    def original_record(state):
        digest, counts = checkpoint.summary(state)
        return {"digest": digest, "nonfinite": int(counts.sum())}
    _resave(step_dir, flip, original_record)


@pytest.mark.parametrize("damage, why", [
    (_truncate, "its (meta)?data cannot be read"),
    (_truncate_array_metadata, r"its data cannot be read \(JSONDecodeError"),
    (_truncate_metadata, r"its metadata cannot be read \(JSONDecodeError"),
    (_empty, "an empty step directory"),
    (_nan, r"it holds 1 non-finite values \(NaN or infinity\) in state/params/w1 \(1\)"),
    (_flipped, "its arrays do not match the digest saved with them"),
])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(two_checkpoints, straight, capsys, damage,
                                                                          why):
    workdir = two_checkpoints
    damage(workdir / "checkpoints" / "8")
    capsys.readouterr()
    resumed = run(workdir, total_steps=12)
    err = capsys.readouterr().err
    assert re.search(rf"skipped checkpoint {re.escape(str(workdir / 'checkpoints' / '8'))}: {why}", err), err
    assert f"moved it to {workdir / 'checkpoints_damaged' / '8'}" in err
    assert f"resuming from {workdir / 'checkpoints' / '4'}" in err
    assert (workdir / "checkpoints_damaged" / "8").is_dir()
    assert_trees_close(resumed, straight, rtol=0, atol=0)  # resumed from step 4: the uninterrupted run exactly
    assert open_manager(workdir).all_steps() == [4, 8, 12]  # and the damaged step is written afresh


def test_a_stray_step_directory_is_skipped(two_checkpoints, straight, capsys):
    workdir = two_checkpoints
    (workdir / "checkpoints" / "999999").mkdir()
    (workdir / "checkpoints" / "notastep").mkdir()
    resumed = run(workdir, total_steps=12)
    err = capsys.readouterr().err
    assert "skipped checkpoint" in err and "999999: an empty step directory" in err
    assert f"resuming from {workdir / 'checkpoints' / '8'}" in err
    assert_trees_close(resumed, straight, rtol=0, atol=0)


def test_every_checkpoint_damaged_is_refused_and_nothing_moved(two_checkpoints):
    workdir = two_checkpoints
    _truncate(workdir / "checkpoints" / "8")
    _nan(workdir / "checkpoints" / "4")
    with pytest.raises(ValueError, match=r"no intact checkpoint to resume from: 8: its (meta)?data cannot be read .*"
                                         r"4: it holds 1 non-finite values .*train from step 0"):
        run(workdir, total_steps=12)
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4", "8"]


def make_sized_task(config) -> Task:
    """A task whose state shape follows `config.hidden`."""
    tx = optax.sgd(0.1)

    def init(key):
        params = {"w": jax.random.normal(key, (4, config.hidden))}
        return {"params": params, "opt": tx.init(params)}

    def step(state, batch, key, step):
        grads = jax.grad(lambda p: jnp.sum(jnp.square(p["w"])))(state["params"])
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, {"loss": jnp.float32(0)}

    return Task(init=init, step=step)


def test_a_run_of_another_config_is_refused_and_keeps_the_record(tmp_path):
    config = tiny_config(task="x", hidden=4, total_steps=4, ckpt_every=2, eval_every=0)
    train(config, tmp_path, task=make_sized_task(config))
    record = (tmp_path / "config.json").read_text()
    other = tiny_config(task="x", hidden=6, total_steps=6, ckpt_every=2, eval_every=0)
    with pytest.raises(ValueError, match=r"checkpoints/4: cannot restore the train state; it does not match the "
                                         r"state this config builds \(was the config changed\?\): "
                                         r"state/params/w: saved float32 \(4, 4\), this config "
                                         r"builds float32 \(4, 6\)"):
        train(other, tmp_path, task=make_sized_task(other))
    assert (tmp_path / "config.json").read_text() == record  # the record of what was trained survives
    assert open_manager(tmp_path).all_steps() == [2, 4] and not (tmp_path / "checkpoints_damaged").exists()


def test_a_shape_free_change_resumes_and_says_what_changed(two_checkpoints, capsys):
    workdir = two_checkpoints
    record = json.loads((workdir / "config.json").read_text())
    state = run(workdir, total_steps=12, batch_size=8, seed=5)
    err = capsys.readouterr().err
    assert "resuming at step 8 with a changed config: batch_size: 16 -> 8; seed: 3 -> 5; total_steps: 8 -> 12" in err
    assert json.loads((workdir / "config.json").read_text()) == record
    assert json.loads((workdir / "config.resumed_8.json").read_text())["batch_size"] == 8
    assert int(state["step"]) == 12
