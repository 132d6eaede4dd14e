"""Nonsense is refused, not computed: damaged weights, URLs, overflowing latents, impossible
truncations and command-line values each give a clear error (or the mathematically right answer)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from conftest import FIXTURES
from latentjax.cli import main
from latentjax.io.torch_pickle import load
from latentjax.models.stylegan2_convert import from_nvidia
from latentjax.ops.batch_norm import statistics_weights
from latentjax.ops.layers import normalize_2nd_moment

SG2 = FIXTURES / "stylegan2"


@pytest.fixture(scope="module")
def ada():
    return load(SG2 / "ada_s32.pt"), json.loads((SG2 / "ada_s32.json").read_text())["init_kwargs"]


@pytest.mark.parametrize("damage, message", [
    (lambda w: np.where(np.arange(w.size).reshape(w.shape) == 3, np.nan, w), "holds 1 non-finite value"),
    (lambda w: np.full_like(w, np.inf), r"holds \d+ non-finite value\(s\) \(NaN or infinity\)"),
    (lambda w: w.astype(np.int64), "holds int64 values; expected floating-point weights"),
    (lambda w: w > 0, "holds bool values"),
])
def test_damaged_weights_are_named(ada, damage, message):
    state_dict, kwargs = ada
    key = "synthesis.b16.conv1.weight"
    broken = {**state_dict, key: damage(np.asarray(state_dict[key]))}
    with pytest.raises(lj.ConversionError, match=rf"x\.pt: key '{key}' {message}"):
        from_nvidia(broken, kwargs, where="x.pt")


def test_urls_are_not_fetched():
    with pytest.raises(lj.CheckpointError, match="URLs are not fetched; download the file"):
        lj.load_generator("https://example.com/ffhq.pkl")


def test_huge_latents_normalise_without_overflow():
    z = jnp.full((2, 8), 1e30, jnp.float32)
    np.testing.assert_allclose(normalize_2nd_moment(z), np.ones((2, 8)), rtol=1e-6)
    x = jax.random.normal(jax.random.key(0), (4, 16))
    reference = x / np.sqrt(np.mean(np.square(np.asarray(x, np.float64)), axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(normalize_2nd_moment(x), reference, rtol=1e-6)
    assert np.all(normalize_2nd_moment(jnp.zeros((1, 4))) == 0)


@pytest.mark.parametrize("truncation", [float("nan"), 0.0, -0.5, 1.5, np.float32(np.nan), np.array(2.0)])
def test_impossible_biggan_truncations_are_refused_when_concrete(biggan_tiny, truncation):
    with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
        biggan_tiny.sample_z(jax.random.key(0), 2, truncation)
    with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
        statistics_weights(truncation, 5)


@pytest.mark.parametrize("argv, message", [
    (["generate", "builtin:shapes", "--num", "-3"], "--num: expected a positive integer"),
    (["generate", "builtin:shapes", "--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["generate", "builtin:shapes", "--truncation-psi", "nan"], "--truncation-psi: expected a finite number"),
    (["generate", "builtin:shapes", "--truncation-cutoff", "-1"], "--truncation-cutoff: expected an integer >= 0"),
    (["generate", "builtin:shapes", "--seed", str(2 ** 70)], "--seed: expected a seed in [0, 2**32)"),
    (["generate", "builtin:shapes", "--cols", "-2"], "--cols: expected a positive integer"),
    (["walk", "d.npz", "--generator", "g", "--workdir", "w", "--distance", "nan"], "--distance: expected a positive"),
    (["walk", "d.npz", "--generator", "g", "--workdir", "w", "--batch-size", "0"], "--batch-size: expected a posi"),
])
def test_command_line_nonsense_is_refused_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2 and message in capsys.readouterr().err


def test_a_torn_last_metrics_line_is_dropped_and_other_damage_named(tmp_path, capsys):
    from latentjax.train.metrics import METRICS_FILE, read_metrics

    (tmp_path / METRICS_FILE).write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 0.5}]
    assert "dropped a torn last line" in capsys.readouterr().err
    (tmp_path / METRICS_FILE).write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl: line 2 is not a JSON record"):
        read_metrics(tmp_path)
