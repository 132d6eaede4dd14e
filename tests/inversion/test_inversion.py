"""Inversion: recovery of generated images in every space, the projector recipe's pieces against
numpy transcriptions of the reference formulas, batch/shard invariance, the directory job, bad inputs."""

import argparse
import math
import os
import pickle
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image
from support import FIXTURES, TESTS, device_env, make_generator, relative_error

from latentjax.inversion import (Inverter, decode, invert, latent_noise_schedule, noise_regularization,
                                 projector_lr_schedule, projector_optimizer)
from latentjax.io.images import load_target
from latentjax.programs.invert import add_invert_arguments, invert_directory, main as invert_command, write_overview
from latentjax.inversion.project import _area_downsample
from latentjax.metrics.image import psnr
from latentjax.metrics.lpips import load_lpips
from latentjax.programs.outputs import write
from latentjax.viz import encode_png, to_uint8

STEPS = 1000  # the projector's default; after compilation 1000 steps of this generator take well under a second


@pytest.fixture(scope="module")
def gen():
    G, ws, targets, w_samples = make_generator()
    w_mean = w_samples.mean(0)
    spread = float(np.sqrt(np.mean(np.sum(np.square(w_samples - w_mean), -1))))  # typical |w - mean w|
    return G, ws, targets, spread, w_mean


def latent_error(ws, ws_true, spread):
    """Mean over targets and layers of |w - w_true|, as a fraction of the spread of w."""
    return float(np.mean(np.linalg.norm(ws - ws_true, axis=-1)) / spread)


# space, optimize_noise, PSNR lower bound (dB), latent error upper bound. Measured on CPU (jax 0.10.2):
# w 146 dB / 1.3e-7, w+ 76 dB / 0.009, z 43 dB / 0.033, w+ with noise 37 dB / 0.16; the start is at 0.81.
RECOVERY = [
    ("w", False, 100.0, 1e-4),
    ("w+", False, 60.0, 0.05),
    ("z", False, 35.0, 0.1),
    # The noise maps restart from fresh random maps (as in the projector) and cannot be recovered (they
    # hold as many values as the image), so part of the mismatch stays in the image and the latents.
    ("w+", True, 30.0, 0.3),
]


@pytest.mark.parametrize("space,optimize_noise,min_psnr,max_error", RECOVERY)
def test_inversion_recovers_generated_images(gen, space, optimize_noise, min_psnr, max_error):
    G, ws, targets, spread, w_mean = gen
    assert latent_error(np.broadcast_to(w_mean, ws.shape), ws, spread) > 0.7  # the 'w'/'w+' start is far away
    result = invert(G, targets, space=space, steps=STEPS, loss="mse", key=jax.random.key(0),
                    optimize_noise=optimize_noise, progress=False)
    expected_shape = {"z": (2, G.z_dim), "w": (2, G.w_dim), "w+": (2, G.num_ws, G.w_dim)}[space]
    assert result.latents.shape == expected_shape and result.ws.shape == ws.shape
    assert np.min(np.asarray(psnr(result.images, targets))) > min_psnr
    assert latent_error(result.ws, ws, spread) < max_error
    np.testing.assert_allclose(result.losses["mse"], np.mean((result.images - targets) ** 2, axis=(1, 2, 3)),
                               rtol=1e-5, atol=1e-12)
    if optimize_noise:
        maps = np.stack([m for m in result.noise.values()][0])
        assert set(result.noise) == set(G.noise_maps(G.params))
        for m in result.noise.values():  # renormalised after every step
            np.testing.assert_allclose(m.mean(axis=(1, 2)), 0.0, atol=1e-5)
            np.testing.assert_allclose(m.var(axis=(1, 2)), 1.0, rtol=1e-4)
        assert maps.shape[0] == 2
        images = decode(G, G.params, result.latents, space=space, noise=result.noise)
        np.testing.assert_allclose(images, result.images, rtol=1e-5, atol=1e-6)
    else:
        assert result.noise is None and "noise_reg" not in result.losses


@pytest.mark.slow
def test_lpips_loss_recovers_and_reports_the_lpips_distance(gen):
    G, ws, targets, spread, _ = gen
    lpips = load_lpips(FIXTURES / "lpips" / "vgg16_random.pth", FIXTURES / "lpips" / "lpips_vgg_narrow_lin.pth")
    result = invert(G, targets, space="w", steps=300, loss={"lpips": 1.0, "mse": 0.5}, lpips=lpips,
                    key=jax.random.key(1), progress=False)
    assert np.min(np.asarray(psnr(result.images, targets))) > 60.0
    assert latent_error(result.ws, ws, spread) < 1e-2
    distance = jax.jit(lambda m, a, b: m(a, b))(lpips, jnp.asarray(result.images), jnp.asarray(targets))
    np.testing.assert_allclose(result.losses["lpips"], distance, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(result.losses["loss"], result.losses["lpips"] + 0.5 * result.losses["mse"],
                               rtol=1e-6)


def test_area_downsample_averages_blocks_only_for_large_images():
    x = np.random.default_rng(0).normal(size=(2, 512, 512, 3)).astype(np.float32)
    expected = x.reshape(2, 256, 2, 256, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(_area_downsample(jnp.asarray(x), 256), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_area_downsample(jnp.asarray(x[:, :64, :64]), 256), x[:, :64, :64])


# --- the projector's formulas, transcribed to numpy from stylegan2-ada-pytorch projector.py ---------------

def reference_lr(step, steps, lr=0.1, rampdown=0.25, rampup=0.05):
    t = step / steps
    lr_ramp = min(1.0, (1.0 - t) / rampdown)
    lr_ramp = 0.5 - 0.5 * math.cos(lr_ramp * math.pi)
    return lr * lr_ramp * min(1.0, t / rampup)


def reference_noise_reg(maps):
    total = 0.0
    for n in maps:
        n = np.asarray(n, np.float64)
        while True:
            total += np.mean(n * np.roll(n, 1, axis=1)) ** 2 + np.mean(n * np.roll(n, 1, axis=0)) ** 2
            if n.shape[0] <= 8:
                break
            n = 0.25 * (n[0::2, 0::2] + n[1::2, 0::2] + n[0::2, 1::2] + n[1::2, 1::2])  # avg_pool2d(2)
    return total


def reference_noise_reg_grad(n):
    """d/dn of one map's penalty: d mean(n * roll(n, 1))^2 = 2 m (roll(n, 1) + roll(n, -1)) / size, with
    each pooled level's gradient spread back as 1/4 per pixel."""
    n = np.asarray(n, np.float64)
    grad = np.zeros_like(n)
    for axis in (0, 1):
        m = np.mean(n * np.roll(n, 1, axis=axis))
        grad += 2 * m * (np.roll(n, 1, axis=axis) + np.roll(n, -1, axis=axis)) / n.size
    if n.shape[0] > 8:
        pooled = 0.25 * (n[0::2, 0::2] + n[1::2, 0::2] + n[0::2, 1::2] + n[1::2, 1::2])
        grad += np.repeat(np.repeat(reference_noise_reg_grad(pooled), 2, 0), 2, 1) / 4
    return grad


def correlated_maps(seed=0):
    rng = np.random.default_rng(seed)
    maps = {}
    for size in (4, 8, 16, 32):  # smoothed noise plus an offset: non-zero penalty at every scale
        n = rng.normal(size=(size, size))
        n = n + 0.7 * np.roll(n, 1, axis=0) + 0.5 * np.roll(n, 1, axis=1) + 0.3
        maps[f"n{size}"] = n.astype(np.float32)
    return maps


def test_lr_and_latent_noise_schedules_match_reference():
    steps = 1000
    lr = projector_lr_schedule(0.1, steps)
    np.testing.assert_allclose([lr(s) for s in range(steps)], [reference_lr(s, steps) for s in range(steps)],
                               rtol=1e-5, atol=1e-8)
    assert float(lr(0)) == 0.0
    noise = latent_noise_schedule(3.0 * 0.05, steps, 0.75)
    expected = [3.0 * 0.05 * max(0.0, 1.0 - (s / steps) / 0.75) ** 2 for s in range(steps)]
    np.testing.assert_allclose([noise(s) for s in range(steps)], expected, rtol=1e-5, atol=1e-9)


def test_noise_regularization_and_its_gradient_match_reference():
    maps = correlated_maps()
    reg = jax.jit(noise_regularization)({k: jnp.asarray(v) for k, v in maps.items()})
    np.testing.assert_allclose(reg, reference_noise_reg(maps.values()), rtol=1e-5)
    grads = jax.jit(jax.grad(noise_regularization))({k: jnp.asarray(v) for k, v in maps.items()})
    for name, n in maps.items():
        np.testing.assert_allclose(grads[name], reference_noise_reg_grad(n), rtol=1e-4, atol=1e-9)
    white = np.random.default_rng(1).normal(size=(256, 256)).astype(np.float32)
    assert float(jax.jit(noise_regularization)([jnp.asarray(white)])) < 1e-4 < float(reg)


def torch_adam_step(p, g, m, v, step, lr, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam's update of p in place (m, v: its moment buffers, updated in place)."""
    m[...] = b1 * m + (1 - b1) * g
    v[...] = b2 * v + (1 - b2) * g * g
    p -= lr / (1 - b1 ** (step + 1)) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** (step + 1)) + eps)


def test_optimizer_steps_match_reference_adam_with_noise_penalty_and_renormalisation():
    steps, weight = 20, 3.0
    maps = correlated_maps(2)
    rng = np.random.default_rng(3)
    params = {"latent": rng.normal(size=(5,)).astype(np.float32), "noise": maps}
    tx = projector_optimizer(steps, noise_weight=weight, noise_mask={"latent": False, "noise": {k: True for k in maps}})
    state, update = tx.init(params), jax.jit(tx.update)
    ours = jax.tree.map(jnp.asarray, params)
    ref = jax.tree.map(lambda a: a.astype(np.float64), params)
    moments = [np.zeros_like(a) for a in jax.tree.leaves(ref) for _ in range(2)]
    for step in range(6):
        loss_grads = {"latent": rng.normal(size=(5,)),
                      "noise": {k: 0.01 * rng.normal(size=n.shape) for k, n in maps.items()}}
        updates, state = update(jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), loss_grads), state, ours)
        ours = optax.apply_updates(ours, updates)
        # Reference: loss gradient + weight * penalty gradient into Adam, then each map renormalised.
        grads = {"latent": loss_grads["latent"],
                 "noise": {k: g + weight * reference_noise_reg_grad(ref["noise"][k])
                           for k, g in loss_grads["noise"].items()}}
        for i, (p, g) in enumerate(zip(jax.tree.leaves(ref), jax.tree.leaves(grads))):
            torch_adam_step(p, g, moments[2 * i], moments[2 * i + 1], step, reference_lr(step, steps))
        for n in ref["noise"].values():
            n -= n.mean()
            n /= np.sqrt(np.mean(n * n))
        for k in maps:
            np.testing.assert_allclose(ours["noise"][k], ref["noise"][k], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours["latent"], ref["latent"], rtol=1e-5, atol=1e-6)


# --- batching, sharding and the directory job share one recipe (few steps: float rounding differences
# between batch sizes grow chaotically over long runs) ----------------------------------------------------

FEW_STEPS = dict(space="w+", steps=30, loss="mse", optimize_noise=True, progress=False)


@pytest.fixture(scope="module")
def three(gen):
    """Three targets (the third a darker copy of the first), their keys, and their batched inversion."""
    G, _, targets, _, _ = gen
    targets = np.concatenate([targets, targets[:1] * 0.5])
    keys = jax.random.split(jax.random.key(7), 3)
    return targets, keys, invert(G, targets, key=keys, batch_size=3, **FEW_STEPS)


def assert_same_inversion(a, i, b, j=0):
    """Target i of result a and target j of result b agree to float32 rounding (relative L2 error)."""
    pairs = [(a.latents[i], b.latents[j]), (a.images[i], b.images[j]), (a.losses["loss"][i], b.losses["loss"][j])]
    pairs += [(a.noise[k][i], b.noise[k][j]) for k in b.noise]
    errors = [relative_error(x, y) for x, y in pairs]
    assert max(errors) < 1e-5, errors


SHARDED = r"""
import pickle, sys, jax, numpy as np
from jax.sharding import Mesh
jax.config.update("jax_default_matmul_precision", "highest")
from inversion.test_inversion import FEW_STEPS, assert_same_inversion
from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.inversion import invert
assert jax.device_count() == 4, jax.devices()
with open(sys.argv[1], "rb") as f:
    config, params, targets, key_data, expected = pickle.load(f)
G = StyleGAN2(StyleGAN2Config.from_dict(config), params)
keys = jax.random.wrap_key_data(key_data)
mesh = Mesh(np.array(jax.devices()), ("data",))
batched = invert(G, targets, key=keys, mesh=mesh, **FEW_STEPS)  # 3 targets padded to 4 devices
for i in range(3):
    assert_same_inversion(batched, i, expected, i)  # sharded over 4 devices == on 1 device
    single = invert(G, targets[i:i + 1], key=keys[i:i + 1], mesh=mesh, **FEW_STEPS)
    assert_same_inversion(batched, i, single)  # in a batch == alone
print("ok")
"""


@pytest.mark.slow
def test_batched_and_sharded_inversion_equals_single_inversions_on_one_device(gen, three, tmp_path):
    G = gen[0]
    targets, keys, batched = three
    with open(tmp_path / "case.pkl", "wb") as f:  # our own arrays, read back by the subprocess below
        pickle.dump((G.config.to_dict(), jax.tree.map(np.asarray, G.params), targets, jax.random.key_data(keys),
                     batched), f)
    env = device_env(4, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path / "case.pkl")], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


def test_invert_directory_writes_results_and_resumes(gen, three, tmp_path):
    G = gen[0]
    targets = three[0]
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    for name, target in zip("abc", targets):
        write(in_dir / f"{name}.png", encode_png(to_uint8(target)))
    run = dict(FEW_STEPS, key=jax.random.key(0), batch_size=3)
    first = invert_directory(G, in_dir, out_dir, **run)
    assert first["done"] == ["a", "b", "c"] and first["skipped"] == []
    saved = {name: dict(np.load(out_dir / f"{name}.npz")) for name in "abc"}
    assert all((out_dir / f"{name}.png").exists() for name in "abc")
    assert saved["a"]["latents"].shape == (G.num_ws, G.w_dim) and saved["a"]["ws"].shape == (G.num_ws, G.w_dim)
    assert set(first["metrics"]["a"]) == {"psnr", "ssim"} and float(saved["a"]["metric/psnr"]) > 15.0
    assert {k[6:] for k in saved["a"] if k.startswith("noise/")} == set(G.noise_maps(G.params))
    overview = write_overview(in_dir, out_dir)
    assert set(overview["images"]) == {"a", "b", "c"}
    assert np.isclose(overview["mean"]["psnr"], np.mean([first["metrics"][n]["psnr"] for n in "abc"]))
    assert "| **mean** |" in (out_dir / "metrics.md").read_text()
    res, grid = G.img_resolution, np.asarray(Image.open(out_dir / "comparison.png"))
    assert grid.shape[:2] == (res, 6 * res + 5 * 2)  # three (target, reconstruction) pairs, 2 px apart
    np.testing.assert_array_equal(grid[:, :res], to_uint8(targets[0]))
    np.testing.assert_array_equal(grid[:, res + 2: 2 * res + 2], np.asarray(Image.open(out_dir / "a.png")))
    again = invert_directory(G, in_dir, out_dir, **run)
    assert again["done"] == [] and again["skipped"] == ["a", "b", "c"]
    (out_dir / "b.npz").unlink()
    resumed = invert_directory(G, in_dir, out_dir, **run)
    assert resumed["done"] == ["b"] and resumed["skipped"] == ["a", "c"]
    # b now ran alone instead of beside a and c: its key comes from its name, so the result is the same.
    np.testing.assert_allclose(np.load(out_dir / "b.npz")["latents"], saved["b"]["latents"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_invert_command_inverts_a_directory_for_a_checkpoint(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("x", "y"):  # RGB pictures of another size: converted to gray, centre-cropped and resized
        write(tmp_path / "in" / f"{name}.png", encode_png(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)))
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--no-ema", action="store_true")
    add_invert_arguments(parser)
    args = parser.parse_args([str(FIXTURES / "stylegan2" / "ada_gray_s16.pt"), str(tmp_path / "in"),
                              str(tmp_path / "out"), "--loss", "mse", "--steps", "3", "--space", "w"])
    assert invert_command(args) == 0
    out = capsys.readouterr().out
    assert "inverted 2 images" in out and "comparison.png" in out
    assert (tmp_path / "out" / "comparison.png").exists() and (tmp_path / "out" / "metrics.md").exists()
    assert np.load(tmp_path / "out" / "x.npz")["latents"].shape == (16,)
    assert load_target(tmp_path / "out" / "y.png", 16, 1).shape == (16, 16, 1)


# --- bad inputs -----------------------------------------------------------------------------------------

def test_bad_inputs_give_clear_errors(gen):
    G, _, targets, _, _ = gen
    run = dict(space="w", steps=STEPS, loss="mse", key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match=r"targets must be images \[N, 16, 16, 3\].*got shape \(2, 16, 16, 1\)"):
        invert(G, targets[..., :1], **run)
    with pytest.raises(ValueError, match=r"got shape \(2, 32, 32, 3\)"):
        invert(G, np.zeros((2, 32, 32, 3), np.float32), **run)
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 16, 16\)"):
        invert(G, targets.transpose(0, 3, 1, 2), **run)
    with pytest.raises(ValueError, match="non-finite"):
        invert(G, np.where(np.arange(targets.size).reshape(targets.shape) == 5, np.nan, targets), **run)
    with pytest.warns(UserWarning, match=r"far outside the generators' nominal \[-1, 1\]"):
        invert(G, targets * 3.0, **{**run, "steps": 1})  # warned, not refused
    with pytest.raises(ValueError, match="float images"):
        invert(G, to_uint8(targets), **run)
    with pytest.raises(ValueError, match="one per target"):
        invert(G, targets, **{**run, "key": jax.random.split(jax.random.key(0), 3)})
    with pytest.raises(ValueError, match="unknown latent space 's'"):
        invert(G, targets, **{**run, "space": "s"})
    with pytest.raises(ValueError, match="loss must name terms from"):
        invert(G, targets, **{**run, "loss": "l1"})
    with pytest.raises(ValueError, match="needs an LPIPS model"):
        invert(G, targets, **{**run, "loss": "lpips"})
    with pytest.raises(ValueError, match="steps must be a positive int"):
        Inverter(G, space="w", steps=0, loss="mse")


def test_targets_in_the_generators_own_range_and_bfloat16_are_accepted(gen):
    """A generator's raw samples overshoot [-1, 1] a little; they invert as they are, and so do bfloat16 targets."""
    G, _, targets, _, _ = gen
    run = dict(space="w", steps=2, loss="mse", key=jax.random.key(0), progress=False)
    overshoot = targets * 1.3  # like builtin:shapes' own samples (up to 1.30)
    assert np.abs(overshoot).max() > 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either: 1.3 is within a generator's range
        res = invert(G, overshoot, **run)
    assert res.images.shape == targets.shape and np.all(np.isfinite(res.latents))
    res16 = invert(G, jnp.asarray(targets, jnp.bfloat16), **run)
    assert np.all(np.isfinite(res16.latents))


def test_invert_directory_reports_and_skips_unreadable_images(gen, tmp_path):
    G, _, targets, _, _ = gen
    in_dir = tmp_path / "in"
    write(in_dir / "a.png", encode_png(to_uint8(targets[0])))
    (in_dir / "fake.png").write_text("not an image")
    (in_dir / "cut.png").write_bytes((in_dir / "a.png").read_bytes()[:50])
    summary = invert_directory(G, in_dir, tmp_path / "out", key=jax.random.key(0), batch_size=3, **FEW_STEPS)
    assert summary["done"] == ["a"] and set(summary["unreadable"]) == {"fake.png", "cut.png"}
    assert "not a readable image" in summary["unreadable"]["fake.png"]
