"""The training harness: same numbers on 1 and 8 devices and across 2 processes; SIGKILL + resume.

The task here is a tiny MLP regression (`make_task`), so every test is about the harness itself.
Runs that need other device counts or processes happen in subprocesses (`support.run_python`), as
the GAN and learned-method tests do.
"""

import json
import os
import signal
import socket

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from latentjax.config import parse_arg
from latentjax.train import Task, train
from latentjax.train.trainer import HARNESS_DEFAULTS, harness_config, stop_requests
from latentjax.train.checkpoint import open_manager
from latentjax.train.metrics import MetricWriter, read_metrics
from latentjax.sharding import make_mesh, tree_shardings
from support import assert_trees_close, run_killed, run_python



# ----------------------------------------------------------------------------------------------
# The tiny task and its config
# ----------------------------------------------------------------------------------------------

def make_task(config) -> Task:
    """Fit y = sin(x @ a) with a one-hidden-layer MLP; w1 is sharded over "data" by a rule."""
    dim, hidden = 8, 16
    target = jax.random.normal(jax.random.key(99), (dim,))
    tx = optax.adam(config.lr)

    def init(key):
        k1, k2 = jax.random.split(key)
        params = {"w1": jax.random.normal(k1, (dim, hidden)) / np.sqrt(dim), "b1": jnp.zeros(hidden),
                  "w2": jax.random.normal(k2, (hidden, 1)) / np.sqrt(hidden)}
        return {"params": params, "opt": tx.init(params)}

    def batch(key):
        x = jax.random.normal(key, (config.batch_size, dim))
        return {"x": x, "y": jnp.sin(x @ target)[:, None]}

    def loss_fn(params, b):
        pred = jnp.tanh(b["x"] @ params["w1"] + params["b1"]) @ params["w2"]
        return jnp.mean(jnp.square(pred - b["y"]))

    def step(state, b, key, step):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], b)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, {"loss": loss}

    def evaluate(state, key):
        return {"loss": loss_fn(state["params"], batch(key))}

    return Task(init=init, step=step, batch=batch, evaluate=evaluate,
                sharding_rules=[(r".*w1", P(None, "data"))])


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(dict(task="train.test_trainer", seed=3, total_steps=12, batch_size=16,
                                            lr=0.02, log_every=1, ckpt_every=4, keep_ckpts=2, eval_every=6))
    config.update(overrides)
    return config


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------

def test_parse_arg_types_and_errors():
    arg = parse_arg("smoke,res=64,lr=0.5", res=32, lr=1.0, name="x")
    assert (arg.smoke, arg.res, arg.lr, arg.name) == (True, 64, 0.5, "x")
    assert parse_arg(None, res=32).smoke is False
    with pytest.raises(ValueError, match="unknown config argument 'width'"):
        parse_arg("width=3", res=32)
    with pytest.raises(ValueError, match="needs a value"):
        parse_arg("res", res=32)


def test_parse_arg_choices():
    """A tuple default is a choice: its first word by default, set by a bare word or name=word, once."""
    models = ("shapes", "biggan", "pggan")
    assert (parse_arg(None, model=models).model, parse_arg("biggan,smoke", model=models).model) == ("shapes", "biggan")
    assert parse_arg("model=pggan", model=models).model == "pggan" and parse_arg("smoke", model=models).smoke
    with pytest.raises(ValueError, match=r"pick one model of \['shapes', 'biggan', 'pggan'\]"):
        parse_arg("biggan,pggan", model=models)
    with pytest.raises(ValueError, match="expected one of"):
        parse_arg("model=sngan", model=models)
    with pytest.raises(ValueError, match="unknown config argument 'sngan'"):
        parse_arg("sngan", model=models)


def test_harness_config_states_the_defaults_once():
    config = harness_config("train.test_trainer", total_steps=3, batch_size=8, log_every=1)
    assert config.to_dict() == {**HARNESS_DEFAULTS, "task": "train.test_trainer", "total_steps": 3, "batch_size": 8,
                                "log_every": 1}


def test_a_given_key_replaces_the_seed_and_no_workdir_writes_nothing(tmp_path, monkeypatch):
    """`train(..., key=jax.random.key(3))` is the run of seed 3 (recorded in config.json); without a
    work dir the same run returns the same state and writes nothing."""
    config = tiny_config(total_steps=4, ckpt_every=0)
    seeded = train(config, tmp_path / "seeded", task=make_task(config))
    keyed = train(tiny_config(total_steps=4, ckpt_every=0, seed=0), tmp_path / "keyed", task=make_task(config),
                  key=jax.random.key(3))
    assert_trees_close(keyed, seeded, rtol=0, atol=0)
    assert json.loads((tmp_path / "keyed" / "config.json").read_text())["key"] == [0, 3]
    monkeypatch.chdir(tmp_path / "seeded")  # anything written relative to the current directory shows up here
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    in_memory = train(config, None, task=make_task(config))
    assert_trees_close(in_memory, seeded, rtol=0, atol=0)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_sharding_rules_first_match_wins_and_default_replicates():
    mesh = make_mesh([("data", -1)])
    tree = {"g": {"w": jax.ShapeDtypeStruct((4, 8), jnp.float32), "b": jax.ShapeDtypeStruct((8,), jnp.float32)}}
    rules = [(r"g/w", P("data")), (r"g/.*", P(None))]
    specs = jax.tree.map(lambda s: s.spec, tree_shardings(tree, mesh, rules))
    assert specs == {"g": {"w": P("data"), "b": P(None)}}
    assert jax.tree.map(lambda s: s.spec, tree_shardings(tree, mesh)) == {"g": {"w": P(), "b": P()}}
    with pytest.raises(ValueError, match="has only 1 dimensions"):
        tree_shardings(tree, mesh, [(r".*", P(None, "data"))])
    with pytest.raises(ValueError, match="needs 64 devices"):
        make_mesh([("data", 64)])


@pytest.mark.slow  # subprocesses
def test_eight_devices_match_one_device(tmp_path):
    """Data-parallel with a sharded w1 on 8 simulated devices gives the 1-device losses and params."""
    script = f"""
    import jax, numpy as np
    from train.test_trainer import tiny_config, make_task
    from latentjax.train import train
    from latentjax.train.metrics import read_metrics
    results = {{}}
    for n in (8, 1):
        config = tiny_config(mesh=(("data", n),), total_steps=5, ckpt_every=0)
        state = train(config, {str(tmp_path)!r} + f"/d{{n}}", task=make_task(config))
        w1 = state["state"]["params"]["w1"]
        assert len(w1.sharding.device_set) == n and state["state"]["opt"][0].mu["w1"].sharding.spec[1] == "data"
        results[n] = (jax.tree.map(np.asarray, state["state"]["params"]),
                      [r["loss"] for r in read_metrics({str(tmp_path)!r} + f"/d{{n}}") if "loss" in r])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), results[8][0], results[1][0])
    np.testing.assert_allclose(results[8][1], results[1][1], rtol=1e-5)
    assert len(results[1][1]) == 5
    print("ok")
    """
    assert run_python(script, devices=8).strip().endswith("ok")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # subprocesses
def test_two_processes_agree_with_one(tmp_path):
    """2 processes x 2 devices over jax.distributed (loopback, CPU collectives) = 1 process, 1 device."""
    port = _free_port()
    script = f"""
    import os, jax, numpy as np
    jax.distributed.initialize("127.0.0.1:{port}", num_processes=2, process_id=int(os.environ["TEST_PROCESS_ID"]))
    from jax.experimental import multihost_utils
    from train.test_trainer import tiny_config, make_task
    from latentjax.train import train
    config = tiny_config(total_steps=6, ckpt_every=3)
    assert jax.device_count() == 4 and jax.process_count() == 2
    state = train(config, {str(tmp_path / "multi")!r}, task=make_task(config))
    params = multihost_utils.process_allgather(state["state"]["params"], tiled=True)
    np.savez({str(tmp_path)!r} + f"/params{{jax.process_index()}}.npz", **params)
    print("ok")
    """
    procs = [run_python(script, devices=2, env={"TEST_PROCESS_ID": str(pid)}, wait=False) for pid in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-4000:]
    config = tiny_config(total_steps=6, ckpt_every=0)
    single = train(config, tmp_path / "single", task=make_task(config))["state"]["params"]
    p0, p1 = (dict(np.load(tmp_path / f"params{i}.npz")) for i in range(2))
    assert_trees_close(p0, p1, rtol=0, atol=0)
    assert_trees_close(p0, single, rtol=1e-5, atol=1e-6)
    assert open_manager(tmp_path / "multi").latest_step() == 6


@pytest.mark.slow  # subprocesses
def test_killed_run_resumes_to_the_uninterrupted_state(tmp_path):
    """SIGKILL at the step-8 checkpoint; rerunning resumes from step 4 and ends where an uninterrupted
    run of the same config ends; metrics.jsonl keeps one history."""
    config = tiny_config(total_steps=12, ckpt_every=4)
    run_killed(f"""
        import ml_collections
        from latentjax.train import load_task, train
        config = ml_collections.ConfigDict({config.to_dict()!r})
        train(config, {str(tmp_path / "killed")!r}, task=load_task(config))
        """, kill_at_checkpoint=8)
    assert open_manager(tmp_path / "killed").latest_step() == 4
    resumed = train(config, tmp_path / "killed", task=make_task(config))
    straight = train(config, tmp_path / "straight", task=make_task(config))
    assert int(resumed["step"]) == int(straight["step"]) == 12
    assert_trees_close(resumed["state"], straight["state"])
    history = [r for r in read_metrics(tmp_path / "killed") if "loss" in r]
    assert [r["step"] for r in history] == list(range(1, 13))
    np.testing.assert_allclose([r["loss"] for r in history],
                               [r["loss"] for r in read_metrics(tmp_path / "straight") if "loss" in r], rtol=1e-6)
    assert json.loads((tmp_path / "killed" / "config.json").read_text())["total_steps"] == 12


def write_and_resume(workdir):
    """Log steps 1-4, then resume from step 2 and log step 3 and an image."""
    writer = MetricWriter(workdir)
    for step in range(1, 5):
        writer.scalars(step, {"loss": step / 4})
    writer.close()
    writer = MetricWriter(workdir, first_step=2)
    writer.scalars(3, {"loss": 0.125})
    writer.images(3, "samples", np.zeros((4, 8, 8, 3), np.float32))
    writer.close()


def test_metric_writer_keeps_one_history_across_a_resume(tmp_path):
    write_and_resume(tmp_path)
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path)] == [(1, 0.25), (2, 0.5), (3, 0.125)]
    assert (tmp_path / "samples" / "samples_0000003.png").is_file()


def test_metric_writer_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto.event_pb2 import Event

    write_and_resume(tmp_path)
    values = []
    for path in sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*")):
        data = path.read_bytes()
        while data:  # TFRecord framing: length (8 bytes), crc (4), payload, crc (4)
            length = int.from_bytes(data[:8], "little")
            event = Event.FromString(data[12:12 + length])
            data = data[16 + length:]
            values += [(event.step, v.tag, v.simple_value if v.HasField("simple_value") else "image")
                       for v in event.summary.value]
    # The resumed file repeats nothing; TensorBoard itself drops the first file's step 3 and 4
    # (purge_step), which the file keeps.
    assert values == [(1, "loss", 0.25), (2, "loss", 0.5), (3, "loss", 0.75), (4, "loss", 1.0),
                      (3, "loss", 0.125), (3, "samples", "image")]


def test_a_signal_stops_the_run_after_a_saved_step_and_it_resumes_exactly(tmp_path, monkeypatch):
    """SIGTERM sent while step 5 is logged: the run returns at step 5 with a checkpoint there (ckpt_every
    4 would have saved step 4 only), the handlers are restored, and resuming ends where an
    uninterrupted run ends."""
    config = tiny_config(total_steps=12, ckpt_every=4)
    scalars = MetricWriter.scalars

    def scalars_then_signal(self, step, values):
        scalars(self, step, values)
        if step == 5 and "loss" in values:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(MetricWriter, "scalars", scalars_then_signal)
    handler = signal.getsignal(signal.SIGTERM)
    stopped = train(config, tmp_path / "stopped", task=make_task(config))
    assert int(stopped["step"]) == 5
    assert open_manager(tmp_path / "stopped").latest_step() == 5
    assert signal.getsignal(signal.SIGTERM) == handler
    monkeypatch.setattr(MetricWriter, "scalars", scalars)
    resumed = train(config, tmp_path / "stopped", task=make_task(config))
    straight = train(config, tmp_path / "straight", task=make_task(config))
    assert int(resumed["step"]) == 12
    assert_trees_close(resumed["state"], straight["state"])


def test_a_second_signal_reaches_the_handler_there_before_and_an_ignored_one_stays_ignored():
    """The first SIGUSR1 is only recorded, the second reaches the handler installed before the block,
    which is back after it; an ignored SIGUSR2 is neither recorded nor handled."""
    seen = []

    def handler(signum, frame):
        seen.append(signum)

    previous = signal.signal(signal.SIGUSR1, handler), signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with stop_requests((signal.SIGUSR1, signal.SIGUSR2)) as requested:
            os.kill(os.getpid(), signal.SIGUSR2)
            os.kill(os.getpid(), signal.SIGUSR1)
            assert requested == [signal.SIGUSR1] and seen == []
            os.kill(os.getpid(), signal.SIGUSR1)
            assert seen == [signal.SIGUSR1]
        assert signal.getsignal(signal.SIGUSR1) is handler
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, previous[0])
        signal.signal(signal.SIGUSR2, previous[1])
