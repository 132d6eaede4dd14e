"""StyleGAN3 (T and R) parity against outputs recorded from NVlabs/stylegan3, loading safety, transforms.

Every array recorded in a fixture's `_io.npz` is recomputed through the public API (an
unrecognised array name fails the test, so no recorded case is skipped) and compared at
relative L2 error below PARITY_RTOL, from the NVIDIA snapshot and from the converted latentjax
directory. Fixture provenance: tests/fixtures/stylegan3/README.md.
"""

import functools
import json
import os
import pickle
import pickletools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import latentjax as lj
from latentjax.cli import main as cli_main
from latentjax.errors import ConversionError, UnsafeGlobalError
from latentjax.io.torch_pickle import load as load_pickle
from latentjax.models import StyleGAN3, StyleGAN3Config, stylegan3_convert
from support import FIXTURES, PARITY_RTOL, REPO, nchw, relative_error

SG3 = FIXTURES / "stylegan3"
CONFIGS = REPO / "configs"
STEMS = ["sg3t_s32", "sg3r_s32", "sg3t_cond_gray_s16", "sg3r_other_s16"]


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    """{(stem, source): G} for the snapshot and for the directory `latentjax convert` writes from it."""
    out = {}
    for stem in STEMS:
        out[stem, "snapshot"] = lj.load_generator(SG3 / f"{stem}.pkl")
        directory = tmp_path_factory.mktemp("sg3") / stem
        assert cli_main(["convert", str(SG3 / f"{stem}.pkl"), str(directory)]) == 0
        out[stem, "native"] = lj.load_generator(directory)
    return out


@functools.partial(jax.jit, static_argnums=0)
def _outputs(G, params, z, c, transform):
    ws = G.mapping(params, z, c)
    return {"ws": ws, "ws06": G.mapping(params, z, c, truncation_psi=0.6),
            "ws05c4": G.mapping(params, z, c, truncation_psi=0.5, truncation_cutoff=4),
            "features": G.features(params, ws), "img06": G.generate(params, z, c, truncation_psi=0.6),
            "img_transformed": G.synthesis(params, ws, transform=transform)}


def _expected(G, io):
    """Yield (name, ours, reference) for every array of a fixture."""
    transform = G.make_transform(io["transform_translate"], io["transform_angle_deg"])
    c = jnp.asarray(io["c"]) if "c" in io.files else None
    out = _outputs(G, G.params, jnp.asarray(io["z"]), c, transform)
    for name in io.files:
        ref = io[name]
        if name in ("z", "c", "transform_translate", "transform_angle_deg"):
            continue
        if name == "ws_psi1":
            ours = out["ws"]
        elif name == "ws_psi06":
            ours = out["ws06"]
        elif name == "ws_psi05_cutoff4":
            ours = out["ws05c4"]
        elif name == "img_psi1":
            ours = nchw(out["features"]["img"])
        elif name == "img_psi06":
            ours = nchw(out["img06"])
        elif name == "img_transformed":
            ours = nchw(out["img_transformed"])
        elif name == "transform_matrix":
            ours = transform
        elif m := re.fullmatch(r"feat_(input|L\d+_\d+_\d+)", name):
            # first sample, before output_scale; the fixture keeps the first channels of each layer
            ours = nchw(out["features"][m[1]])[: ref.shape[0], : ref.shape[1]]
        else:
            raise AssertionError(f"fixture array {name!r} has no recipe in this test")
        yield name, ours, ref


@pytest.mark.slow  # compiles the whole network with every layer's activation as an output
@pytest.mark.parametrize("stem", STEMS)
def test_parity(generators, stem):
    """The snapshot's network against the reference's outputs. The native directory holds the same
    config and bit-identical params (`test_snapshot_and_directory_hold_the_same_network`), so its
    outputs are these."""
    G = generators[stem, "snapshot"]
    io = np.load(SG3 / f"{stem}_io.npz")
    errors = {name: relative_error(ours, ref) for name, ours, ref in _expected(G, io)}
    layers = [n for n in errors if n.startswith("feat_")]
    assert layers == [f"feat_{name}" for name in G.layer_names], "every layer's activation is compared"
    worst = max(errors, key=errors.get)
    assert errors[worst] < PARITY_RTOL, f"relative errors above {PARITY_RTOL}: " + str(
        {k: f"{v:.2e}" for k, v in errors.items() if v >= PARITY_RTOL})


def test_snapshot_and_directory_hold_the_same_network(generators):
    for stem in STEMS:
        a, b = generators[stem, "snapshot"], generators[stem, "native"]
        assert a.config == b.config and a.metadata == b.metadata
        jax.tree.map(np.testing.assert_array_equal, a.params, b.params)


def test_config_and_layer_names_come_from_init_kwargs(generators):
    t, r = generators["sg3t_s32", "snapshot"], generators["sg3r_s32", "snapshot"]
    assert (t.family, t.num_ws, t.config.conv_kernel, t.config.use_radial_filters) == ("stylegan3", 16, 3, False)
    assert (r.config.conv_kernel, r.config.use_radial_filters, r.config.channel_base) == (1, True, 1024)
    assert t.layer_names[:2] == ("input", "L0_36_48") and t.layer_names[-1] == "L14_32_3"
    assert np.shape(r.config.filters(0)[1]) == (12, 12) and np.shape(r.config.filters(12)[1]) == (12,)
    assert t.config.filters(14) == (None, None)
    state = load_pickle(SG3 / "sg3r_s32.pkl")["G_ema"].state_dict()
    assert {k.split(".")[1] for k in state if k.startswith("synthesis.L")} == set(r.layer_names[1:])
    cond, other = generators["sg3t_cond_gray_s16", "snapshot"], generators["sg3r_other_s16", "snapshot"]
    assert (cond.c_dim, cond.img_channels, cond.num_ws, cond.config.conv_clamp, cond.config.num_critical,
            cond.config.margin_size, cond.config.output_scale) == (3, 1, 8, None, 1, 4, 1.0)
    assert (other.num_ws, other.config.filter_size, other.config.lrelu_upsampling, other.config.first_cutoff,
            other.config.last_stopband_rel, other.config.conv_clamp) == (7, 4, 1, 1.5, 2 ** 0.5, 64)


# --- the user transform ------------------------------------------------------------------------
def test_transform_is_per_sample_traceable(generators):
    """One compiled batch of 2: per-sample transforms equal each transform applied to its sample alone
    (differentiability: `test_jit_vmap_grad_of_generate`)."""
    G = generators["sg3t_s32", "snapshot"]
    io = np.load(SG3 / "sg3t_s32_io.npz")
    ws = G.mapping(G.params, jnp.asarray(io["z"][:2]))
    synth = jax.jit(lambda ws, t: G.synthesis(G.params, ws, transform=t))
    transforms = G.make_transform(jnp.asarray([[0.0, 0.0], [0.1, -0.05]]), jnp.asarray([0.0, 10.0]))
    both = synth(ws, transforms)
    identity, moved = (synth(ws, jnp.stack([t, t])) for t in (jnp.eye(3), transforms[1]))
    np.testing.assert_allclose(both[0], identity[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both[1], moved[1], rtol=1e-5, atol=1e-6)
    assert relative_error(both[1], identity[1]) > 1e-2  # it moves the image
    with pytest.raises(ValueError, match="transform"):
        G.synthesis(G.params, ws, transform=jnp.eye(2))


def test_make_transform_inverts_gen_images():
    t = np.asarray(StyleGAN3.make_transform((0.3, -0.2), 25.0), np.float64)
    a = np.deg2rad(25.0)
    m = np.array([[np.cos(a), np.sin(a), 0.3], [-np.sin(a), np.cos(a), -0.2], [0, 0, 1]])  # gen_images.py
    np.testing.assert_allclose(t, np.linalg.inv(m), atol=1e-6)


# --- transforms of the generator, StyleSpace, precision --------------------------------------------
@pytest.mark.slow
def test_jit_vmap_grad_of_generate(generators):
    """vmap of generate equals the batched program of the parity test; reverse mode (in z and in the
    transform's angle) agrees with forward mode, in one compiled program."""
    G = generators["sg3t_s32", "snapshot"]
    io = np.load(SG3 / "sg3t_s32_io.npz")
    z = jnp.asarray(io["z"])
    batched = _outputs(G, G.params, z, None, G.make_transform(io["transform_translate"], io["transform_angle_deg"]))
    per_sample = jax.jit(jax.vmap(lambda zi: G.generate(G.params, zi[None], truncation_psi=0.6)[0]))(z)
    np.testing.assert_allclose(per_sample, batched["img06"], rtol=1e-5, atol=1e-6)

    def loss(z, angle):
        transform = G.make_transform(jnp.zeros(2), angle)
        return jnp.mean(jnp.square(G.generate(G.params, z, truncation_psi=0.7, transform=transform)))

    args, tangents = (z[:1], jnp.float32(5.0)), (jax.random.normal(jax.random.key(1), z[:1].shape), jnp.float32(1.0))
    (gz, ga), (_, forward) = jax.jit(lambda *a: (jax.grad(loss, (0, 1))(*a), jax.jvp(loss, a, tangents)))(*args)
    assert np.isfinite(gz).all() and float(jnp.abs(gz).max()) > 0 and np.isfinite(ga) and ga != 0
    assert float(jnp.sum(gz * tangents[0]) + ga) == pytest.approx(float(forward), rel=1e-4)  # reverse = forward


def test_styles_round_trip_and_protocol(generators):
    G = generators["sg3t_s32", "snapshot"]
    sizes = G.style_sizes(G.params)
    layers = G.style_layers()
    assert len(layers) == G.num_ws and [w for _, _, w in layers] == list(range(G.num_ws))
    assert sizes[0] == 4 and sizes[1:] == tuple(s.in_channels for s in G.config.layers)
    ws = G.mapping(G.params, jax.random.normal(jax.random.key(2), (2, G.z_dim)))
    ws = ws.at[:, 3].add(0.5)  # distinct per-layer ws
    s = jax.jit(G.styles)(G.params, ws)
    assert s.shape == (2, sum(sizes))
    synth = jax.jit(lambda p, ws: G.synthesis(p, ws))
    from_styles = synth(G.with_styles(G.params, s[1]), jnp.zeros((1, G.num_ws, G.w_dim)))
    np.testing.assert_allclose(from_styles[0], synth(G.params, ws[1:])[0], rtol=1e-4, atol=1e-5)
    weight = G.input_weight(G.params)
    assert weight.shape == (sum(sizes[1:]), G.w_dim)
    mask = np.zeros(G.num_ws, bool)
    mask[[1, 15]] = True
    assert G.input_weight(G.params, mask).shape == (sizes[1] + sizes[15], G.w_dim)
    assert G.default_feature_layer in G.layer_names
    hooked = jax.jit(lambda p, w: G.features(p, w, hooks={"L3_36_48": jnp.zeros_like}, layers=["L3_36_48", "img"]))(
        G.params, ws[:1])
    assert float(jnp.abs(hooked["L3_36_48"]).max()) == 0.0


@pytest.mark.slow
def test_bfloat16_compute(generators):
    G = generators["sg3r_s32", "snapshot"]
    io = np.load(SG3 / "sg3r_s32_io.npz")
    z = jnp.asarray(io["z"])
    transform = G.make_transform(io["transform_translate"], io["transform_angle_deg"])
    img32 = _outputs(G, G.params, z, None, transform)["img06"]  # the parity test's compiled program
    img16 = jax.jit(lambda z: G.generate(G.params, z, truncation_psi=0.6, compute_dtype=jnp.bfloat16))(z)
    assert img16.dtype == jnp.float32
    peak = float(jnp.abs(img32).max())
    psnr = 10 * np.log10(peak ** 2 / float(jnp.mean(jnp.square(img16 - img32))))
    assert psnr > 25, psnr


# --- other configurations through the key map ---------------------------------------------------------
def _nvidia_state(G):
    """Our params and filters as an NVIDIA state dict (the inverse of the key map), for round trips."""
    state = {}
    for path, value in jax.tree_util.tree_leaves_with_path(G.params):
        names = [p.key for p in path]
        value = np.asarray(value)
        if names[-1] == "weight":
            value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
        state[".".join(names)] = value
    for i, spec in enumerate(G.config.layers):
        for kind, f in zip(("up", "down"), G.config.filters(i)):
            if f is not None:
                state[f"synthesis.{spec.name}.{kind}_filter"] = f
    return state


@pytest.mark.parametrize("kwargs", [
    dict(c_dim=3, img_channels=1, conv_clamp=None, num_layers=6, num_critical=1, margin_size=4, img_resolution=16,
         mapping_kwargs={"num_layers": 3}, channel_base=256, channel_max=16, output_scale=1.0),
    dict(img_resolution=16, num_layers=5, conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=24,
         first_cutoff=1.5, filter_size=4, conv_clamp=64, magnitude_ema_beta=0.999, num_fp16_res=2),
], ids=["cond_gray_noclamp", "r_other_schedule"])
def test_other_configurations_convert(kwargs):
    """Fresh generators of other configs: every init_kwargs field reaches the config and the names match."""
    kwargs = {"z_dim": 8, "w_dim": 8, "c_dim": 0, "img_channels": 3, **kwargs}
    config = stylegan3_convert._config_kwargs(kwargs, "test")
    G = StyleGAN3.init(StyleGAN3Config(**{k: kwargs[k] for k in ("z_dim", "w_dim", "c_dim", "img_resolution",
                                                                     "img_channels")}, **config), jax.random.key(0))
    state = _nvidia_state(G)
    G2 = stylegan3_convert.from_nvidia(state, kwargs, where="test")
    assert G2.config.layers == G.config.layers
    jax.tree.map(np.testing.assert_array_equal, G2.params, G.params)
    z = jax.random.normal(jax.random.key(1), (2, 8))
    c = jnp.eye(3)[:2] if G.c_dim else None
    img = jax.jit(lambda p: G2.generate(p, z, c, truncation_psi=0.8))(G2.params)
    assert img.shape == (2, 16, 16, G.img_channels) and np.isfinite(np.asarray(img)).all()


def test_conversion_errors_name_the_key():
    network = load_pickle(SG3 / "sg3t_s32.pkl")["G_ema"]
    state, kwargs = network.state_dict(), network.init_kwargs
    convert = lambda s, k: stylegan3_convert.from_nvidia(s, k, where="snap.pkl")
    missing = {k: v for k, v in state.items() if k != "synthesis.L3_36_48.down_filter"}
    with pytest.raises(ConversionError, match=re.escape("'synthesis.L3_36_48.down_filter'")):
        convert(missing, kwargs)
    with pytest.raises(ConversionError, match="unexpected keys.*synthesis.extra"):
        convert({**state, "synthesis.extra": np.zeros(1, np.float32)}, kwargs)
    with pytest.raises(ConversionError, match="imply the layers .* but the state dict has .*L13_32_16"):
        convert(state, {**kwargs, "num_layers": 12})
    with pytest.raises(ConversionError, match="unsupported arguments.*bogus"):
        convert(state, {**kwargs, "bogus": 1})
    bad = {**state, "synthesis.L0_36_48.weight": state["synthesis.L0_36_48.weight"][:, :, :1]}
    with pytest.raises(ConversionError, match=re.escape("'synthesis.L0_36_48.weight'")):
        convert(bad, kwargs)


# --- hostile StyleGAN3 pickles -----------------------------------------------------------------------
class _Payload:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _unframed(data: bytes) -> list[tuple[bytes, object]]:
    """The pickle's opcodes as (raw bytes, argument), FRAME opcodes dropped (framing is optional)."""
    ops = list(pickletools.genops(data))
    out = []
    for (op, arg, pos), (_, _, end) in zip(ops, ops[1:] + [(None, None, len(data))]):
        if op.name != "FRAME":
            out.append((data[pos:end], arg))
    return out


def test_payload_in_the_embedded_source_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"open({str(marker)!r}, 'w').close()\n"
    ops, replaced = [], 0
    for raw, arg in _unframed((SG3 / "sg3t_s32.pkl").read_bytes()):
        if isinstance(arg, str) and "class SynthesisInput" in arg:  # networks_stylegan3.py, as persistence embeds it
            source = (payload + arg).encode()
            raw, replaced = b"X" + len(source).to_bytes(4, "little") + source, replaced + 1
        ops.append(raw)
    assert replaced
    path = tmp_path / "evil_sg3.pkl"
    path.write_bytes(b"".join(ops))
    G = lj.load_generator(path)
    assert G.family == "stylegan3" and not marker.exists()
    exec(compile(payload, "payload", "exec"))  # the payload is live: running the source would have done this
    assert marker.exists()


def test_reduce_payload_in_a_snapshot_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    ops = [raw for raw, _ in _unframed((SG3 / "sg3r_s32.pkl").read_bytes())]
    assert ops[-1] == b"."
    evil = pickle.dumps({"x": _Payload(os.system, (f"touch {marker}",))}, protocol=2)
    evil_value = [raw for raw, _ in _unframed(evil)]  # PROTO, EMPTY_DICT, BINPUT, key, value ..., SETITEM, STOP
    key_and_value = b"".join(evil_value[3:-2])
    path = tmp_path / "evil_sg3.pkl"
    path.write_bytes(b"".join(ops[:-1]) + key_and_value + b"s.")  # the snapshot dict gets one more item
    with pytest.raises(UnsafeGlobalError, match=r"(posix|os)\.system") as info:
        lj.load_generator(path)
    assert str(path) in str(info.value) and not marker.exists()


def test_cli_info_and_generate(tmp_path, capsys):
    assert cli_main(["info", str(SG3 / "sg3r_s32.pkl")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "stylegan3" and info["num_ws"] == 16 and info["layers"][-1] == "L14_32_3"
    assert info["metadata"]["class_name"] == stylegan3_convert.GENERATOR_CLASS
    out = tmp_path / "grid.png"
    assert cli_main(["generate", str(SG3 / "sg3t_s32.pkl"), "--num", "2", "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * 32, 32)


@pytest.mark.slow  # compiles the gradient through the synthesis for the inversion
def test_cli_discover_and_invert(tmp_path, capsys):
    """`latentjax discover` (SeFa smoke config) and `latentjax invert` run on an NVIDIA StyleGAN3 snapshot."""
    snapshot = str(SG3 / "sg3r_other_s16.pkl")
    assert cli_main(["discover", "--config", str(CONFIGS / "sefa.py:smoke"), f"--config.generator={snapshot}",
                     "--config.settings.k=2", "--workdir", str(tmp_path / "sefa")]) == 0
    assert "sefa: 2 directions" in capsys.readouterr().out
    assert Image.open(tmp_path / "sefa" / "walk_seed0.png").size[1] == 2 * 16 + 2  # 2 directions, padded by 2
    G = lj.load_generator(snapshot)
    image = np.clip(np.asarray(G.generate(G.params, jax.random.normal(jax.random.key(0), (1, G.z_dim))))[0], -1, 1)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.rint((image + 1) * 127.5).astype(np.uint8)).save(tmp_path / "in" / "a.png")
    assert cli_main(["invert", snapshot, str(tmp_path / "in"), str(tmp_path / "out"), "--loss", "mse",
                     "--steps", "3", "--space", "w"]) == 0
    assert "inverted 1 images" in capsys.readouterr().out
    assert np.load(tmp_path / "out" / "a.npz")["latents"].shape == (G.w_dim,)
