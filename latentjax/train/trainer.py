"""The training harness: one loop, used by every learned method through a `Task`.

    state = train(config, workdir)          # or train(config, workdir, task=my_task, key=key)

Running it again on the same work dir resumes from the newest intact checkpoint; without a work
dir nothing is written and the final state is only returned. SIGTERM or SIGINT (a scheduler's
preemption, Ctrl-C) stops the loop after the step in flight, which is checkpointed and exported
first, so a stopped run loses nothing. `harness_config` builds the harness's
config fields (a task's config adds its own). The work dir holds `config.json`, `metrics.jsonl`,
`tensorboard/`, `samples/`, `checkpoints/` and whatever the task exports.
Details: docs/methods.md#latentjaxtraintrainer
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import signal
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from latentjax.progress import Progress
from latentjax.train import checkpoint
from latentjax.train.metrics import MetricWriter, note
from latentjax.sharding import DATA_AXIS, make_mesh, tree_shardings
from latentjax.train.task import Task

HARNESS_DEFAULTS = dict(seed=0, mesh=((DATA_AXIS, -1),), log_every=50, ckpt_every=1000, keep_ckpts=3,
                        sample_every=0, eval_every=0)


def harness_config(task: str, **fields) -> ml_collections.ConfigDict:
    """A train config: `task`, every harness field at its `HARNESS_DEFAULTS` value, then `fields`
    (`total_steps`, `batch_size`, the task's own fields and the harness fields it changes)."""
    config = ml_collections.ConfigDict({"task": task, **HARNESS_DEFAULTS})
    config.update(fields)
    return config


def load_task(config) -> Task:
    """`importlib.import_module(config.task).make_task(config)`."""
    name = config.get("task")
    if not name:
        raise ValueError("config.task must name the module of a learned method (e.g. 'latentjax.tasks.gan')")
    module = importlib.import_module(name)
    if not hasattr(module, "make_task"):
        raise ValueError(f"config.task {name!r}: module has no make_task(config)")
    return module.make_task(config)


def to_host(tree):
    """Device arrays -> numpy on every process (gathers arrays that span processes)."""
    return multihost_utils.process_allgather(tree, tiled=True)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def write_record(workdir: Path, record: ml_collections.ConfigDict, resumed_at: int | None) -> None:
    """`workdir/config.json` records the config a run started with. A fresh run writes it; a resumed
    run keeps it and, if its own config differs, says what changed and writes itself to
    `config.resumed_<step>.json`. (A run that is refused, e.g. for a config that builds another
    state, never gets here, so the record of what was trained survives.)"""
    text = record.to_json_best_effort(indent=1) + "\n"
    path = workdir / "config.json"
    if resumed_at is None or not path.exists():
        path.write_text(text)
        return
    try:
        before = _flatten(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        before = None
        note(f"{path}: unreadable ({e}); kept as it is")
    after = _flatten(json.loads(text))
    if before == after:
        return
    resumed = workdir / f"config.resumed_{resumed_at}.json"
    resumed.write_text(text)
    if before is not None:
        changes = [f"{k}: {before.get(k, '(unset)')!r} -> {after.get(k, '(unset)')!r}"
                   for k in sorted(set(before) | set(after)) if before.get(k, "(unset)") != after.get(k, "(unset)")]
        note(f"resuming at step {resumed_at} with a changed config: " + "; ".join(changes)
             + f" ({path.name} keeps the original; this run's config is in {resumed.name})")


def _due(step: int, every: int, total: int) -> bool:
    return step == total or (every > 0 and step % every == 0)


@contextlib.contextmanager
def stop_requests(signals=(signal.SIGTERM, signal.SIGINT)):
    """While the block runs, the first of `signals` is recorded in the yielded list instead of ending
    the process; a second one acts as it did before. A signal the process ignores (as a shell's
    background job ignores SIGINT) stays ignored. (Outside the main thread, where Python cannot set
    handlers, the list stays empty.)"""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {s: handler for s in signals if (handler := signal.getsignal(s)) is not signal.SIG_IGN}

    def restore():
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)

    def record(signum, frame):
        requested.append(signum)
        restore()

    for s in previous:
        signal.signal(s, record)
    try:
        yield requested
    finally:
        restore()


def stop_agreed(requested: list, log_step: bool) -> bool:
    """Whether the run stops after this step: at once in one process; with several, at a log step
    where any process was asked (all of them must stop at the same step)."""
    if jax.process_count() == 1:
        return bool(requested)
    return log_step and bool(np.max(multihost_utils.process_allgather(np.int32(bool(requested)))))


def train(config: ml_collections.ConfigDict, workdir=None, task: Task | None = None, key: jax.Array | None = None):
    """Train (or resume) `task` (default: `load_task(config)`) in `workdir`; returns the final train state.

    The train state is `{"step": int32, "state": task state}` as sharded device arrays. `key` (default:
    `jax.random.key(config.seed)`) seeds the run; a resumed run must get the same one.
    """
    jax.config.update("jax_threefry_partitionable", True)
    cfg = {**HARNESS_DEFAULTS, **config.to_dict()}
    total_steps, batch_size = int(cfg["total_steps"]), int(cfg["batch_size"])
    workdir = None if workdir is None else Path(workdir).absolute()

    # ------------------------------------------------------------------------------------------
    # Logging
    # ------------------------------------------------------------------------------------------
    note(f"process {jax.process_index()}/{jax.process_count()} with {jax.local_device_count()}/"
         f"{jax.device_count()} {jax.default_backend()} devices; work dir {workdir or '(none: nothing is written)'}")
    if workdir is not None and jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
    record = config if key is None else ml_collections.ConfigDict(  # a given key replaces config.seed
        {**config.to_dict(), "key": np.asarray(jax.random.key_data(key)).tolist()})

    # ------------------------------------------------------------------------------------------
    # Mesh
    # ------------------------------------------------------------------------------------------
    mesh = make_mesh(cfg["mesh"])
    data_size = mesh.shape[DATA_AXIS]
    if batch_size % data_size:
        raise ValueError(f"config.batch_size {batch_size} must be divisible by the {data_size} devices of "
                         f"the mesh's {DATA_AXIS!r} axis")
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P(DATA_AXIS))
    note(f"mesh {dict(mesh.shape)}; global batch {batch_size}, {batch_size // data_size} per device")

    # ------------------------------------------------------------------------------------------
    # Task, abstract init and shardings
    # ------------------------------------------------------------------------------------------
    task = task if task is not None else load_task(config)
    key = jax.random.key(int(cfg["seed"])) if key is None else key
    rng_init, rng_loop, rng_eval = jax.random.split(key, 3)

    def init(key):
        return {"step": jnp.zeros((), jnp.int32), "state": task.init(key)}

    with jax.set_mesh(mesh):
        abstract = jax.eval_shape(init, rng_init)
    shardings = tree_shardings(abstract, mesh, task.sharding_rules)
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(abstract["state"]))
    note(f"train state: {count:,} numbers in {len(jax.tree.leaves(abstract))} arrays")

    # ------------------------------------------------------------------------------------------
    # Update step
    # ------------------------------------------------------------------------------------------
    def train_step(train_state, rng):
        step = train_state["step"]
        key_data, key_step = jax.random.split(jax.random.fold_in(rng, step))
        batch = None
        if task.batch is not None:
            batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, batch_sharding), task.batch(key_data))
        state, metrics = task.step(train_state["state"], batch, key_step, step)
        return {"step": step + 1, "state": state}, metrics

    step_fn = jax.jit(train_step, in_shardings=(shardings, replicated), out_shardings=(shardings, replicated),
                      donate_argnums=0)
    logged = workdir is not None  # samples and evaluations are only written, so skipped without a work dir
    sample_fn = jax.jit(task.sample, in_shardings=(shardings["state"],), out_shardings=replicated) \
        if task.sample and logged else None
    eval_fn = jax.jit(task.evaluate, in_shardings=(shardings["state"], replicated), out_shardings=replicated) \
        if task.evaluate and logged else None

    # ------------------------------------------------------------------------------------------
    # Checkpoint: resume from the latest one, or initialise (sharded) from scratch
    # ------------------------------------------------------------------------------------------
    manager = checkpoint.open_manager(workdir, int(cfg["keep_ckpts"])) if workdir is not None else None
    with jax.set_mesh(mesh):
        restored, latest = (checkpoint.restore_latest(manager, checkpoint.with_shardings(abstract, shardings))
                            if manager is not None else (None, None))
        if latest is None:
            train_state = jax.jit(init, out_shardings=shardings)(rng_init)
            first_step = 0
        else:
            note(f"resuming from {manager.directory / str(latest)}")
            train_state = restored
            first_step = int(to_host(train_state["step"]))
            if first_step != latest:
                raise ValueError(f"{manager.directory / str(latest)}: holds step {first_step}, expected {latest}")
    if workdir is not None and jax.process_index() == 0:
        write_record(workdir, record, resumed_at=latest)

    # ------------------------------------------------------------------------------------------
    # Train loop
    # ------------------------------------------------------------------------------------------
    writer = MetricWriter(workdir, first_step) if workdir is not None else None

    def save_and_export(step):
        if manager is None:
            return
        checkpoint.save(manager, step, train_state)
        if task.export:
            task.export(to_host(train_state["state"]), workdir, step)

    def log_images(step):
        writer.images(step, "samples", to_host(sample_fn(train_state["state"])))

    if first_step >= total_steps:
        note(f"already trained for {first_step} >= {total_steps} steps")
    shown, bar = {}, None
    with stop_requests() as requested, jax.set_mesh(mesh):
        if first_step == 0 and sample_fn is not None:
            log_images(0)
        clock, clock_step = time.perf_counter(), first_step
        for step in range(first_step + 1, total_steps + 1):  # `step` updates done after this one
            train_state, metrics = step_fn(train_state, rng_loop)
            if bar is None:  # rates and the ETA count from the end of compilation
                jax.block_until_ready(train_state)
                note(f"first step (with compilation): {time.perf_counter() - clock:.1f} s")
                clock, clock_step = time.perf_counter(), step
                bar = Progress(total_steps, "train", "step", start=step)
            else:
                bar.update(1, **shown)
            log_step = _due(step, int(cfg["log_every"]), total_steps)
            if log_step:
                metrics = {k: float(v) for k, v in to_host(metrics).items()}
                bad = [k for k, v in metrics.items() if not math.isfinite(v)]
                if bad:
                    raise FloatingPointError(f"{bad} became non-finite between steps {clock_step} and {step}: "
                                             f"{metrics}")
                now = time.perf_counter()
                if step > clock_step:
                    metrics["time/step_s"] = (now - clock) / (step - clock_step)
                    metrics["time/img_per_s"] = batch_size / metrics["time/step_s"]
                clock, clock_step = now, step
                if writer is not None:
                    writer.scalars(step, metrics)
                shown = {k: v for k, v in metrics.items() if "/" not in k}
            if eval_fn is not None and _due(step, int(cfg["eval_every"]), total_steps):
                results = to_host(eval_fn(train_state["state"], jax.random.fold_in(rng_eval, step)))
                writer.scalars(step, {f"eval/{k}": v for k, v in results.items()})
            if sample_fn is not None and _due(step, int(cfg["sample_every"]), total_steps):
                log_images(step)
            stop = stop_agreed(requested, log_step)
            if stop or _due(step, int(cfg["ckpt_every"]), total_steps):
                save_and_export(step)
            if stop:
                note(f"stopped by signal {signal.Signals(requested[0]).name if requested else '(another process)'} "
                     f"after step {step}; its checkpoint resumes the run")
                break
    if bar is not None:
        bar.close()

    if manager is not None:
        manager.wait_until_finished()
        manager.close()
    if writer is not None:
        writer.close()
    return train_state
