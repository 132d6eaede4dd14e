"""Shared test set-up: float32 at highest matmul precision, programs compiled without LLVM's
optimisation passes (set before JAX starts its backend), files with slow tests scheduled first,
and the fixtures several files load. Helpers that test files import live in `support.py`."""

import os

from support import COMPILE_FLAGS, FIXTURES

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {COMPILE_FLAGS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

import latentjax as lj  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


def pytest_collection_modifyitems(items):
    """Files that hold `slow` tests run first. pytest-xdist hands whole files to workers in this
    order (`--dist loadfile`), so the long files start early and the run does not end with one
    worker busy on a long file while the others idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order within a file is kept



@pytest.fixture
def fixtures_dir():
    return FIXTURES


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory):
    """A persistent compilation cache shared by the subprocesses that one test session starts."""
    return tmp_path_factory.mktemp("jax_compile_cache")


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
