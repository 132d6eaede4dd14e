"""GAN training on the shapes world, through `latentjax train` with the shrunk config.

The same losses and state on 8 simulated devices and on 1; a run SIGKILLed at a checkpoint resumes
to the state of an uninterrupted run; the exported EMA generator loads and draws the logged grid;
a warm start takes an exported generator's params and refuses another architecture.
All runs happen in subprocesses with 8 simulated devices that share compiled programs.
"""

import json

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

import latentjax as lj
from latentjax.tasks import gan
from latentjax.train.checkpoint import open_manager, read_state
from latentjax.train.metrics import read_metrics
from latentjax.viz import image_grid, to_uint8
from support import assert_trees_close, run_killed, run_python

pytestmark = pytest.mark.slow  # compiles a GAN step (about 10 s of CPU per device layout)

# The shrunk config, with one change: Adam's eps 1e-8 -> 1e-3. With beta1 = 0 and a tiny eps, Adam's
# first steps move every weight by about lr * sign(gradient), so a gradient that is ~0 may flip sign
# between two summation orders (1 vs 8 devices) and change that weight by 2 * lr. A larger eps makes
# the update a smooth function of the gradient, so states can be compared at float32 tolerance.
SMOKE = ["--config", "configs/train_shapes_gan.py:smoke", "--config.eps=1e-3"]
STEPS = 6  # total_steps of the smoke config
LOSSES = ("loss_G", "loss_D", "score_real", "score_fake", "r1_penalty")


def launch(workdir, *overrides) -> str:
    return f"""
    from latentjax.programs.train import main
    assert main([*{SMOKE!r}, "--workdir", {str(workdir)!r}, *{list(overrides)!r}]) == 0
    """


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Uninterrupted smoke runs on 8 devices (the default mesh) and on 1."""
    root = tmp_path_factory.mktemp("gan")
    procs = [run_python(launch(root / "d8"), devices=8, wait=False),
             run_python(launch(root / "d1", "--config.mesh=(('data', 1),)"), devices=8, wait=False)]
    for proc in procs:  # in parallel: each compiles its own step
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-4000:]
    return root


def run_config(workdir) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))


def history(workdir):
    return np.array([[r[k] for k in LOSSES] for r in read_metrics(workdir) if "loss_G" in r])


def test_eight_devices_match_one_device(runs):
    """Same losses at every step and the same train state (params, EMA, Adam moments)."""
    losses8, losses1 = history(runs / "d8"), history(runs / "d1")
    assert losses8.shape == (STEPS, len(LOSSES)) and np.all(np.isfinite(losses8))
    np.testing.assert_allclose(losses8, losses1, rtol=1e-4, atol=1e-5)
    assert_trees_close(read_state(runs / "d8"), read_state(runs / "d1"), rtol=1e-4, atol=1e-5)


def test_killed_run_resumes_to_the_uninterrupted_state(runs, tmp_path):
    """On one device (where runs are bitwise reproducible; the simulated multi-device all-reduce
    is not), a run killed at the step-4 checkpoint resumes from step 2 to the uninterrupted state."""
    one_device = "--config.mesh=(('data', 1),)"
    run_killed(launch(tmp_path, one_device), kill_at_checkpoint=4, devices=8)
    assert open_manager(tmp_path).latest_step() == 2
    run_python(launch(tmp_path, one_device), devices=8)
    assert_trees_close(read_state(tmp_path), read_state(runs / "d1"), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history(tmp_path), history(runs / "d1"), rtol=1e-6)


def test_exported_generator_draws_the_logged_grid(runs):
    """WORKDIR/generator is the EMA generator of the last step; its fixed-z grid is the last PNG."""
    G = lj.load_generator(runs / "d8" / gan.EXPORT_DIR)
    state = read_state(runs / "d8")["state"]
    assert G.metadata["step"] == STEPS and G.config.img_resolution == 8
    assert_trees_close(G.params, state["g_ema"], rtol=0, atol=0)
    config = run_config(runs / "d8")
    grid = image_grid(to_uint8(jax.jit(gan.make_task(config).sample)(state)))
    logged = np.asarray(Image.open(runs / "d8" / "samples" / f"samples_{STEPS:07d}.png"))
    assert np.abs(grid.astype(int) - logged.astype(int)).max() <= 1


def test_warm_start_takes_the_generator_and_checks_its_architecture(runs, tmp_path):
    """`init_from` starts G and its EMA from an exported generator (and the export says so).
    A generator of another architecture is refused with an error that names `init_from`."""
    source = runs / "d8" / gan.EXPORT_DIR
    config = run_config(runs / "d8")
    config.init_from = str(source)
    task = gan.make_task(config)
    state = task.init(jax.random.key(1))
    params = lj.load_generator(source).params
    assert_trees_close(state["g"], params, rtol=0, atol=0)
    assert_trees_close(state["g_ema"], params, rtol=0, atol=0)
    task.export(jax.device_get(state), tmp_path, 3)  # the export records where the run started
    metadata = lj.load_generator(tmp_path / gan.EXPORT_DIR).metadata
    assert metadata["init_from"] == str(source) and metadata["init_metadata"]["step"] == STEPS
    config.channel_max = 8
    with pytest.raises(ValueError, match="init_from.*configured architecture"):
        gan.make_task(config)


def test_discriminator_widths_default_to_the_generators(runs):
    config = run_config(runs / "d8")
    assert gan.discriminator_config(config).channels == gan.generator_config(config).channels == (16, 16)
    config.d_channel_base, config.d_channel_max = 512, 64
    assert gan.discriminator_config(config).channels == (64, 64)
    assert gan.generator_config(config).channels == (16, 16)
