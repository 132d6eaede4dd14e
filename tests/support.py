"""Helpers that several test files share: fixture paths and tolerances, comparisons, subprocesses with
simulated devices (and killed at a checkpoint), and a small identifiable StyleGAN2."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from latentjax import StyleGAN2, StyleGAN2Config

# Tests are dominated by compile time; without LLVM's passes the suite compiles about 40% faster,
# and every result the tests compare is computed this way (conftest.py sets it for the test process).
COMPILE_FLAGS = "--xla_backend_optimization_level=0"
REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FIXTURES = Path(__file__).parent / "fixtures"
PARITY_RTOL = 1e-4  # relative L2 error allowed against reference outputs (float32)


def device_env(devices: int, **extra) -> dict:
    """The environment of a subprocess that sees `devices` simulated CPU devices (compiled as here)."""
    flags = f"--xla_force_host_platform_device_count={devices} {COMPILE_FLAGS}"
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags, **extra}


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def nchw(x):
    """Our NHWC images/features in the references' NCHW layout."""
    return np.asarray(x).transpose(0, 3, 1, 2)


def run_python(script: str, devices: int = 1, env: dict | None = None, wait: bool = True, timeout: float = 300):
    """Run `script` in a fresh interpreter with `devices` simulated CPU devices, the repo and tests
    importable, and the test run's compilation cache (inherited through the environment); returns
    stdout (or the Popen if not `wait`)."""
    full_env = {**device_env(devices),
                "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]),
                **(env or {})}
    prelude = "import jax\njax.config.update('jax_default_matmul_precision', 'highest')\n"
    proc = subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(script)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
    if not wait:
        return proc
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{err[-4000:]}"
    return out


KILL_AT_CHECKPOINT = """
import os, signal
from latentjax.train import checkpoint as _checkpoint

_save = _checkpoint.save

def _save_or_die(manager, step, state):
    if step == {step}:  # SIGKILL once the previous checkpoint is complete, instead of saving this one
        manager.wait_until_finished()
        os.kill(os.getpid(), signal.SIGKILL)
    _save(manager, step, state)

_checkpoint.save = _save_or_die
"""


def run_killed(script: str, kill_at_checkpoint: int, **kwargs):
    """Run `script` (which trains) in a subprocess that SIGKILLs itself when it reaches the
    checkpoint of step `kill_at_checkpoint`; the programs it runs are not changed."""
    proc = run_python(KILL_AT_CHECKPOINT.format(step=kill_at_checkpoint) + textwrap.dedent(script),
                      wait=False, **kwargs)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"expected the run to be killed, got {proc.returncode}:\n{err[-3000:]}"


def assert_trees_close(a, b, rtol=1e-6, atol=1e-7):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol), a, b)


def random_params(config, seed):
    """Params drawn from StyleGAN2's init distributions with numpy (cheaper than compiling `StyleGAN2.init`)."""
    rng = np.random.default_rng(seed)

    def leaf(path, x):
        names = [getattr(k, "key", None) for k in path]
        if names[-1] in ("weight", "const", "noise_const"):
            scale = 1 / config.mapping_lr_multiplier if names[0] == "mapping" else 1.0
            return (rng.normal(size=x.shape) * scale).astype(np.float32)
        return np.full(x.shape, 1.0 if names[-2] == "affine" else 0.0, np.float32)  # affine biases start at 1

    return jax.tree_util.tree_map_with_path(leaf, StyleGAN2(config, None).abstract_params())


def make_generator(noise_strength=0.03):
    """A 16x16 RGB StyleGAN2 with 8-d z and w, random weights, noise strength 0.03, and toRGB layers
    scaled so that the two test targets span [-0.9, 0.9].

    The fixture checkpoints' random generators map many different w+ (64-d per layer, with each
    modulated layer invariant to the scale of its styles) to nearly the same 16x16 image, so their
    w+ latents cannot be recovered from images; with 8-d styles every space is identifiable.
    """
    config = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channels=(32, 32, 16),
                             mapping_layers=2)
    G = StyleGAN2(config, random_params(config, seed=3))

    def tweak(params, rgb_scale, noise_strength):
        def leaf(path, x):
            names = [getattr(k, "key", None) for k in path]
            if names[-1] == "noise_strength":
                return jnp.full_like(x, noise_strength)
            return x * rgb_scale if names[-2] == "torgb" and names[-1] in ("weight", "bias") else x
        return jax.tree_util.tree_map_with_path(leaf, params)

    mapping, synthesis = jax.jit(G.mapping), jax.jit(G.synthesis)  # one compilation each, shared by the tweaks
    params = tweak(G.params, 1.0, noise_strength)
    ws = mapping(params, jax.random.normal(jax.random.key(5), (2, config.z_dim)))
    params = tweak(G.params, 0.9 / float(jnp.max(jnp.abs(synthesis(params, ws)))), noise_strength)
    w_samples = mapping(params, jax.random.normal(jax.random.key(9), (4000, config.z_dim)))[:, 0]
    return StyleGAN2(config, params), np.asarray(ws), np.asarray(synthesis(params, ws)), np.asarray(w_samples)


def fake_ffmpeg(tmp_path, exit_code: int = 0) -> str:
    """An executable that records its arguments and stdin size and answers with a few bytes."""
    path = tmp_path / "ffmpeg"
    path.write_text(f"""#!{sys.executable}
import json, sys
data = sys.stdin.buffer.read()
open({str(tmp_path / 'call.json')!r}, "w").write(json.dumps({{"argv": sys.argv[1:], "bytes": len(data)}}))
if {exit_code}:
    sys.stderr.write("unknown encoder 'libx264'")
    sys.exit({exit_code})
sys.stdout.buffer.write(b"MP4:" + str(len(data)).encode())
""")
    path.chmod(0o755)
    return str(path)
