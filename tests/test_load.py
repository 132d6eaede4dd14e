"""load_generator format detection, conversion errors, the native format and the CLI."""

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

import latentjax as lj
from latentjax.cli import main as cli_main
from latentjax.load import from_checkpoint
from latentjax.models.stylegan2_convert import from_nvidia
from support import FIXTURES

SG2 = FIXTURES / "stylegan2"


@pytest.fixture(scope="module")
def ada_state_dict():
    from latentjax.io.torch_pickle import load
    return load(SG2 / "ada_s32.pt")


@pytest.fixture(scope="module")
def ada_kwargs():
    return json.loads((SG2 / "ada_s32.json").read_text())["init_kwargs"]


def _same_params(a, b):
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    assert a.config == b.config


def test_every_source_format_gives_the_same_network():
    """The snapshot's G_ema and the .pt + .json state dict are the same generator."""
    _same_params(lj.load_generator(SG2 / "ada_s32_snapshot.pkl"), lj.load_generator(SG2 / "ada_s32.pt"))


def test_training_copies_are_selectable():
    ema, train = (lj.load_generator(SG2 / "ada_s32_snapshot.pkl", ema=e) for e in (True, False))
    assert ema.config == train.config
    assert not np.array_equal(ema.params["mapping"]["fc0"]["weight"], train.params["mapping"]["fc0"]["weight"])
    ros_ema, ros_train = (lj.load_generator(SG2 / "rosinality_train_s64.pt", ema=e) for e in (True, False))
    assert not np.array_equal(ros_ema.params["synthesis"]["b4"]["const"], ros_train.params["synthesis"]["b4"]["const"])


def test_native_round_trip(tmp_path):
    G = lj.load_generator(SG2 / "ada_cond_s64.pt")
    lj.save_generator(G, tmp_path / "g")
    G2 = lj.load_generator(tmp_path / "g")
    _same_params(G, G2)
    assert G2.metadata == G.metadata
    z, c = np.ones((1, G.z_dim), np.float32), np.eye(G.c_dim, dtype=np.float32)[:1]
    np.testing.assert_array_equal(G.generate(G.params, z, c), G2.generate(G2.params, z, c))


def test_native_config_that_does_not_match_params(tmp_path):
    lj.save_generator(lj.load_generator(SG2 / "ada_gray_s16.pt"), tmp_path / "g")
    meta = json.loads((tmp_path / "g" / "config.json").read_text())
    meta["config"]["channels"] = [16, 16, 16]
    (tmp_path / "g" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(lj.CheckpointError, match="do not match the config"):
        lj.load_generator(tmp_path / "g")
    meta["family"] = "vqgan"
    (tmp_path / "g" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(lj.CheckpointError, match="unknown family 'vqgan'"):
        lj.load_generator(tmp_path / "g")


def test_missing_and_unexpected_keys_are_named(ada_state_dict, ada_kwargs):
    broken = dict(ada_state_dict)
    del broken["synthesis.b16.conv0.affine.bias"]
    with pytest.raises(lj.ConversionError, match=r"missing key 'synthesis\.b16\.conv0\.affine\.bias'"):
        from_nvidia(broken, ada_kwargs, where="x.pt")
    extra = {**ada_state_dict, "synthesis.b16.conv2.weight": np.zeros((3, 3))}
    with pytest.raises(lj.ConversionError, match=r"unexpected keys \['synthesis\.b16\.conv2\.weight'\]"):
        from_nvidia(extra, ada_kwargs, where="x.pt")


def test_wrong_shapes_and_mismatched_kwargs_are_named(ada_state_dict, ada_kwargs):
    bad = {**ada_state_dict, "synthesis.b8.conv0.weight": np.zeros((64, 63, 3, 3), np.float32)}
    with pytest.raises(lj.ConversionError, match=r"synthesis\.b8\.conv0\.weight' has shape"):
        from_nvidia(bad, ada_kwargs, where="x.pt")
    wrong = {**ada_kwargs, "synthesis_kwargs": {**ada_kwargs["synthesis_kwargs"], "channel_base": 1024}}
    with pytest.raises(lj.ConversionError, match="channel_base=1024.*imply widths"):
        from_nvidia(ada_state_dict, wrong, where="x.pt")
    with pytest.raises(lj.ConversionError, match="z_dim=32 does not match the weights, which imply 64"):
        from_nvidia(ada_state_dict, {**ada_kwargs, "z_dim": 32}, where="x.pt")
    with pytest.raises(lj.ConversionError, match=r"unsupported arguments \['fancy'\]"):
        from_nvidia(ada_state_dict, {**ada_kwargs, "mapping_kwargs": {"fancy": 1}}, where="x.pt")


def test_state_dict_without_its_json(tmp_path):
    shutil.copy(SG2 / "ada_s32.pt", tmp_path / "lonely.pt")
    with pytest.raises(lj.CheckpointError, match=r"lonely\.json"):
        lj.load_generator(tmp_path / "lonely.pt")


def test_unrecognised_content_and_paths(tmp_path):
    with pytest.raises(lj.CheckpointError, match="not a recognised generator checkpoint"):
        from_checkpoint({"weights": [1, 2]}, tmp_path / "x.pt")
    with pytest.raises(lj.CheckpointError, match="no such file"):
        lj.load_generator(tmp_path / "absent.pkl")
    with pytest.raises(lj.CheckpointError, match=r"config\.json \+ params"):
        lj.load_generator(tmp_path)


def test_cli_generate_convert_info(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli_main(["generate", str(SG2 / "ada_cond_s64.pt"), "--num", "6", "--cols", "3", "--out", str(out),
                     "--class-index", "2", "--truncation-psi", "0.7"]) == 0
    assert Image.open(out).size == (3 * 64, 2 * 64)
    assert cli_main(["convert", str(SG2 / "rosinality_s32.pt"), str(tmp_path / "conv")]) == 0
    capsys.readouterr()
    assert cli_main(["info", str(tmp_path / "conv")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["source_format"] == "rosinality" and info["config"]["channels"] == [64, 64, 48, 32]
    assert cli_main(["generate", str(tmp_path / "absent.pkl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_python_dash_m_is_the_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "latentjax", "info", str(SG2 / "ada_gray_s16.pt")],
                            capture_output=True, text=True, check=True)
    info = json.loads(result.stdout)
    assert info["family"] == "stylegan2" and info["config"]["img_channels"] == 1 and info["num_ws"] == 6


def test_pggan_checkpoints_are_recognised_and_round_trip(tmp_path):
    G = lj.load_generator(FIXTURES / "pggan" / "pgan_tiny.pth")
    assert G.family == "pggan" and G.metadata["network"] == "avgG"
    assert lj.load_generator(FIXTURES / "pggan" / "pgan_tiny.pth", ema=False).metadata["network"] == "netG"
    G2 = lj.load_generator(lj.save_generator(G, tmp_path / "pgan"))
    z = np.random.RandomState(0).randn(2, G.z_dim).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(G.generate(G.params, z)), np.asarray(G2.generate(G2.params, z)))


def test_biggan_directories_are_recognised_and_round_trip(tmp_path):
    G = lj.load_generator(FIXTURES / "biggan" / "deep_tiny")
    assert G.family == "biggan"
    G2 = lj.load_generator(lj.save_generator(G, tmp_path / "biggan"))
    z = G.sample_z(jax.random.key(0), 2, 0.4)
    c = lj.class_vector(np.array([0, 1]), G.c_dim)
    np.testing.assert_array_equal(np.asarray(G.generate(G.params, z, c, 0.4)),
                                  np.asarray(G2.generate(G2.params, z, c, 0.4)))


@pytest.mark.parametrize("checkpoint, resolution", [("biggan/deep_tiny", 128), ("pggan/pgan_tiny.pth", 64)])
def test_cli_generates_and_describes_other_families(tmp_path, capsys, checkpoint, resolution):
    truncation = "0.5" if checkpoint.startswith("biggan") else "1.0"
    out = tmp_path / "grid.png"
    assert cli_main(["generate", str(FIXTURES / checkpoint), "--num", "2", "--truncation-psi", truncation,
                     "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * resolution, resolution)
    capsys.readouterr()
    assert cli_main(["info", str(FIXTURES / checkpoint)]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == checkpoint.split("/")[0]


def test_cli_reports_bad_truncation_for_pggan_as_an_error(capsys):
    assert cli_main(["generate", str(FIXTURES / "pggan" / "pgan_tiny.pth"), "--truncation-psi", "0.7"]) == 2
    assert "truncation" in capsys.readouterr().err
