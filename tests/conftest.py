"""Shared test set-up: float32 at highest matmul precision, programs compiled without LLVM's
optimisation passes (set before JAX starts its backend) into one compilation cache for the whole
run, files with slow tests scheduled first, and the fixtures several files load. Helpers that test
files import live in `support.py`."""

import os
import shutil
import tempfile

# One persistent compilation cache for the run, made by the first process that loads this file
# (pytest, or xdist's controller) and inherited through the environment by the workers and by the
# subprocesses tests start: the same program compiled in two places (a resumed run and an
# uninterrupted one; a fixture generator's decode in several files) compiles once. Cache keys
# include XLA_FLAGS, so differently compiled programs never share an entry.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="latentjax-tests-xla-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

from support import COMPILE_FLAGS, FIXTURES  # noqa: E402

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {COMPILE_FLAGS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

import latentjax as lj  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])  # JAX may be imported already
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def pytest_collection_modifyitems(items):
    """Files that hold `slow` tests run first. pytest-xdist hands whole files to workers in this
    order (`--dist loadfile`), so the long files start early and the run does not end with one
    worker busy on a long file while the others idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order within a file is kept


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def fixtures_dir():
    return FIXTURES


# Fixture generators that several test files use, loaded once per test process.
@pytest.fixture(scope="session")
def sg2():
    """The 32x32 NVIDIA snapshot (random weights)."""
    return lj.load_generator(FIXTURES / "stylegan2" / "ada_s32_snapshot.pkl")


@pytest.fixture(scope="session")
def pggan():
    """The tiny pytorch_GAN_zoo PGAN."""
    return lj.load_generator(FIXTURES / "pggan" / "pgan_tiny.pth")


@pytest.fixture(scope="session")
def biggan_tiny():
    """The 128x128 BigGAN-deep with width 8."""
    return lj.load_generator(FIXTURES / "biggan" / "deep_tiny")


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory):
    """A random 16x16 RGB StyleGAN2 (8-d z and w) saved in the native format."""
    config = lj.StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channels=(16, 16, 16),
                                mapping_layers=1)
    return lj.save_generator(lj.StyleGAN2.init(config, jax.random.key(1)), tmp_path_factory.mktemp("tiny"))
