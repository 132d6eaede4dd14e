"""BigGAN-deep parity against pytorch-pretrained-BigGAN 0.1.1, and checkpoint loading errors.

Every array recorded in a fixture's `_io.npz` is recomputed through the public API (an
unrecognised array name fails the test, so no recorded case is skipped) and compared at
relative L2 error below PARITY_RTOL. Fixture provenance: tests/fixtures/biggan/README.md.
"""

import functools
import json
import re
import runpy
import shutil
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.errors import CheckpointError
from latentjax.io.torch_pickle import load as load_pickle
from latentjax.load import is_biggan_dir, load_biggan_dir, load_native
from latentjax.models import FAMILIES
from latentjax.models.biggan import BigGAN, BigGANConfig
from latentjax.errors import ConversionError
from latentjax.models.biggan_convert import from_state_dict, key_map
from latentjax.ops.batch_norm import statistics_weights
from support import FIXTURES, PARITY_RTOL, REPO, nchw, relative_error

BIGGAN = FIXTURES / "biggan"
CASES = ["deep_tiny", "deep_s64_attn2"]  # legacy and zip serialisation, two layouts


@functools.cache
def _load(name):
    return load_biggan_dir(BIGGAN / name)


@functools.cache
def _features_fn(name):
    """One compiled function per model; the truncation is traced (the float32 path)."""
    G = _load(name)
    return jax.jit(lambda params, z, c, t: G.features(params, z, c, truncation_psi=t))


def _tag(t: float) -> str:
    return "t" + repr(float(t)).replace(".", "p")


def _expected(name):
    """Yield (array name, ours, reference) for every array of a fixture."""
    G, io = _load(name), np.load(BIGGAN / f"{name}_io.npz")
    c = jnp.asarray(io["class_vector"])
    features = {t: _features_fn(name)(G.params, jnp.asarray(io[f"z_{_tag(t)}"]), c, jnp.float32(t))
                for t in io["truncations"]}
    tags = {_tag(t): t for t in io["truncations"]}
    # the reference's ModuleList order: our layer names without gen_z
    modules = [n for n in G.layer_names if n != "gen_z"]
    for array in io.files:
        ref = io[array]
        if array in ("class_vector", "truncations", "chmean_channels") or array.startswith("z_"):
            continue
        m = re.fullmatch(r"(\w+?)_(t\d+p\d+)(_s4)?", array)
        assert m and m[2] in tags, f"fixture array {array!r} has no recipe in this test"
        what, t, feats = m[1], tags[m[2]], features[tags[m[2]]]
        if what == "bn_rows":  # the reference's (row, coef), where coef == 0 means row alone
            row, w_row, w_next = statistics_weights(float(t), G.config.n_stats)
            ours = np.array([row, w_row if w_next else 0.0])
        elif what in ("genz", "gen_z"):
            ours = nchw(feats["gen_z"])
        elif what == "block0":
            ours = nchw(feats["block0"])
        elif m_layer := re.fullmatch(r"layer(\d+)", what):
            ours = nchw(feats[modules[int(m_layer[1])]])
        elif what == "chmean":
            assert list(io["chmean_channels"]) == [feats[n].shape[-1] for n in modules]
            ours = np.concatenate([np.asarray(feats[n]).mean(axis=(1, 2)) for n in modules], axis=1)
        elif what == "out":
            ours = nchw(feats["img"])[:, :, ::4, ::4] if m[3] else nchw(feats["img"])
        else:
            raise AssertionError(f"fixture array {array!r} has no recipe in this test")
        yield array, ours, ref


@pytest.mark.parametrize("name", CASES)
def test_every_recorded_array_matches_the_reference(name):
    errors = {array: relative_error(ours, ref) for array, ours, ref in _expected(name)}
    assert len(errors) >= 15
    bad = {k: v for k, v in errors.items() if not v < PARITY_RTOL}
    assert not bad, f"relative L2 errors above {PARITY_RTOL}: {bad}"


def test_python_float_truncation_matches_the_reference():
    """The float64 path (a Python float, static under jit) reproduces the recorded images too,
    here at a grid point where float64 rounding selects the row below (0.3 / 0.1 = 2.9999999999999996).
    Both paths give the same statistics weights everywhere: tests/models/test_biggan_model.py."""
    G, io = _load("deep_s64_attn2"), np.load(BIGGAN / "deep_s64_attn2_io.npz")
    z, c = jnp.asarray(io["z_t0p3"]), jnp.asarray(io["class_vector"])
    img = jax.jit(functools.partial(G.generate, truncation_psi=0.3))(G.params, z, c)
    assert relative_error(nchw(img), io["out_t0p3"]) < PARITY_RTOL


def test_fixtures_cover_both_serialisations_and_every_key():
    assert not zipfile.is_zipfile(BIGGAN / "deep_tiny" / "pytorch_model.bin")  # legacy torch.save
    assert zipfile.is_zipfile(BIGGAN / "deep_s64_attn2" / "pytorch_model.bin")
    for name in CASES:
        G, state_dict = _load(name), load_pickle(BIGGAN / name / "pytorch_model.bin")
        table = key_map(G.config)
        used = [key for keys in table.values() for key in keys]
        assert sorted(used) == sorted(state_dict) and len(used) == len(set(used))
        assert set(table) == {jax.tree_util.keystr(p, simple=True, separator="/")
                              for p, _ in jax.tree_util.tree_leaves_with_path(G.params)}
    assert key_map(_load("deep_s64_attn2").config)["block2/conv_1/weight"] == tuple(
        f"generator.layers.3.conv_1.weight_{s}" for s in ("orig", "u", "v"))


def test_spectral_norm_uses_the_stored_vectors():
    """W = weight_orig / (u . W_mat v): the stored u, v, not the true spectral norm."""
    G, sd = _load("deep_tiny"), load_pickle(BIGGAN / "deep_tiny" / "pytorch_model.bin")
    name = "generator.layers.3.conv_1"
    orig = sd[f"{name}.weight_orig"].astype(np.float64)
    sigma = sd[f"{name}.weight_u"] @ orig.reshape(len(orig), -1) @ sd[f"{name}.weight_v"]
    np.testing.assert_allclose(G.params["block3"]["conv_1"]["weight"], (orig / sigma).transpose(2, 3, 1, 0),
                               rtol=1e-6)
    assert sigma < 0.99 * np.linalg.norm(orig.reshape(len(orig), -1), ord=2)
    rgb = G.params["conv_to_rgb"]
    assert rgb["weight"].shape == (3, 3, 8, 3) and rgb["bias"].shape == (3,)


# --- loading errors -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    config = json.loads((BIGGAN / "deep_tiny" / "config.json").read_text())
    return BigGANConfig.from_dict(config), load_pickle(BIGGAN / "deep_tiny" / "pytorch_model.bin")


def _edit(state_dict, drop=()):
    return {k: v for k, v in state_dict.items() if k not in drop}


@pytest.mark.parametrize("edit,match", [
    (lambda sd: _edit(sd, drop=["generator.layers.3.conv_1.weight_u"]),
     r"missing key 'generator\.layers\.3\.conv_1\.weight_u'"),
    (lambda sd: _edit(sd, drop=["generator.bn.running_vars"]), r"missing key 'generator\.bn\.running_vars'"),
    (lambda sd: {**sd, "generator.layers.3.conv_1.extra": np.zeros(2, np.float32)},
     r"unexpected keys \['generator\.layers\.3\.conv_1\.extra'\]"),
    (lambda sd: {**sd, "generator.layers.5.conv_1.weight_orig": sd["generator.layers.5.conv_1.weight_orig"][:, :, :2]},
     r"key 'generator\.layers\.5\.conv_1\.weight_orig' has shape \(16, 16, 2, 3\), "
     r"but config\.json implies \(16, 16, 3, 3\)"),
    (lambda sd: {**sd, "generator.layers.5.conv_1.weight_v": sd["generator.layers.5.conv_1.weight_v"][:-1]},
     r"key 'generator\.layers\.5\.conv_1\.weight_v' has shape \(143,\), but config\.json implies \(144,\)"),
    (lambda sd: {**sd, "generator.layers.0.bn_2.running_means": sd["generator.layers.0.bn_2.running_means"][:, :-1]},
     r"key 'generator\.layers\.0\.bn_2\.running_means' has shape \(51, 31\)"),
    (lambda sd: {**sd, "generator.layers.1.conv_3.weight_u": np.zeros(128, np.float32)},
     r"spectral norm of 'generator\.layers\.1\.conv_3'"),
])
def test_bad_state_dicts_name_the_key(tiny, edit, match):
    config, state_dict = tiny
    with pytest.raises(ConversionError, match=match):
        from_state_dict(edit(state_dict), config, where="model.bin", config_file="config.json")


@pytest.mark.parametrize("change,match", [
    ({"channel_width": 16},
     r"'generator\.gen_z\.weight_orig' has shape \(2048, 32\), but config\.json has channel_width=16"),
    ({"num_classes": 12}, r"'embeddings\.weight' has shape \(16, 10\), but config\.json has z_dim=16, num_classes=12"),
    ({"attention_layer_position": 6},
     r"attention layers at generator\.layers \[8\], but config\.json has attention_layer_position=6"),
    ({"attention_layer_position": -1},
     r"indices \[0, 1, .* 10\], but config\.json describes 10 GenBlocks \(0 \.\. 9\)"),
    ({"n_stats": 41}, r"'generator\.bn\.running_means' has 51 rows, but config\.json has n_stats=41"),
    ({"layers": [[False, 16, 16], [True, 16, 16], [False, 16, 16], [True, 16, 16], [False, 16, 8], [True, 8, 4],
                 [False, 4, 4], [True, 4, 2], [False, 2, 2], [True, 2, 1]]},
     r"key 'generator\.layers\.3\.conv_3\.bias' has shape \(64,\), but config\.json implies \(128,\)"),
])
def test_config_that_does_not_match_the_weights(tiny, change, match):
    config, state_dict = tiny
    config = BigGANConfig.from_dict({**config.to_dict(), **change})
    with pytest.raises(ConversionError, match=match):
        from_state_dict(state_dict, config, where="model.bin", config_file="config.json")


def test_directory_errors_name_the_file(tmp_path):
    shutil.copytree(BIGGAN / "deep_tiny", tmp_path / "g")
    assert is_biggan_dir(tmp_path / "g") and not is_biggan_dir(BIGGAN)
    config_file = tmp_path / "g" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "hidden_dim": 3}))
    with pytest.raises(ConversionError, match=r"config\.json: .*unknown keys \['hidden_dim'\]"):
        load_biggan_dir(tmp_path / "g")
    config_file.write_text(json.dumps({k: v for k, v in config.items() if k != "n_stats"}))
    with pytest.raises(ConversionError, match=r"config\.json: .*missing keys \['n_stats'\]"):
        load_biggan_dir(tmp_path / "g")
    config_file.write_text("{not json")
    with pytest.raises(ConversionError, match=r"config\.json: not a valid BigGAN config"):
        load_biggan_dir(tmp_path / "g")
    (tmp_path / "g" / "pytorch_model.bin").unlink()
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: missing"):
        load_biggan_dir(tmp_path / "g")


def test_native_round_trip_and_converter_script(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(FAMILIES, "biggan", (BigGAN, BigGANConfig))  # the registry entry the package adds
    G = _load("deep_s64_attn2")

    def convert(argv):
        monkeypatch.setattr("sys.argv", ["convert/biggan.py", *argv])
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(REPO / "convert" / "biggan.py"), run_name="__main__")
        return done.value.code

    assert convert([str(BIGGAN / "deep_s64_attn2"), str(tmp_path / "g")]) == 0
    G2 = load_native(tmp_path / "g")
    assert G2.config == G.config and G2.metadata == G.metadata and G2.family == "biggan"
    jax.tree.map(np.testing.assert_array_equal, G.params, G2.params)
    assert convert([str(BIGGAN), str(tmp_path / "h")]) == 2
    assert "a directory must hold a latentjax generator" in capsys.readouterr().err

