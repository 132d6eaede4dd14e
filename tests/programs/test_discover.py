"""`latentjax discover` / `latentjax walk`: configs, flag overrides, and what they write."""

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

import latentjax as lj
from latentjax.cli import main as cli_main
from latentjax.directions import METHODS, Directions
from latentjax.latent import latent_space
from support import FIXTURES, REPO

CONFIGS = REPO / "configs"
ADA = FIXTURES / "stylegan2" / "ada_s32.pt"
GRAY = FIXTURES / "stylegan2" / "ada_gray_s16.pt"


def _get_config(name, arg=None):
    spec = importlib.util.spec_from_file_location(name, CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.mark.parametrize("name", ["sefa", "ganspace", "jacobian"])
def test_configs_build_their_method_settings(name):
    for arg in (None, "smoke"):
        config = _get_config(name, arg)
        assert config.method == name
        METHODS[name][1].from_dict(config.settings.to_dict())  # every field is a method setting
    assert _get_config(name, "smoke").walk.seeds == (0,)
    with pytest.raises(ValueError, match="unknown variant"):
        _get_config(name, "huge")


def test_discover_writes_the_directions_and_their_pictures(tmp_path, capsys):
    out = tmp_path / "sefa"
    assert cli_main(["discover", "--config", str(CONFIGS / "sefa.py:smoke"), f"--config.generator={ADA}",
                     "--config.settings.k=2", "--config.settings.layers=0-3", "--workdir", str(out)]) == 0
    assert "sefa: 2 directions" in capsys.readouterr().out
    d = Directions.load(out / "directions.npz")
    expected = lj.directions.sefa(lj.load_generator(ADA), k=2, layers="0-3")
    np.testing.assert_array_equal(d.vectors, expected.vectors)
    np.testing.assert_array_equal(d.layers, expected.layers)
    assert d.settings["layers"] == "0-3" and d.space["name"] == "w+"
    grid = np.asarray(Image.open(out / "walk_seed0.png"))
    assert grid.shape == (2 * 32 + 2, 3 * 32 + 4, 3)  # 2 directions x 3 steps, padded by 2
    assert Image.open(out / "direction01.gif").n_frames == 4
    report = (out / "report.html").read_text()
    assert report.count("<img src=\"data:") == 3 and "sefa" in report
    assert json.loads((out / "summary.json").read_text())["settings"]["k"] == 2


def test_walk_renders_saved_directions_for_given_seeds(tmp_path, capsys):
    d = lj.directions.sefa(latent_space(lj.load_generator(ADA), "w+", fit_samples=2000), k=3)
    d.save(tmp_path / "d.npz")
    assert cli_main(["walk", str(tmp_path / "d.npz"), "--generator", str(ADA), "--workdir", str(tmp_path / "w"),
                     "--seeds", "3", "4", "--indices", "2", "0", "--num-steps", "5", "--kind", "iso_density"]) == 0
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [
        "direction00.gif", "direction01.gif", "report.html", "summary.json", "walk_seed3.png", "walk_seed4.png"]
    assert np.asarray(Image.open(tmp_path / "w" / "walk_seed4.png")).shape == (2 * 32 + 2, 5 * 32 + 8, 3)
    assert cli_main(["walk", str(tmp_path / "d.npz"), "--generator", str(ADA), "--workdir", str(tmp_path / "x"),
                     "--num-steps", "4"]) == 2
    assert "odd" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ganspace", "jacobian"])
def test_smoke_configs_run(tmp_path, name):
    out = tmp_path / name
    assert cli_main(["discover", f"--config={CONFIGS / name}.py:smoke", f"--config.generator={GRAY}",
                     "--workdir", str(out)]) == 0
    d = Directions.load(out / "directions.npz")
    assert len(d) == 3 and d.method == name and (out / "report.html").is_file()


def test_bad_flags_are_reported(tmp_path):
    config = f"--config={CONFIGS / 'sefa.py'}"
    with pytest.raises(SystemExit, match="nope"):
        cli_main(["discover", config, "--config.nope=1", "--workdir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--workdir"):
        cli_main(["discover", config])
    with pytest.raises(SystemExit):
        cli_main(["generate", str(ADA), "--config.k=1"])  # only discover takes config flags
    assert cli_main(["discover", config, "--workdir", str(tmp_path)]) == 2  # no generator given
