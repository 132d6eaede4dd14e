"""Nonsense is refused, not computed: damaged weights, URLs, overflowing latents, impossible
truncations and command-line values each give a clear error (or the mathematically right answer)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import latentjax as lj
from support import FIXTURES
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


# ----------------------------------------------------------------------------------------------
# Native config.json and NVIDIA init_kwargs of wrong types or signs: CheckpointError naming file and field
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def native_sg2(tmp_path_factory, sg2):
    return lj.save_generator(sg2, tmp_path_factory.mktemp("native") / "g")


def _set(path, value):
    def change(meta):
        *parents, last = path
        node = meta
        for p in parents:
            node = node[p]
        node[last] = value
        return meta
    return change


def _drop(key):
    def change(meta):
        del meta[key]
        return meta
    return change


@pytest.mark.parametrize("change, message", [
    (_set(("config", "channels", 0), -64), r"channels must be a list of positive widths"),
    (_set(("config", "channels", 0), 64.5), r"field 'channels'\[0\] must be an integer, got 64\.5"),
    (_set(("config", "img_resolution"), "32"), r"field 'img_resolution' must be an integer, got '32'"),
    (_set(("config", "z_dim"), "64"), r"field 'z_dim' must be an integer, got '64'"),
    (_set(("config", "z_dim"), True), r"field 'z_dim' must be an integer, got True"),
    (_set(("config", "img_resolution"), 2 ** 1000), r"img_resolution must be a power of two in \[4, 16384\]"),
    (_set(("config", "w_dim"), -1), r"w_dim must be positive, got -1"),
    (_set(("config", "c_dim"), -3), r"c_dim must be >= 0, got -3"),
    (_set(("config", "mapping_lr_multiplier"), "x"), r"field 'mapping_lr_multiplier' must be a number, got 'x'"),
    (_set(("config", "conv_clamp"), -1), r"conv_clamp must be null \(no clamp\) or a finite number > 0, got -1"),
    (_set(("config", "conv_clamp"), "x"), r"field 'conv_clamp' must be a number or null, got 'x'"),
    (_set(("config", "kernel_size"), 0), r"kernel_size must be positive, got 0"),
    (_set(("config", "resample_filter"), []), r"resample_filter must be a non-empty rectangular 2-D table"),
    (_set(("config", "resample_filter"), [[float("nan")] * 4] * 4),
     r"field 'resample_filter'\[0\]\[0\] must be a number, got NaN"),
    (_set(("config", "resample_filter"), [[1, 2], [3]]), r"resample_filter must be a non-empty rectangular"),
    (_set(("config", "architecture"), 3), r"field 'architecture' must be a string, got 3"),
    (_set(("config",), [1, 2]), r"'config' must be a JSON object of the stylegan2 architecture, got a JSON list"),
    (_drop("config"), r"'config' must be a JSON object .*got nothing \(the key is missing\)"),
    (_set(("metadata",), "oops"), r"'metadata' must be a JSON object, got a JSON str"),
    (lambda meta: [meta], r"expected a JSON object with 'format', 'config' and 'metadata', got a JSON list"),
])
def test_native_config_of_wrong_types_or_signs_names_file_and_field(native_sg2, tmp_path, change, message):
    import shutil

    broken = tmp_path / "g"
    shutil.copytree(native_sg2, broken)
    meta = change(json.loads((native_sg2 / "config.json").read_text()))
    (broken / "config.json").write_text(json.dumps(meta))
    with pytest.raises(lj.CheckpointError, match=rf"{broken / 'config.json'}: .*{message}"):
        lj.load_generator(broken)


def test_every_family_config_checks_types_and_signs():
    from latentjax.models.biggan import BigGANConfig
    from latentjax.models.pggan import PGGANConfig
    from latentjax.nn.discriminator import DiscriminatorConfig
    from latentjax.nn.encoder import EncoderConfig

    pggan = PGGANConfig(z_dim=8, channels=(8, 8)).to_dict()
    with pytest.raises(ValueError, match=r"PGGAN config field 'pixel_norm' must be true or false, got 'False'"):
        PGGANConfig.from_dict({**pggan, "pixel_norm": "False"})
    with pytest.raises(ValueError, match=r"PGGAN config field 'leaky_relu_slope' must be a number, got NaN"):
        PGGANConfig.from_dict({**pggan, "leaky_relu_slope": float("nan")})
    with pytest.raises(ValueError, match=r"leaky_relu_slope must be a finite number, got nan"):
        PGGANConfig(z_dim=8, channels=(8,), leaky_relu_slope=float("nan"))
    with pytest.raises(ValueError, match=r"PGGAN config must be an object of fields, got list"):
        PGGANConfig.from_dict([1, 2])
    biggan = BigGANConfig().to_dict()
    with pytest.raises(ValueError, match=r"BigGAN config field 'eps' must be a number, got 'abc'"):
        BigGANConfig.from_dict({**biggan, "eps": "abc"})
    with pytest.raises(ValueError, match=r"BigGAN config field 'layers'\[0\]\[0\] must be true or false, got 'no'"):
        BigGANConfig.from_dict({**biggan, "layers": [["no", 16, 16]] + biggan["layers"][1:]})
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0"):
        BigGANConfig.from_dict({**biggan, "eps": float("inf")})
    encoder = dict(img_resolution=32, img_channels=3, num_ws=8, w_dim=16)
    with pytest.raises(ValueError, match=r"encoder config field 'w_dim' must be an integer, got 1\.5"):
        EncoderConfig.from_dict({**encoder, "w_dim": 1.5})
    with pytest.raises(ValueError, match=r"encoder img_resolution must be a power of two in \[8, 16384\]"):
        EncoderConfig.from_dict({**encoder, "img_resolution": 2 ** 1000})
    assert EncoderConfig.from_dict({**encoder, "w_dim": 16.0}).w_dim == 16  # integral floats are integers
    disc = dict(img_resolution=32, img_channels=3, channels=[8, 8, 8, 8])
    with pytest.raises(ValueError, match=r"conv_clamp must be null \(no clamp\) or a finite number > 0"):
        DiscriminatorConfig.from_dict({**disc, "conv_clamp": 0})
    with pytest.raises(ValueError, match=r"resample_filter must hold finite numbers with a non-zero sum"):
        DiscriminatorConfig.from_dict({**disc, "resample_filter": [[1, -1], [-1, 1]]})
    with pytest.raises(ValueError, match=r"discriminator config is missing the required keys \['channels'\]"):
        DiscriminatorConfig.from_dict({"img_resolution": 32, "img_channels": 3})


def test_damaged_native_params_are_named(sg2, tmp_path):
    params = jax.tree.map(np.asarray, sg2.params)
    weight = params["synthesis"]["b4"]["conv1"]["weight"].copy()
    weight.flat[7] = np.nan
    params["synthesis"]["b4"]["conv1"]["weight"] = weight
    lj.save_generator(type(sg2)(sg2.config, params, sg2.metadata), tmp_path / "g")
    with pytest.raises(lj.CheckpointError, match=r"params: \['synthesis'\]\['b4'\]\['conv1'\]\['weight'\] holds 1 "
                                                 r"non-finite value\(s\)"):
        lj.load_generator(tmp_path / "g")


@pytest.mark.parametrize("change, message", [
    (lambda spec: {**spec, "init_kwargs": [1, 2]}, r"'init_kwargs' must be a JSON object"),
    (lambda spec: {**spec, "init_kwargs": {**spec["init_kwargs"], "mapping_kwargs": [1]}},
     r"init_kwargs\.mapping_kwargs must be an object of arguments, got list"),
    (lambda spec: {**spec, "init_kwargs": {**spec["init_kwargs"], "img_resolution": "abc"}},
     r"init_kwargs\.img_resolution must be an integer, got 'abc'"),
    (lambda spec: {**spec, "init_kwargs": {**spec["init_kwargs"], "synthesis_kwargs": {"conv_clamp": "x"}}},
     r"init_kwargs\.synthesis_kwargs\.conv_clamp must be a number or null, got 'x'"),
    (lambda spec: {**spec, "init_kwargs": {**spec["init_kwargs"], "synthesis_kwargs": {"conv_clamp": -1}}},
     r"conv_clamp must be null \(no clamp\) or a finite number > 0, got -1"),
    (lambda spec: {**spec, "init_kwargs": {**spec["init_kwargs"], "bogus_top": 1}},
     r"init_kwargs has unsupported arguments \['bogus_top'\]"),
    (lambda spec: [spec], r"expected a JSON object with 'init_kwargs'"),
])
def test_nvidia_init_kwargs_of_wrong_types_name_the_json_file(tmp_path, change, message):
    import shutil

    shutil.copy(SG2 / "ada_s32.pt", tmp_path / "g.pt")
    (tmp_path / "g.json").write_text(json.dumps(change(json.loads((SG2 / "ada_s32.json").read_text()))))
    with pytest.raises(lj.CheckpointError, match=rf"{tmp_path / 'g.json'}: .*{message}"):
        lj.load_generator(tmp_path / "g.pt")


# ----------------------------------------------------------------------------------------------
# Nonsense inputs to the pure functions
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("psi", [float("nan"), float("inf"), -float("inf"), np.float32(np.nan), jnp.array(np.nan)])
def test_stylegan2_refuses_a_non_finite_concrete_truncation(sg2, psi):
    z = jnp.zeros((2, sg2.z_dim))
    with pytest.raises(ValueError, match="truncation_psi must be finite"):
        sg2.mapping(sg2.params, z, truncation_psi=psi)
    with pytest.raises(ValueError, match="truncation_psi must be finite"):
        sg2.generate(sg2.params, z, truncation_psi=psi)


@pytest.mark.parametrize("cutoff", [-1, 1.5, True, np.array(-2)])
def test_stylegan2_refuses_an_impossible_truncation_cutoff(sg2, cutoff):
    with pytest.raises(ValueError, match=r"truncation_cutoff must be None \(all layers\) or an integer >= 0"):
        sg2.mapping(sg2.params, jnp.zeros((1, sg2.z_dim)), truncation_psi=0.5, truncation_cutoff=cutoff)


def test_traced_truncation_is_used_as_given(sg2):
    """Documented: traced values are not checked (no host round trip); psi 0 and cutoff 0 still work."""
    z = jax.random.normal(jax.random.key(0), (2, sg2.z_dim))
    run = jax.jit(lambda psi, cutoff: sg2.mapping(sg2.params, z, truncation_psi=psi, truncation_cutoff=cutoff))
    assert np.all(np.isnan(run(jnp.float32(np.nan), 3)[:, :3]))
    np.testing.assert_allclose(run(0.5, 0), sg2.mapping(sg2.params, z), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.int32, jnp.bool_, "int8", "nope"])
def test_every_family_refuses_a_non_float_compute_dtype(sg2, pggan, biggan_tiny, dtype):
    message = "compute_dtype must be a floating-point dtype"
    with pytest.raises(ValueError, match=message):
        sg2.generate(sg2.params, jnp.zeros((1, sg2.z_dim)), compute_dtype=dtype)
    with pytest.raises(ValueError, match=message):
        pggan.generate(pggan.params, jnp.zeros((1, pggan.z_dim)), compute_dtype=dtype)
    with pytest.raises(ValueError, match=message):
        pggan.features(pggan.params, jnp.zeros((1, pggan.z_dim)), compute_dtype=dtype)
    c = biggan_tiny.class_vector(np.array([0]))
    with pytest.raises(ValueError, match=message):
        biggan_tiny.generate(biggan_tiny.params, jnp.zeros((1, biggan_tiny.z_dim)), c, truncation_psi=0.5,
                             compute_dtype=dtype)


def test_float_compute_dtypes_are_accepted(sg2):
    z = jnp.zeros((1, sg2.z_dim))
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16, "float32"):
        assert sg2.generate(sg2.params, z, compute_dtype=dtype).dtype == jnp.float32


@pytest.mark.parametrize("loss, message", [
    ({"mse": float("nan")}, r"loss weight 'mse' must be a finite number >= 0, got nan"),
    ({"mse": -1.0}, r"loss weight 'mse' must be a finite number >= 0, got -1\.0"),
    ({"mse": float("inf")}, r"loss weight 'mse' must be a finite number >= 0"),
    ({"mse": "1"}, r"loss weight 'mse' must be a finite number >= 0, got '1'"),
    ({"mse": True}, r"loss weight 'mse' must be a finite number >= 0, got True"),
])
def test_inversion_refuses_nan_or_negative_loss_weights(sg2, loss, message):
    from latentjax.inversion.multicode import MultiCodeConfig
    from latentjax.inversion.project import parse_loss

    with pytest.raises(ValueError, match=message):
        parse_loss(loss)
    with pytest.raises(ValueError, match=message):
        lj.invert(sg2, jnp.zeros((1, 32, 32, 3)), space="w", steps=1, loss=loss, key=jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        MultiCodeConfig(loss=loss)


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0, -1.0])
def test_inversion_refuses_a_nan_or_non_positive_learning_rate(lr):
    from latentjax.inversion.multicode import MultiCodeConfig
    from latentjax.inversion.project import InversionConfig

    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        InversionConfig(lr=lr)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        MultiCodeConfig(lr=lr)
    with pytest.raises(ValueError, match="truncation_psi must be a finite number"):
        InversionConfig(truncation_psi=float("nan"))
    with pytest.raises(ValueError, match="noise_regularization must be a finite number >= 0"):
        InversionConfig(noise_regularization=float("nan"))


def test_indomain_refuses_nan_settings(monkeypatch):
    from latentjax.inversion import indomain

    class FakeEncoder(indomain.Encoder):
        def __init__(self):
            pass

        def check_generator(self, G):
            pass

    G = type("G", (), {"c_dim": 0, "style_based": True})()
    for kwargs, message in [({"lr": float("nan")}, "lr must be a finite number > 0"),
                            ({"feature_weight": float("nan")}, "feature_weight must be a finite number >= 0"),
                            ({"regularization_weight": -2.0}, "regularization_weight must be a finite number >= 0")]:
        with pytest.raises(ValueError, match=message):
            indomain.InDomainInverter(G, FakeEncoder(), **kwargs)


@pytest.mark.parametrize("argv, message", [
    (["--truncation", "nan"], "--truncation: expected a finite number"),
    (["--steps", "0"], "--steps: expected a positive integer"),
    (["--steps", "-5"], "--steps: expected a positive integer"),
    (["--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["--mse-weight", "nan"], "--mse-weight: expected a positive finite number"),
    (["--mse-weight", "-1"], "--mse-weight: expected a positive finite number"),
    (["--class-index", "-1"], "--class-index: expected an integer >= 0"),
    (["--seed", "-1"], "--seed: expected a seed in [0, 2**32)"),
])
def test_invert_options_refuse_nonsense_in_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as done:
        main(["invert", "builtin:shapes", "in", "out", *argv])
    assert done.value.code == 2 and message in capsys.readouterr().err


def test_invert_classes_file_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for content, message in [(None, "--classes nope.json: cannot read it"),
                             ("{not json", "not JSON"),
                             ('{"a.png": -1}', "must hold a JSON object {image name: class index}")]:
        path = "nope.json"
        if content is not None:
            path = str(tmp_path / "classes.json")
            (tmp_path / "classes.json").write_text(content)
        with pytest.raises(SystemExit) as done:
            main(["invert", "builtin:shapes", str(tmp_path / "in"), str(tmp_path / "out"), "--loss", "mse",
                  "--classes", path])
        assert str(done.value.code).startswith("error: --classes") and message in str(done.value.code)
        assert "\n" not in str(done.value.code)


def test_pixel_norm_gradient_is_the_reference_formulas():
    """The overflow guard adds no gradient: d/dz equals that of x * rsqrt(mean(x^2) + eps), finite."""
    x = 2 * jax.random.normal(jax.random.key(0), (256, 8))
    w = jax.random.normal(jax.random.key(1), (8, 8))
    ours = jax.vmap(jax.grad(lambda x: jnp.sum(jnp.tanh(normalize_2nd_moment(x) @ w))))(x)
    reference = jax.vmap(jax.grad(lambda x: jnp.sum(jnp.tanh(
        x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + 1e-8) @ w))))(x)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
