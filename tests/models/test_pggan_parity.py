"""PGGAN parity against outputs recorded from pytorch_GAN_zoo, and checkpoint conversion errors.

Every array recorded in a fixture's `_io.npz` for the selected network is recomputed through
the public API (an unrecognised array name fails the test, so no recorded case is skipped) and
compared at relative L2 error below PARITY_RTOL. Provenance: tests/fixtures/pggan/README.md.
"""

import copy
import re

import jax
import numpy as np
import pytest

from latentjax.errors import CheckpointError, UnsafeGlobalError
from latentjax.io.torch_pickle import load as load_pickle
from latentjax.models.pggan import PGGAN
from latentjax.load import load_pggan
from latentjax.models.pggan_convert import GAN_ZOO_RECORDS, from_gan_zoo, gan_zoo_key_map
from latentjax.errors import ConversionError
from support import FIXTURES, PARITY_RTOL, nchw, relative_error

PG = FIXTURES / "pggan"
STEMS = ["pgan_tiny", "pgan_cond16", "pgan_plain8", "pgan_s4"]


def _layer(name: str, net: str) -> str | None:
    """Fixture array name -> our feature name ('img' for the output); None for another network's array."""
    if not name.endswith(f"_{net}"):
        return None
    if name.startswith("out_"):
        return "img"
    if name == f"feat4_{net}":  # the shared fixture: features after groupScale0
        return "b4"
    if m := re.fullmatch(rf"feat_(.+)_{net}", name):
        return m[1]
    raise AssertionError(f"fixture array {name!r} has no recipe in this test")


@pytest.mark.parametrize("stem", STEMS)
def test_parity_with_reference(stem):
    io = np.load(PG / f"{stem}_io.npz")
    c = io["c"] if "c" in io.files and io["c"].size else None
    generators = {net: load_pggan(PG / f"{stem}.pth", ema=net == "avgG") for net in ("avgG", "netG")}
    assert generators["avgG"].config == generators["netG"].config
    features = jax.jit(generators["avgG"].features)  # pure: one compilation serves both networks' params
    for net, G in generators.items():
        ours = features(G.params, io["z"], c)
        compared = 0
        for name in io.files:
            if name in ("z", "c") or (layer := _layer(name, net)) is None:
                continue
            error = relative_error(nchw(ours[layer]), io[name])
            assert error < PARITY_RTOL, f"{stem} {name}: relative error {error:.2e}"
            compared += 1
        assert compared >= 2, f"{stem}: nothing recorded for {net}"


def test_stored_config_drives_the_architecture():
    """Fields that the weights cannot tell come from the stored config (README table of the fixtures)."""
    cond = load_pggan(PG / "pgan_cond16.pth").config
    assert (cond.z_dim, cond.c_dim, cond.img_channels, cond.channels) == (12, 5, 1, (24, 16, 8))
    assert (cond.alpha, cond.leaky_relu_slope, cond.output_activation) == (0.35, 0.1, "tanh")
    plain = load_pggan(PG / "pgan_plain8.pth").config
    assert (plain.equalized_lr, plain.alpha, plain.output_activation) == (False, 0.6, "tanh")
    assert load_pggan(PG / "pgan_s4.pth").config.alpha == 0.0  # stored 0.5, but no scale to blend with


def test_category_layout_is_kept_as_metadata():
    G = load_pggan(PG / "pgan_cond16.pth")
    assert G.metadata["categories"] == [["shape", ["disc", "square"]], ["color", ["red", "green", "blue"]]]
    assert G.metadata["network"] == "avgG"
    assert load_pggan(PG / "pgan_cond16.pth", ema=False).metadata["network"] == "netG"


def test_key_map_covers_checkpoint_and_params_tree_exactly(checkpoint):
    """The explicit map is a bijection between the checkpoint's keys and our params paths."""
    config = load_pggan(PG / "pgan_tiny.pth").config
    key_map = gan_zoo_key_map(config)
    assert set(key_map) == set(checkpoint["avgG"]) == set(checkpoint["netG"])
    abstract = PGGAN(config, None).abstract_params()
    ours = [tuple(k.key for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(abstract)]
    assert sorted(key_map.values()) == sorted(ours) and len(set(ours)) == len(key_map) == 30
    assert key_map["scaleLayers.3.1.module.weight"] == ("b64", "conv1", "weight")
    assert key_map["toRGBLayers.0.module.bias"] == ("b4", "torgb", "bias")


# --- conversion errors ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint():
    return load_pickle(PG / "pgan_tiny.pth", extra_records=GAN_ZOO_RECORDS)


DELETE = object()


def _edited(checkpoint, network="avgG", **config):
    obj = copy.deepcopy(checkpoint)
    for name, value in config.items():
        if value is DELETE:
            delattr(obj["config"], name)
        else:
            setattr(obj["config"], name, value)
    return obj, obj[network]


def test_the_config_is_a_data_record_never_an_import():
    with pytest.raises(UnsafeGlobalError, match="models.utils.config.BaseConfig"):
        load_pickle(PG / "pgan_tiny.pth")


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.pop("scaleLayers.1.0.module.weight"), r"\[avgG\]: missing key 'scaleLayers.1.0.module.weight'"),
    (lambda sd: sd.pop("toRGBLayers.4.module.bias"), "missing key 'toRGBLayers.4.module.bias'"),
    (lambda sd: sd.__setitem__("toRGBLayers.5.module.weight", np.zeros((3, 8, 1, 1), np.float32)),
     r"unexpected keys \['toRGBLayers.5.module.weight'\]"),
    (lambda sd: sd.__setitem__("scaleLayers.5.1.module.weight", np.zeros((8, 8, 3, 3), np.float32)),
     "missing key 'scaleLayers.4.0.module.weight'"),
    (lambda sd: sd.__setitem__("toRGBLayers.4.module.weight", np.zeros((3, 9, 1, 1), np.float32)),
     r"key 'toRGBLayers.4.module.weight' has shape \(3, 9, 1, 1\), but the config implies \(3, 8, 1, 1\)"),
    (lambda sd: sd.__setitem__("scaleLayers.2.1.module.bias", np.zeros((7,), np.float32)),
     r"key 'scaleLayers.2.1.module.bias' has shape \(7,\)"),
    (lambda sd: sd.__setitem__("formatLayer.module.weight", np.zeros((512, 32, 1), np.float32)),
     r"key 'formatLayer.module.weight' has shape \(512, 32, 1\), expected 2 dimensions"),
    (lambda sd: sd.__setitem__("formatLayer.weight", np.zeros((512, 32), np.float32)),
     "key 'formatLayer.weight' appears in both the old and the '.module.' layout"),
    (lambda sd: sd.pop("groupScale0.0.module.weight"), "not a ProgressiveGAN generator"),
])
def test_state_dict_errors_name_the_key(checkpoint, edit, message):
    obj, state_dict = _edited(checkpoint)
    edit(state_dict)
    with pytest.raises(ConversionError, match=message):
        from_gan_zoo(obj, "tiny.pth")


@pytest.mark.parametrize("config, message", [
    (dict(depthScale0=64),
     r"config depthScale0=64 does not match the weights, which imply 32 \('groupScale0.0.module.weight'\)"),
    (dict(depthOtherScales=[32, 16, 16]), r"config depthOtherScales=\[32, 16, 16\] does not match"),
    (dict(latentVectorDim=40), "config latentVectorDim=40 does not match"),
    (dict(noiseVectorDim=30), "noiseVectorDim=30 \\+ categoryVectorDim=0 does not match"),
    (dict(dimOutput=1), "config dimOutput=1 does not match"),
    (dict(lossCriterion="Hinge"), "lossCriterion='Hinge' is unknown"),
    (dict(alpha=DELETE), "config has no field 'alpha'"),
    (dict(equalizedlR=DELETE), "config has no field 'equalizedlR'"),
    (dict(alpha=1.5), r"stored config is invalid \(alpha must be in \[0, 1\]"),
    (dict(depthOtherScales=None), "config depthOtherScales=None cannot be read as list"),
    (dict(noiseVectorDim="wide"), "config noiseVectorDim='wide' cannot be read as int"),
])
def test_config_that_does_not_match_the_weights_is_named(checkpoint, config, message):
    obj, _ = _edited(checkpoint, **config)
    with pytest.raises(ConversionError, match=message):
        from_gan_zoo(obj, "tiny.pth")


def test_network_selection_errors(checkpoint):
    obj = copy.deepcopy(checkpoint)
    del obj["avgG"]
    with pytest.raises(ConversionError, match="missing key 'avgG'; pass ema=False"):
        from_gan_zoo(obj, "tiny.pth")
    assert from_gan_zoo(obj, "tiny.pth", ema=False).metadata["network"] == "netG"
    with pytest.raises(ConversionError, match="expected a pytorch_GAN_zoo checkpoint"):
        from_gan_zoo({"netG": obj["netG"]}, "tiny.pth")
    with pytest.raises(ConversionError, match="'config' is a int"):
        from_gan_zoo({**obj, "config": 3}, "tiny.pth", ema=False)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="absent.pth: no such file"):
        load_pggan(tmp_path / "absent.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth: not a PyTorch checkpoint"):
        load_pggan(bad)
