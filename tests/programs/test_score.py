"""`latentjax score`: the table on disk equals the one computed in memory, a killed run is
completed shard by shard, and another config's workdir is refused."""

import importlib.util
import os

import jax
import numpy as np
import pytest

import latentjax as lj
from latentjax.cli import main as cli_main
from latentjax.latent import space_from_spec
from latentjax.metrics.scorer import score_samples
from latentjax.programs.discover import scorer_from_spec
from latentjax.programs.score import load_table, score, shard_path

from support import REPO

CONFIGS = REPO / "configs"


def _config(generator):
    spec = importlib.util.spec_from_file_location("score_config", CONFIGS / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("smoke")
    config.generator = str(generator)
    config.scorer = "readout:1e9"  # a random generator draws no clean renders
    config.num_samples = 40  # shards of 32 and 8
    return config


def test_the_table_on_disk_is_the_table_in_memory_and_resumes(tiny_generator_dir, tmp_path):
    config = _config(tiny_generator_dir)
    score(config, tmp_path, progress=False)
    latents, scores, names = load_table(tmp_path)
    assert latents.shape == (40, 8) and scores.shape == (40, 9) and names[0] == "x"
    space = space_from_spec(lj.load_generator(tiny_generator_dir), config.space)
    expected = score_samples(space, scorer_from_spec(config.scorer), 40, batch_size=40, key=jax.random.key(0),
                             progress=False)
    np.testing.assert_allclose(latents, expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, expected[1], rtol=1e-5, atol=1e-6)
    # a killed run: the second shard is missing; the first is kept as it is
    first, second = shard_path(tmp_path, 0), shard_path(tmp_path, 1)
    os.remove(second)
    stamp = first.stat().st_mtime_ns
    with pytest.raises(FileNotFoundError, match="scores-00001.npz: missing"):
        load_table(tmp_path)
    score(config, tmp_path, progress=False)
    assert first.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(load_table(tmp_path)[1], scores)
    # a grown table keeps the whole shards and recomputes the short last one
    config.num_samples = 70
    score(config, tmp_path, progress=False)
    assert first.stat().st_mtime_ns == stamp
    grown = load_table(tmp_path)[1]
    assert grown.shape == (70, 9)
    np.testing.assert_array_equal(grown[:40], scores)
    # another config in the same workdir is refused
    config.seed = 1
    with pytest.raises(ValueError, match="another config \\(differs in \\['seed'\\]\\)"):
        score(config, tmp_path, progress=False)


def test_cli_writes_the_table(tiny_generator_dir, tmp_path, capsys):
    code = cli_main(["score", "--config", f"{CONFIGS / 'score.py'}:smoke",
                     f"--config.generator={tiny_generator_dir}", "--config.scorer=readout:1e9",
                     "--workdir", str(tmp_path)])
    assert code == 0
    assert "64 samples x 9 scores" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores-00000.npz", "scores-00001.npz", "scores.json"]
