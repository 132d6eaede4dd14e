"""Shared test set-up: float32 at highest matmul precision, and the fixture folder."""

from pathlib import Path

import jax
import numpy as np
import pytest

import latentjax as lj

jax.config.update("jax_default_matmul_precision", "highest")

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_RTOL = 1e-4  # relative L2 error allowed against reference outputs (float32)


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def nchw(x):
    """Our NHWC images/features in the references' NCHW layout."""
    return np.asarray(x).transpose(0, 3, 1, 2)


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
