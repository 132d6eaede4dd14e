"""Voynov & Babenko's learned directions: shifts, deformators, reconstructors, the task on the harness.

The task's tests run on a toy space whose coordinates paint separate blocks of a 32x32 image
(`PaintSpace`: a step compiles in seconds, and its directions are easy, so the reconstructor
must learn them within 150 steps); real generators are trained by the slow tests (the
`stylegan2,smoke` config through the command line, and an 8x8 random StyleGAN2 on 8 simulated
devices against 1) and every config variant builds its task.
"""

import dataclasses
import importlib
import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import latentjax as lj
from latentjax.cli import main as cli_main
from latentjax.directions import Directions
from latentjax.directions.learned import DIRECTIONS_FILE, train_config
from latentjax.latent import LatentSpace, latent_space, standard_normal
from latentjax.models import StyleGAN2, StyleGAN2Config
from latentjax.nn.reconstructor import LeNetReconstructor, ResNet18Reconstructor, make_reconstructor, resolve
from latentjax.train.checkpoint import open_manager, read_state
from latentjax.train.metrics import read_metrics
from latentjax.train.trainer import train
from support import FIXTURES, REPO, random_params, run_python

vy = importlib.import_module("latentjax.directions.voynov")  # the module (the package exports the function)

SMALL = dict(k=4, batch_size=8, eval_per_direction=2, grid_size=0, fc_inner_dim=16, reconstructor="lenet")


TINY = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 8), mapping_layers=1)


@pytest.fixture(scope="module")
def tiny_generator():
    return StyleGAN2(TINY, random_params(TINY, seed=1))


def settings(**overrides) -> vy.VoynovConfig:
    return vy.VoynovConfig(**{**SMALL, "steps": 4, **overrides})


# ----------------------------------------------------------------------------------------------
# Shifts
# ----------------------------------------------------------------------------------------------

def test_shifts_are_clamped_away_from_zero_keeping_their_sign():
    key = jax.random.key(0)
    n, scale, low = 20_000, 6.0, 0.5
    indices, eps = (np.asarray(x) for x in vy.make_shifts(key, n, 5, scale, low))
    raw = scale * np.asarray(jax.random.uniform(jax.random.split(key)[1], (n,), jnp.float32, -1.0, 1.0))
    expected = np.where((raw > 0) & (raw < low), low, np.where((raw < 0) & (raw > -low), -low, raw))
    np.testing.assert_array_equal(eps, expected)
    assert np.all(np.abs(eps) >= low) and np.all(np.abs(eps) <= scale)
    assert np.all(np.sign(eps) == np.sign(raw))
    np.testing.assert_allclose(np.mean(np.abs(eps) == low), low / scale, atol=0.01)  # P(|U| < 0.5 / 6)
    assert set(np.unique(indices)) == set(range(5))
    np.testing.assert_allclose(np.bincount(indices) / n, 0.2, atol=0.01)

    normal = np.asarray(vy.sample_shifts(key, n, 2.0, 0.0, "normal"))
    np.testing.assert_allclose(normal, 2.0 * np.asarray(jax.random.normal(key, (n,))), rtol=1e-6)
    with pytest.raises(ValueError, match="shift_distribution"):
        vy.sample_shifts(key, 4, 1.0, 0.1, "laplace")


# ----------------------------------------------------------------------------------------------
# Deformators: the reference's definitions
# ----------------------------------------------------------------------------------------------

def deformator(kind, k=3, dim=5, **kwargs):
    module = vy.Deformator(kind, k, dim, **kwargs)
    return module, module.init(jax.random.key(2), jnp.zeros((2, k)), train=False)


def test_linear_and_proj_start_identity_padded_with_a_bias():
    for kind in ("linear", "proj"):
        module, variables = deformator(kind)
        np.testing.assert_array_equal(variables["params"]["weight"], np.eye(5, 3))
        bias = np.asarray(variables["params"]["bias"])
        assert bias.shape == (5,) and np.all(np.abs(bias) <= 1 / np.sqrt(3)) and np.any(bias != 0)
    module, variables = deformator("linear", k=64, dim=64, random_init=True, bias=False)
    weight = np.asarray(variables["params"]["weight"])
    assert "bias" not in variables["params"] and abs(weight.std() - 0.1) < 0.005 and abs(weight.mean()) < 0.005

    x = jnp.array([[0.0, -2.5, 0.0], [1.5, 0.0, 0.0]])
    module, variables = deformator("linear")
    out = module.apply(variables, x)
    np.testing.assert_allclose(out, np.asarray(x) @ np.eye(5, 3).T + np.asarray(variables["params"]["bias"]),
                               rtol=1e-6)
    module, variables = deformator("proj")
    out = np.asarray(module.apply(variables, x))
    linear = np.asarray(x) @ np.eye(5, 3).T + np.asarray(variables["params"]["bias"])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [2.5, 1.5], rtol=1e-6)  # the input's norm
    np.testing.assert_allclose(out / np.linalg.norm(out, axis=1, keepdims=True),
                               linear / np.linalg.norm(linear, axis=1, keepdims=True), rtol=1e-5)


def test_ortho_is_the_exponential_of_a_skew_matrix_from_a_small_or_unit_normal_log():
    for random_init, std in ((False, 0.001), (True, 1.0)):
        module, variables = deformator("ortho", k=40, dim=48, random_init=random_init)
        log = np.asarray(variables["params"]["log_mat_half"], np.float64)
        assert log.shape == (48, 48) and abs(log.std() / std - 1) < 0.03
        expected = scipy.linalg.expm(log - log.T)[:, :40]  # float64 reference: inputs padded to D
        x = np.eye(40)[[3, 17]] * np.array([[2.0], [-1.0]])
        np.testing.assert_allclose(module.apply(variables, jnp.asarray(x, jnp.float32)), x @ expected.T, atol=2e-5)


def test_id_random_and_fc():
    module, variables = deformator("id")
    assert variables == {}
    np.testing.assert_array_equal(module.apply(variables, jnp.array([[1.0, 2.0, 3.0]])), [[1, 2, 3, 0, 0]])

    module, variables = deformator("random")
    assert "params" not in variables  # fixed: nothing to train
    matrix = np.asarray(variables["constants"]["matrix"], np.float64)
    assert matrix.shape == (5, 3)
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(3), atol=1e-6)  # orthonormal columns

    module, variables = deformator("fc", k=3, dim=5, inner_dim=16)
    shapes = {name: tuple(p["kernel"].shape) for name, p in variables["params"].items() if "kernel" in p}
    assert shapes == {"TorchDense_0": (3, 16), "TorchDense_1": (16, 16), "TorchDense_2": (16, 16),
                      "TorchDense_3": (16, 5)}
    assert len(variables["batch_stats"]) == 3
    # The output is the last layer's plus the (zero-padded) input.
    x = jnp.array([[0.0, 3.0, 0.0]])
    zero_last = jax.tree.map(jnp.zeros_like, variables["params"]["TorchDense_3"])
    variables = {**variables, "params": {**variables["params"], "TorchDense_3": zero_last}}
    np.testing.assert_allclose(module.apply(variables, x, train=False), [[0, 3, 0, 0, 0]], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Reconstructors
# ----------------------------------------------------------------------------------------------

def test_resnet18_reconstructor_has_torchvisions_parameters():
    k = 7
    model = ResNet18Reconstructor(k)
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    variables = jax.eval_shape(lambda a, b: model.init(jax.random.key(0), a, b), x, x)
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))
    # torchvision resnet18: 11,689,512 parameters with a 3-channel stem and a 1000-way fc;
    # here a 6-channel stem (+ 64 * 3 * 7 * 7) and heads Linear(512, K) + Linear(512, 1).
    assert count == 11_689_512 - (512 * 1000 + 1000) + 64 * 3 * 49 + (512 * k + k) + (512 + 1)
    logits, shift = jax.eval_shape(lambda v, a, b: model.apply(v, a, b, train=False), variables, x, x)
    assert logits.shape == (2, k) and shift.shape == (2,)


def test_lenet_reconstructor_and_auto_choice():
    model = LeNetReconstructor(5)
    x = jnp.zeros((3, 32, 32, 3))
    variables = jax.jit(lambda a: model.init(jax.random.key(0), a, a, train=False))(x)
    kernels = [tuple(v["kernel"].shape) for name, v in sorted(variables["params"].items()) if name.startswith("Conv")]
    assert kernels == [(5, 5, 6, 6), (5, 5, 6, 16), (5, 5, 16, 120)]
    bound = 1 / np.sqrt(5 * 5 * 6)  # PyTorch's default init: U(+-1/sqrt(fan_in))
    first = np.asarray(variables["params"]["Conv_0"]["kernel"])
    assert np.abs(first).max() <= bound and np.abs(first).max() > 0.9 * bound
    (logits, shift), updates = jax.eval_shape(lambda v, a: model.apply(v, a, a, train=True, mutable=["batch_stats"]),
                                              variables, x)
    assert logits.shape == (3, 5) and shift.shape == (3,) and "batch_stats" in updates
    with pytest.raises(ValueError, match="reconstructor_size=32"):
        jax.eval_shape(lambda a: LeNetReconstructor(5).init(jax.random.key(0), a, a), x[:, :16, :16])
    assert resolve("auto", 32) == ("lenet", 0) and resolve("auto", 64) == ("resnet18", 0)
    assert resolve("auto", 8) == ("lenet", 32) and resolve("auto", 256, 32) == ("lenet", 32)
    assert isinstance(make_reconstructor("resnet18", 3, 16), ResNet18Reconstructor)
    with pytest.raises(ValueError, match="reconstructor must be one of"):
        resolve("vgg", 32)


# ----------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------

class PaintGenerator:
    """A toy generator: coordinate i of an n-d latent paints its own block of a 32x32 image."""

    family, c_dim = "toy", 0

    def __init__(self, n: int):
        side = int(np.sqrt(n))
        block = 32 // side
        masks = np.zeros((n, 32, 32, 3), np.float32)
        for i in range(n):
            row, col = divmod(i, side)
            masks[i, block * row:block * (row + 1), block * col:block * (col + 1)] = 1.0
        self.params = {"masks": jnp.asarray(masks)}


class PaintSpace(LatentSpace):
    family, names = "toy", ("z",)

    shape = property(lambda self: (self.generator.params["masks"].shape[0],))
    prior = property(lambda self: standard_normal(self.shape[0]))

    def sample(self, key, n, params=None):
        return jax.random.normal(key, (n,) + self.shape)

    def decode(self, params, latent):
        return jnp.tanh(jnp.einsum("nd,dhwc->nhwc", latent, params["masks"]) / 4)


def paint_space(n: int = 4) -> PaintSpace:
    return PaintSpace(PaintGenerator(n), "z", {})


def run_steps(task, n, seed=0):
    state = jax.jit(task.init)(jax.random.key(seed))
    step = jax.jit(task.step)
    history = []
    for i in range(n):
        state, metrics = step(state, None, jax.random.fold_in(jax.random.key(seed + 1), i), jnp.int32(i))
        history.append({k: float(v) for k, v in metrics.items()})
    return state, history


def test_ortho_stays_orthogonal_while_training():
    task = vy.build_task(paint_space(16), settings(k=12, deformator="ortho", random_init=True, deformator_lr=0.05))
    state, history = run_steps(task, 5)
    start = jax.jit(task.init)(jax.random.key(0))["deformator"]["params"]["log_mat_half"]
    log = state["deformator"]["params"]["log_mat_half"]
    assert float(jnp.abs(log - start).max()) > 0.1  # trained, not only initialised
    matrix = np.asarray(vy.ortho_matrix(log))
    assert np.abs(matrix.T @ matrix - np.eye(16)).max() < 1e-5
    assert all(np.isfinite(list(h.values())).all() for h in history)


def test_fixed_deformators_are_not_trained():
    task = vy.build_task(paint_space(), settings(deformator="random"))
    state, _ = run_steps(task, 2)
    assert "deformator_opt" not in state
    np.testing.assert_array_equal(state["deformator"]["constants"]["matrix"],
                                  jax.jit(task.init)(jax.random.key(0))["deformator"]["constants"]["matrix"])


def test_settings_are_checked(tiny_generator):
    space = latent_space(tiny_generator, "w")
    for overrides, message in [({"deformator": "conv"}, "deformator must be one of"),
                               ({"k": 9}, r"k must be in \[0, 8\]"),
                               ({"shift_distribution": "cauchy"}, "shift_distribution"),
                               ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ValueError, match=message):
            vy.build_task(space, settings(**overrides))
    with pytest.raises(ValueError, match="unknown VoynovConfig keys"):
        vy.VoynovConfig.from_dict({"directions_count": 3})


def test_reconstructor_learns_the_directions_of_an_easy_toy():
    """Orthogonal mixtures of the four quarters are easy to tell apart: the loss falls and RCA
    (eval mode) ends far above chance (0.25)."""
    task = vy.build_task(paint_space(), settings(k=0, batch_size=32, reconstructor_lr=1e-3, deformator_lr=1e-3,
                                                 random_init=True, eval_per_direction=64))
    state, history = run_steps(task, 150)
    first, last = np.mean([h["loss"] for h in history[:10]]), np.mean([h["loss"] for h in history[-10:]])
    assert last < 0.5 * first
    results = jax.jit(task.evaluate)(state, jax.random.key(5))
    assert float(results["rca"]) > 0.9 and float(results["rca_min"]) > 0.7


def test_trains_resumes_and_exports_loadable_directions(tmp_path):
    """`voynov` trains 4 steps in a work dir (the same as without one, which writes nothing); the
    harness resumes there to step 6 and exports what `voynov` on the finished work dir returns."""
    space = paint_space()
    chosen = settings(k=3, steps=4, grid_size=2)
    first = vy.voynov(space, chosen, workdir=tmp_path)
    assert first.settings["step"] == 4 and len(first) == 3
    assert not (tmp_path / DIRECTIONS_FILE).exists()  # returned, not read back from the work dir
    in_memory = vy.voynov(space, chosen)
    np.testing.assert_array_equal(in_memory.vectors, first.vectors)
    np.testing.assert_array_equal(in_memory.scores, first.scores)
    chosen = dataclasses.replace(chosen, steps=6)
    config = train_config("latentjax.directions.voynov", chosen, ckpt_every=2, keep_ckpts=3, log_every=1,
                          eval_every=1)
    train(config, tmp_path, task=vy.build_task(space, chosen))  # resumes from step 4
    assert [r["step"] for r in read_metrics(tmp_path) if "loss" in r] == [4, 5, 6]
    assert open_manager(tmp_path).all_steps() == [4, 6]

    directions = Directions.load(tmp_path / DIRECTIONS_FILE)
    final = read_state(tmp_path)["state"]
    log = np.asarray(final["deformator"]["params"]["log_mat_half"], np.float64)
    columns = scipy.linalg.expm(log - log.T)[:, :3].T
    order = directions.settings["deformator_index"]
    assert sorted(order) == [0, 1, 2] and directions.settings["step"] == 6
    np.testing.assert_allclose(directions.vectors, columns[order], atol=1e-5)
    assert np.all(np.diff(directions.scores) <= 0) and np.all((directions.scores >= 0) & (directions.scores <= 1))
    assert directions.method == "voynov" and directions.vectors.shape == (3, 4) and directions.space == {"name": "z"}
    assert directions.settings["deformator"] == "ortho" and 0 <= directions.settings["rca"] <= 1
    evals = [r for r in read_metrics(tmp_path) if "eval/rca" in r]
    assert [r["step"] for r in evals] == [4, 5, 6] and "eval/rca_dir/2" in evals[0]
    assert (tmp_path / "samples" / "samples_0000000.png").is_file()
    again = vy.voynov(space, chosen, workdir=tmp_path)  # nothing left to train: the same directions
    np.testing.assert_array_equal(again.vectors, directions.vectors)
    np.testing.assert_array_equal(again.scores, directions.scores)
    assert again.settings == directions.settings


@pytest.mark.parametrize("kind", ["fc", "linear", "proj"])
def test_exported_directions_carry_the_trained_edit_scale(kind):
    """Rows are the normalised edits A(6 e_k) - A(0); `trained_shift` gives back A(eps e_k): exactly
    for `linear` (a bias, unnormalised columns), to first order around the shift scale otherwise."""
    chosen = settings(deformator=kind)
    task = vy.build_task(paint_space(), chosen)
    state = jax.tree.map(np.asarray, jax.jit(task.init)(jax.random.key(0)))
    if kind == "linear":  # columns of different lengths and a bias, as after training
        params = state["deformator"]["params"]
        state["deformator"]["params"] = {"weight": params["weight"] * np.array([0.5, 1, 2, 3]), "bias": params["bias"]}
    directions = task.result({"step": 0, "state": state})
    order = directions.settings["deformator_index"]
    module = vy.make_deformator(chosen, 4)
    apply = lambda x: np.asarray(module.apply(state["deformator"], x, train=False), np.float64)
    response = apply(6.0 * jnp.eye(4)) - apply(jnp.zeros((1, 4)))
    expected = response / np.linalg.norm(response, axis=1, keepdims=True)
    np.testing.assert_allclose(directions.vectors, expected[order], atol=1e-5)
    np.testing.assert_allclose(vy.trained_shift(directions, 6.0), apply(6.0 * jnp.eye(4))[order], atol=1e-5)
    if kind == "linear":
        np.testing.assert_allclose(vy.trained_shift(directions, -2.5), apply(-2.5 * jnp.eye(4))[order], atol=1e-5)
        np.testing.assert_allclose(directions.settings["shift_norms"],
                                   np.linalg.norm(state["deformator"]["params"]["weight"], axis=0)[order], rtol=1e-5)
    with pytest.raises(ValueError, match="trained scale"):
        vy.trained_shift(Directions(directions.vectors, directions.scores, directions.space, "sefa"), 1.0)


def test_defaults_are_the_reference_run_scripts():
    """GANLatentDiscovery's run_train.py: ortho deformator from random_init=True, ResNet-18 reconstructor
    (LeNet only when asked), K = the latent dimension, batch 32, 100K steps, Adam 1e-4 for both."""
    d = vy.VoynovConfig()
    assert (d.deformator, d.random_init, d.reconstructor, d.k, d.batch_size, d.steps) == \
        ("ortho", True, "resnet18", 0, 32, 100_000)
    assert (d.deformator_lr, d.reconstructor_lr, d.shift_scale, d.min_shift, d.label_weight, d.shift_weight) == \
        (1e-4, 1e-4, 6.0, 0.5, 1.0, 0.25)


# ----------------------------------------------------------------------------------------------
# Configs and the command line
# ----------------------------------------------------------------------------------------------

FIXTURE_GENERATORS = {"stylegan2": "stylegan2/ada_s32_snapshot.pkl", "biggan": "biggan/deep_tiny",
                      "pggan": "pggan/pgan_tiny.pth"}


def get_config(arg):
    """configs/voynov.py's config; the model variants (which need --config.generator) get a fixture."""
    spec = importlib.util.spec_from_file_location("voynov_config", REPO / "configs" / "voynov.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg)
    model = next((word for word in FIXTURE_GENERATORS if word in (arg or "")), None)
    assert config.generator == ("" if model else "builtin:shapes")
    if model:
        config.generator = str(FIXTURES / FIXTURE_GENERATORS[model])
    return config


@pytest.mark.parametrize("word", ["shapes", "stylegan2", "biggan", "pggan"])
def test_every_config_variant_builds_a_task(word):
    config = get_config(f"{word},smoke")
    task = vy.make_task(config)
    state = jax.eval_shape(task.init, jax.random.key(0))
    assert jax.tree.leaves(state["generator"]) and state["reconstructor_opt"] is not None
    full = get_config(word)
    assert (full.settings.shift_scale, full.settings.min_shift, full.batch_size) == (6.0, 0.5, 32)
    assert full.total_steps == full.settings.steps == (8000 if word == "shapes" else 100_000)
    assert config.settings.steps == config.total_steps == 4


def test_config_steps_are_one_field():
    """`--config.total_steps` and `--config.settings.steps` are one value; a config that unties them
    is refused."""
    config = get_config("smoke")
    config.total_steps = 3
    assert config.settings.steps == 3
    config.settings.batch_size = 4
    assert config.batch_size == 4
    untied = vy.VoynovConfig(**{**config.settings.to_dict(), "steps": 5})
    config.settings = untied.to_dict()
    with pytest.raises(ValueError, match="total_steps"):
        vy.make_task(config)


def test_config_refuses_two_models():
    with pytest.raises(ValueError, match="pick one model"):
        get_config("biggan,pggan")


def test_cli_trains_the_stylegan2_smoke_config(tmp_path, tiny_generator_dir):
    assert cli_main(["train", "--config", f"{REPO}/configs/voynov.py:stylegan2,smoke",
                     f"--config.generator={tiny_generator_dir}", "--workdir", str(tmp_path)]) == 0
    directions = Directions.load(tmp_path / DIRECTIONS_FILE)
    G = lj.load_generator(tiny_generator_dir)
    assert directions.vectors.shape == (4, G.w_dim) and directions.space["name"] == "w"
    assert json.loads((tmp_path / "config.json").read_text())["task"] == "latentjax.directions.voynov"


@pytest.mark.slow  # subprocesses
def test_eight_devices_match_one_device(tmp_path):
    """Sharded over 8 simulated devices, the losses and the train state (batch statistics included)
    are those of one device to float32 tolerance."""
    script = f"""
    import re
    import jax, numpy as np
    import importlib
    vy = importlib.import_module("latentjax.directions.voynov")
    from latentjax.directions.learned import train_config
    from latentjax.latent import latent_space
    from latentjax.models import StyleGAN2
    from latentjax.train import train
    from latentjax.train.metrics import read_metrics
    from latentjax.sharding import path_name
    from support import random_params
    from directions.test_voynov import TINY
    G = StyleGAN2(TINY, random_params(TINY, seed=1))
    chosen = vy.VoynovConfig(**{SMALL!r}, steps=3, deformator="linear")
    results = {{}}
    for n in (8, 1):
        config = train_config("latentjax.directions.voynov", chosen, mesh=(("data", n),), ckpt_every=0, log_every=1)
        state = train(config, {str(tmp_path)!r} + f"/d{{n}}", task=vy.build_task(latent_space(G, "w"), chosen))
        history = read_metrics({str(tmp_path)!r} + f"/d{{n}}")
        results[n] = (jax.tree.map(np.asarray, state["state"]),
                      [[r[k] for k in ("loss", "label_loss", "shift_loss")] for r in history if "loss" in r])
    # The LeNet biases that feed a batch norm have a zero gradient up to rounding, which Adam
    # turns into steps of +-lr: they (and the running means they shift) may differ by up to
    # 2 lr per step between summation orders. Batch norm removes them from everything else.
    loose = re.compile(r"reconstructor/(params/(Conv_\\d|TorchDense_[02])/bias|batch_stats/BatchNorm_\\d/mean)")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(results[8][0]), jax.tree.leaves(results[1][0])):
        atol = 2 * 3 * chosen.reconstructor_lr if loose.fullmatch(path_name(path)) else 1e-5
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol, err_msg=path_name(path))
    np.testing.assert_allclose(results[8][1], results[1][1], rtol=1e-5)
    assert len(results[1][1]) == 3
    print("ok")
    """
    assert run_python(script, devices=8).strip().endswith("ok")
