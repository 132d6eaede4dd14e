"""The recognition network and its training task: architecture checks, pure functions, the directory
format, the shapes labels, regression targets, accuracy and errors, short training runs that must
learn (a class head, a value head), the assessor as a scorer, and the world probe."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.errors import CheckpointError
from latentjax.nn.recognizer import Recognizer, RecognizerConfig, load_recognizer, save_recognizer
from latentjax.shapes import world
from latentjax.shapes.concepts import concept_masks, world_probe
from latentjax.shapes.recognition import (VALUE_HEADS, accuracy, assessor_scorer, factor_labels, head_classes,
                                          value_errors, value_targets)
from latentjax.tasks.recognizer import make_task

from support import REPO

_spec = importlib.util.spec_from_file_location(
    "train_recognizer", REPO / "configs" / "train_recognizer.py")
train_recognizer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_recognizer)

CONFIG = RecognizerConfig(img_resolution=16, img_channels=3, head_names=("shape", "hue"), head_classes=(3, 4),
                          width=4, depth=2)


@pytest.fixture(scope="module")
def net():
    return Recognizer.init(CONFIG, jax.random.key(0))


@pytest.mark.parametrize("changes, message", [
    (dict(head_names=("shape",)), "one per entry"),
    (dict(head_names=("a", "a")), "distinct"),
    (dict(head_classes=(3, 0)), "outputs per head"),
    (dict(width=0), "width"),
    (dict(img_resolution=12), "power of two"),
    (dict(depth=6), "poolings"),
])
def test_config_refuses_bad_architectures(changes, message):
    with pytest.raises(ValueError, match=message):
        RecognizerConfig.from_dict({**CONFIG.to_dict(), **changes})


def test_logits_and_features_are_pure_jittable_and_differentiable(net):
    images = world.sample(jax.random.key(1), 5, 16)[0]
    logits = jax.jit(net.logits)(net.params, images)
    assert {k: v.shape for k, v in logits.items()} == {"shape": (5, 3), "hue": (5, 4)}
    one = jax.vmap(lambda x: net.logits(net.params, x[None])["hue"][0])(images)
    np.testing.assert_allclose(one, logits["hue"], rtol=1e-5, atol=1e-6)
    features = net.features(net.params, images, ["conv1", "conv2"])
    assert features["conv1"].shape == (5, 16, 16, 4) and features["conv2"].shape == (5, 8, 8, 8)
    assert bool(jnp.all(features["conv1"] >= 0))  # after the ReLU
    grad = jax.grad(lambda x: net.logits(net.params, x)["shape"].sum())(images)
    assert grad.shape == images.shape and float(jnp.abs(grad).sum()) > 0
    with pytest.raises(ValueError, match="conv3"):
        net.features(net.params, images, ["conv3"])
    with pytest.raises(ValueError, match=r"\[N, 16, 16, 3\]"):
        net.logits(net.params, images[:, :8])


def test_directory_round_trip_and_damaged_config(net, tmp_path):
    net.metadata["step"] = 7
    path = save_recognizer(net, tmp_path / "r")
    back = load_recognizer(path)
    assert back.config == CONFIG and back.metadata == {"step": 7}
    images = world.sample(jax.random.key(2), 3, 16)[0]
    np.testing.assert_array_equal(back.logits(back.params, images)["shape"], net.logits(net.params, images)["shape"])
    text = (path / "config.json").read_text().replace('"width": 4', '"width": 8')
    (path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="do not match the config"):
        load_recognizer(path)


def test_builtin_recognizer_loads_and_recognises_the_world():
    net = load_recognizer("builtin:shapes_recognizer")
    heads = net.config.head_names
    acc, held_out = (accuracy(net, net.params, jax.random.key(3), heads=heads, bins=net.metadata["bins"],
                              num_samples=512, ranges={"scale": scales}) for scales in ((0.0, 0.6), (0.6, 1.0)))
    assert acc["hue"] > 0.9 and acc["shape"] > 0.9, acc  # chance: 1/6 and 1/3
    assert held_out["shape"] > 0.8, held_out  # the form, not the area: an area shortcut is at chance on larger objects


def test_builtin_assessor_loads_and_estimates_the_world():
    net = load_recognizer("builtin:shapes_assessor")
    heads = net.config.value_heads
    assert heads == ("x", "y", "scale", "background", "hue_cos", "hue_sin") == assessor_scorer(net).names
    errors = value_errors(net, net.params, jax.random.key(3), heads=heads, num_samples=256)
    assert max(errors.values()) < 0.05, errors  # a constant guess: 0.25 for x (uniform on [0, 1))


def test_sample_factors_in_ranges_moves_the_same_draw():
    key = jax.random.key(4)
    free = world.sample_factors(key, 200)
    held = world.sample_factors(key, 200, {"scale": (0.6, 1.0), "hue": (0.0, 0.5)})
    np.testing.assert_allclose(held["scale"], 0.6 + 0.4 * free["scale"], rtol=1e-6)
    np.testing.assert_allclose(held["hue"], 0.5 * free["hue"], rtol=1e-6)
    np.testing.assert_array_equal(held["x"], free["x"])
    np.testing.assert_array_equal(held["shape"], free["shape"])
    for bad, message in (({"shape": (0, 1)}, "not a continuous factor"), ({"x": (0.5, 0.2)}, "lo < hi"),
                         ({"x": 0.5}, "pair"), ([("x", (0, 1))], "dict")):
        with pytest.raises(ValueError, match=message):
            world.sample_factors(key, 4, bad)


def test_labels_and_accuracy_count_what_they_say(net):
    factors = {"shape": jnp.array([0, 2, 1]), "hue": jnp.array([0.0, 0.49, 0.999]), **{
        k: jnp.full(3, 0.5) for k in ("x", "y", "scale", "rotation", "background")}}
    labels = factor_labels(factors, ("shape", "hue"), 4)
    np.testing.assert_array_equal(labels["shape"], [0, 2, 1])
    np.testing.assert_array_equal(labels["hue"], [0, 1, 3])
    assert head_classes(("shape", "x"), 5) == (3, 5)
    with pytest.raises(ValueError, match="colour"):
        head_classes(("colour",), 4)
    key = jax.random.key(5)
    got = accuracy(net, net.params, key, heads=("shape", "hue"), bins=4, num_samples=64, batch_size=32)
    expected = {"shape": 0, "hue": 0}
    for i in range(2):
        f = world.sample_factors(jax.random.fold_in(key, i), 32)
        logits = net.logits(net.params, world.render(f, 16).images)
        for h, y in factor_labels(f, ("shape", "hue"), 4).items():
            expected[h] += int(jnp.sum(jnp.argmax(logits[h], -1) == y))
    assert got == {h: c / 64 for h, c in expected.items()}


def short_run(**changes):
    """The smoke config with `changes`, trained 150 steps: (task, final state, evaluation before, after)."""
    config = train_recognizer.get_config("smoke")
    config.update(width=8, lr=3e-3, batch_size=32, eval_size=256)
    for name, value in changes.items():  # (update would merge a None into a sub-config)
        setattr(config, name, value)
    task = make_task(config)
    state = task.init(jax.random.key(0))
    step = jax.jit(lambda s, k, i: task.step(s, task.batch(k), k, i))
    evaluate = jax.jit(task.evaluate)
    before = evaluate(state, jax.random.key(9))
    for i in range(150):
        state, _ = step(state, jax.random.key(i + 1), i)
    return task, state, before, evaluate(state, jax.random.key(9))


def test_a_short_training_run_learns_the_hue():
    task, state, before, after = short_run(heads=("hue",), bins=3)
    before = float(before["accuracy/hue"])
    assert float(after["accuracy/hue"]) > 0.85 > before + 0.2, (before, after)
    assert set(after) == {"accuracy/hue", "shifted_accuracy/hue"}
    assert task.result({"step": 150, "state": state}).config.head_names == ("hue",)


def test_task_refuses_bad_settings():
    config = train_recognizer.get_config("smoke")
    config.train_ranges.scale = (0.7, 0.2)
    with pytest.raises(ValueError, match="config.train_ranges"):
        make_task(config)
    config = train_recognizer.get_config("smoke")
    config.heads = ("size",)
    with pytest.raises(ValueError, match="size"):
        make_task(config)


def test_world_probe_gives_the_network_activations_and_exact_masks(net):
    key = jax.random.key(6)
    probe = world_probe(net.features, net.params, "conv2", key, resolution=16, num_samples=10, batch_size=4,
                        hue_bins=3, position_bins=2)
    batches = list(probe())
    assert len(batches) == 3 and len(list(probe())) == 3
    activations, masks = batches[1]
    f = world.sample_factors(jax.random.fold_in(key, 1), 4)
    np.testing.assert_allclose(activations, net.features(net.params, world.render(f, 16).images, ["conv2"])["conv2"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(masks, concept_masks(f, 16, hue_bins=3, position_bins=2))
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))[0].astype(np.float32)
    rotated = world_probe(net.features, net.params, "conv2", key, resolution=16, num_samples=10, batch_size=4,
                          hue_bins=3, position_bins=2, rotation=rotation)
    np.testing.assert_allclose(list(rotated())[1][0], activations @ rotation, rtol=1e-4, atol=1e-5)


def test_value_targets_regress_values_and_periodic_angles():
    factors = {"shape": jnp.array([0, 1]), "hue": jnp.array([0.0, 0.25]), "x": jnp.array([0.1, 0.9]),
               **{k: jnp.full(2, 0.5) for k in ("y", "scale", "rotation", "background")}}
    targets = value_targets(factors, ("x", "hue_cos", "hue_sin"))
    np.testing.assert_allclose(targets["x"], [0.1, 0.9])
    np.testing.assert_allclose(targets["hue_cos"], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(targets["hue_sin"], [0.0, 1.0], atol=1e-6)
    assert "hue" not in VALUE_HEADS and "shape" not in VALUE_HEADS and "rotation_sin" in VALUE_HEADS
    with pytest.raises(ValueError, match="hue"):
        value_targets(factors, ("hue",))  # periodic: only as its cosine and sine


def test_assessor_scorer_is_the_value_heads_and_differentiable():
    config = RecognizerConfig(img_resolution=16, img_channels=3, head_names=("shape", "x", "scale"),
                              head_classes=(3, 1, 1), width=4, depth=2)
    net = Recognizer.init(config, jax.random.key(0))
    assert config.value_heads == ("x", "scale")
    scorer = assessor_scorer(net)
    assert scorer.names == ("x", "scale") and scorer.differentiable
    images = world.sample(jax.random.key(1), 4, 16)[0]
    outputs = net.logits(net.params, images)
    np.testing.assert_array_equal(scorer(images), jnp.concatenate([outputs["x"], outputs["scale"]], -1))
    grad = jax.grad(lambda x: scorer.score(scorer.params, x)[:, 0].sum())(images)
    assert float(jnp.abs(grad).sum()) > 0
    errors = value_errors(net, net.params, jax.random.key(2), heads=("x",), num_samples=8, batch_size=8)
    f = world.sample_factors(jax.random.fold_in(jax.random.key(2), 0), 8)
    expected = jnp.mean(jnp.abs(net.logits(net.params, world.render(f, 16).images)["x"][:, 0] - f["x"]))
    assert errors["x"] == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="no value head"):
        assessor_scorer(Recognizer.init(CONFIG, jax.random.key(0)))


def test_a_short_training_run_learns_to_regress_x():
    task, state, before, after = short_run(heads=(), value_heads=("x",), shifted_ranges=None)
    before = float(before["error/x"])
    assert set(after) == {"error/x"}  # no shifted ranges: no shifted evaluation
    assert float(after["error/x"]) < 0.5 * before, (before, after)  # x uniform on [0, 1): mean error 0.25 at best
    assert task.result({"step": 150, "state": state}).config.value_heads == ("x",)
