"""Identity mapping (Nitzan et al.): the MLP and its Keras initialisers, MS-SSIM and the centre
weighting of the pixel loss, the encoders (a recognizer's embedding, a torchvision ResNet's pooled
features under each input convention), the mapper's pipeline and directory, and a smoke run of
the training task that resumes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.signal import correlate2d

import latentjax as lj
from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.errors import CheckpointError
from latentjax.identity import IdentityMapper, MapperConfig, load_encoder, save_mapper
from latentjax.metrics.image import centre_weights, gaussian_window, ms_ssim, ms_ssim_weights, ssim
from latentjax.nn.mlp import MLP, MLPConfig
from latentjax.nn.recognizer import Recognizer, RecognizerConfig, save_recognizer
from latentjax.nn.resnet import load_resnet
from latentjax.programs.flags import parse_config_flags
from latentjax.train import train

from support import FIXTURES, REPO

CONFIGS = REPO / "configs"


def test_mlp_layers_and_the_references_initialisers():
    config = MLPConfig(400, (300, 300, 200), scaled_layers=2)
    mlp = MLP.init(config, jax.random.key(0))
    assert mlp.apply(mlp.params, jnp.ones((5, 400))).shape == (5, 200)
    first, second = np.asarray(mlp.params["dense0"]["kernel"]), np.asarray(mlp.params["dense1"]["kernel"])
    limit = np.sqrt(6 / (400 + 300))  # Glorot uniform
    assert np.abs(first).max() <= limit and np.abs(first).max() > 0.95 * limit
    assert np.std(second) == pytest.approx(np.sqrt(2 / 1.04 / 300), rel=0.05)  # VarianceScaling(2 / (1 + 0.2²))
    assert np.all(np.asarray(mlp.params["dense2"]["bias"]) == 0)
    x = jax.random.normal(jax.random.key(1), (3, 400))
    hidden = x @ first + mlp.params["dense0"]["bias"]
    hidden = jnp.where(hidden > 0, hidden, 0.2 * hidden) @ second + mlp.params["dense1"]["bias"]
    hidden = jnp.where(hidden > 0, hidden, 0.2 * hidden) @ mlp.params["dense2"]["kernel"] + mlp.params["dense2"]["bias"]
    np.testing.assert_allclose(mlp.apply(mlp.params, x), hidden, rtol=1e-4, atol=1e-5)  # no activation at the end
    with pytest.raises(ValueError, match=r"MLP input must be \[N, 400\]"):
        mlp.apply(mlp.params, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="scaled_layers"):
        MLPConfig(4, (3,), scaled_layers=2)


def _ssim_and_cs_numpy(x, y, data_range):
    """Per channel: SSIM and contrast-structure over 'valid' 11x11 Gaussian windows, by 2-D correlation."""
    g = gaussian_window().astype(np.float64)
    window = np.outer(g, g)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = []
    for c in range(x.shape[-1]):
        a, b = x[..., c], y[..., c]
        f = lambda v: correlate2d(v, window, mode="valid")  # noqa: E731
        mu_a, mu_b = f(a), f(b)
        var_a, var_b, cov = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
        cs = (2 * cov + c2) / (var_a + var_b + c2)
        out.append((np.mean((2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1) * cs), np.mean(cs)))
    return np.array(out)


def test_ms_ssim_is_the_product_of_scales():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 45, 45, 3))
    y = np.clip(x + 0.2 * rng.normal(size=x.shape), 0, 1)
    np.testing.assert_allclose(ms_ssim(x, y, 1.0, weights=(1.0,)), ssim(x, y, 1.0), rtol=1e-5)
    weights = ms_ssim_weights(2)
    assert sum(weights) == pytest.approx(1.0) and weights[0] / weights[1] == pytest.approx(0.0448 / 0.2856)
    expected = []
    for a, b in zip(x, y):
        cs_full = _ssim_and_cs_numpy(a, b, 1.0)[:, 1]
        half = lambda v: np.pad(v, ((0, 1), (0, 1), (0, 0)), mode="symmetric").reshape(23, 2, 23, 2, 3).mean((1, 3))  # noqa: E731
        ssim_half = _ssim_and_cs_numpy(half(a), half(b), 1.0)[:, 0]
        expected.append(np.mean(np.maximum(cs_full, 0) ** weights[0] * np.maximum(ssim_half, 0) ** weights[1]))
    np.testing.assert_allclose(ms_ssim(x, y, 1.0, weights=weights), expected, rtol=1e-4)
    np.testing.assert_allclose(ms_ssim(x, x, 1.0, weights=weights), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ms_ssim(x, y, 1.0, weights=ms_ssim_weights(4))  # 45, 23, 12, 6 pixels
    weights2d = centre_weights(32, 32, 10.0)
    assert weights2d.sum() == pytest.approx(1.0) and weights2d[15, 15] < weights2d[0, 0]
    assert weights2d[0, 0] == pytest.approx(weights2d.max())


def _recognizer(tmp_path, name, heads, classes, key):
    net = Recognizer.init(RecognizerConfig(16, 3, heads, classes, width=4, depth=2), jax.random.key(key))
    return net, save_recognizer(net, tmp_path / name)


def test_encoders_from_their_specs(tmp_path):
    net, path = _recognizer(tmp_path, "pose", ("x", "shape", "y"), (1, 3, 1), 0)
    images = jax.random.uniform(jax.random.key(1), (3, 16, 16, 3), minval=-1, maxval=1)
    pooled = load_encoder(f"recognizer:{path}")
    np.testing.assert_allclose(pooled.embed(pooled.params, images), net.embed(net.params, images), rtol=1e-6)
    assert pooled.dim == 8
    unit = load_encoder(f"recognizer:{path}", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit.embed(unit.params, images), axis=1), 1.0, rtol=1e-5)
    values = load_encoder(f"recognizer_values:{path}")
    logits = net.logits(net.params, images)
    np.testing.assert_allclose(values.embed(values.params, images),
                               np.concatenate([logits["x"], logits["y"]], axis=1), rtol=1e-6)
    picked = load_encoder(f"recognizer_values:{path}", heads=("y",))
    np.testing.assert_allclose(picked.embed(picked.params, images), logits["y"], rtol=1e-6)
    assert picked.dim == 1 and picked.heads == ("y",) and values.heads == ("x", "y") and pooled.heads is None
    for spec, bad in ((f"recognizer_values:{path}", ("shape",)), (f"recognizer_values:{path}", ()),
                      (f"recognizer:{path}", ("x",))):
        with pytest.raises(ValueError, match=r"heads must be some of its value heads \('x', 'y'\)|only be picked"):
            load_encoder(spec, heads=bad)
    heads = load_encoder(f"recognizer_heads:{path}")
    np.testing.assert_allclose(heads.embed(heads.params, images), np.concatenate(
        [logits["x"], jax.nn.softmax(logits["shape"]), logits["y"]], axis=1), rtol=1e-5, atol=1e-7)
    assert heads.dim == 5
    with pytest.raises(ValueError, match="no NAME_cos / NAME_sin head pair"):
        load_encoder(f"recognizer_turns:{path}")
    turning, turning_path = _recognizer(tmp_path, "turning", ("shape", "hue_cos", "hue_sin"), (3, 1, 1), 5)
    turns = load_encoder(f"recognizer_turns:{turning_path}")
    out = turning.logits(turning.params, images)
    np.testing.assert_allclose(turns.embed(turns.params, images), np.concatenate(
        [jax.nn.softmax(out["shape"]), out["hue_cos"], out["hue_sin"],
         np.arctan2(out["hue_sin"], out["hue_cos"]) / (2 * np.pi) % 1.0], axis=1), rtol=1e-5, atol=1e-6)
    assert turns.dim == 6
    larger = jax.image.resize(images, (3, 32, 32, 3), "linear")  # other sizes are resized to the encoder's
    assert values.embed(values.params, larger).shape == (3, 2)
    resnet = load_resnet(FIXTURES / "resnet" / "basic.pt")
    faces = jax.random.uniform(jax.random.key(2), (2, 224, 224, 3), minval=-1, maxval=1)
    imagenet = load_encoder(f"resnet:{FIXTURES / 'resnet' / 'basic.pt'}")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(imagenet.embed(imagenet.params, faces),
                               resnet.apply(resnet.variables, ((faces + 1) / 2 - mean) / std)[1], rtol=1e-4, atol=1e-5)
    vgg = load_encoder(f"vggface2:{FIXTURES / 'resnet' / 'basic.pt'}")
    bgr = (faces[..., ::-1] + 1) * 127.5 - np.array([91.4953, 103.8827, 131.0912])
    np.testing.assert_allclose(vgg.embed(vgg.params, faces), resnet.apply(resnet.variables, bgr)[1], rtol=1e-4,
                               atol=1e-4)
    for spec in ("pose", "lenet:x.pt", f"recognizer_values:{_recognizer(tmp_path, 'cls', ('shape',), (3,), 2)[1]}"):
        with pytest.raises(ValueError, match="expected KIND:PATH|no value heads"):
            load_encoder(spec)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny generator and identity / pose recognizers, saved as a user's files would be."""
    root = tmp_path_factory.mktemp("identity")
    config = StyleGAN2Config(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channels=(8, 8, 8), mapping_layers=1)
    generator = lj.save_generator(StyleGAN2.init(config, jax.random.key(0)), root / "g")
    identity = _recognizer(root, "id", ("shape", "hue_cos"), (3, 1), 1)[1]
    pose = _recognizer(root, "pose", ("x", "y", "rotation_cos", "rotation_sin"), (1, 1, 1, 1), 2)[1]
    return root, generator, identity, pose


def test_mapper_pipeline_and_directory(parts, tmp_path):
    _, generator, identity, pose = parts
    config = MapperConfig(str(generator), f"recognizer:{identity}", f"recognizer:{pose}", hidden=(16,))
    mapper = IdentityMapper.build(config, jax.random.key(3))
    G, space = mapper.space.generator, mapper.space
    images = jax.jit(space.decode)(G.params, space.sample(jax.random.key(4), 4))  # compiled: one program, not per op
    swapped = jax.jit(mapper.swap)(images[:2], images[2:])
    w = jax.jit(lambda identity, attributes: mapper.to_w(mapper.params, mapper.encode_identity(identity),
                                                         mapper.encode_attributes(attributes)))(images[:2], images[2:])
    np.testing.assert_allclose(swapped, jax.jit(G.synthesis)(G.params, jnp.repeat(w[:, None], G.num_ws, axis=1)),
                               rtol=1e-4, atol=1e-5)
    grads = jax.jit(jax.grad(lambda p: jnp.mean(mapper.generate(p, images[:2], images[2:]) ** 2)))(mapper.params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["attributes"]["conv1"]["kernel"]).sum()) > 0  # the attribute encoder trains
    loaded = lj.identity.load(save_mapper(mapper, tmp_path / "mapper"))
    np.testing.assert_allclose(jax.jit(loaded.swap)(images[:2], images[2:]), swapped, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="as many identity as attribute images"):
        mapper.swap(images[:2], images[1:])
    (tmp_path / "mapper" / "config.json").write_text('{"format": "latentjax.identity_mapper", "format_version": 1, '
                                                      '"config": {"generator": "g"}}')
    with pytest.raises(CheckpointError, match="invalid identity mapper config"):
        lj.identity.load(tmp_path / "mapper")


def test_swap_scores_against_the_truth():
    """A perfect swap (the render of the intended factors) scores 0 everywhere; copying the attribute
    image follows every attribute but keeps identity only by chance; copying the identity image the reverse."""
    from latentjax.shapes.swaps import swap_truth
    from latentjax.shapes.reading import readout

    def perfect(identity_images, attribute_images):
        read = lambda images: {k: v for k, v in readout(images).items()}  # noqa: E731
        return lj.shapes.render(swap_truth(read(identity_images), read(attribute_images)), 32).images

    key = jax.random.key(7)
    best = lj.shapes.swap_scores(perfect, key, 200, 32, batch_size=100)
    assert best["valid"] > 0.98 and best["shape_accuracy"] > 0.99, best
    assert max(v for k, v in best.items() if k.endswith("_error")) < 0.01, {k: round(v, 4) for k, v in best.items()}
    attributes = lj.shapes.swap_scores(lambda a, b: b, key, 200, 32)
    assert attributes["x_error"] < 0.005 and attributes["background_error"] < 0.005
    assert attributes["shape_accuracy"] < 0.5 and attributes["hue_error"] > 0.15, attributes
    identity = lj.shapes.swap_scores(lambda a, b: a, key, 200, 32)
    assert identity["shape_accuracy"] > 0.99 and identity["hue_error"] < 0.005 and identity["x_error"] > 0.05
    with pytest.raises(ValueError, match="n must be >= 1"):
        lj.shapes.swap_scores(perfect, key, 0, 32)


def test_failure_profile_shows_where_a_swap_misses_a_factor():
    """A swap that keeps the identity image unless its hue is in [0, 0.2) (then it copies the attribute
    image) misses hue in the first two tenths only; shape is profiled by class."""
    from latentjax.shapes.reading import readout
    from latentjax.shapes.swaps import failure_profile, swapped

    def red_blind(identity_images, attribute_images):
        red = (readout(identity_images)["hue"] < 0.2)[:, None, None, None]
        return jnp.where(red, attribute_images, identity_images)

    key = jax.random.key(7)
    result = swapped(red_blind, key, 300, 32, batch_size=128)
    profile = failure_profile(*result, "hue")
    assert len(profile) == 10 and min(profile[:2]) > 0.7 and max(profile[2:]) == 0.0, profile
    shapes_missed = failure_profile(*result, "shape")
    # missed only for red identities (1/5) whose attribute image shows another shape (2/3): about 0.13
    assert len(shapes_missed) == 3 and all(0.03 < v < 0.3 for v in shapes_missed), shapes_missed
    assert failure_profile(*swapped(lambda a, b: a, key, 50, 32), "shape") == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="factor must be one of"):
        failure_profile(*result, "colour")
    with pytest.raises(ValueError, match="pass one `swapped` result"):
        failure_profile(result[0], *swapped(red_blind, key, 20, 32)[1:], "hue")


def test_sequences_keep_one_identity_embedding_and_measure_jitter(parts, tmp_path):
    from latentjax.identity.sequence import drive, identity_drift, jitter

    _, generator, identity, pose = parts
    mapper = IdentityMapper.build(MapperConfig(str(generator), f"recognizer:{identity}", f"recognizer:{pose}",
                                               hidden=(16,)), jax.random.key(3))
    space = mapper.space
    images = np.asarray(space.decode(space.generator.params, space.sample(jax.random.key(5), 6)))
    frames = drive(mapper, images[0], images[1:], batch_size=2)  # batches of 2: 3 compiled calls, last one padded
    np.testing.assert_allclose(frames, mapper.swap(np.repeat(images[:1], 5, axis=0), images[1:]), rtol=1e-4,
                               atol=1e-5)
    drift = identity_drift(mapper.encode_identity, frames)
    assert drift.shape == (5,) and drift[0] == pytest.approx(1.0) and np.all(drift <= 1 + 1e-6)
    with pytest.raises(ValueError, match="one identity image"):
        drive(mapper, images[:1], images[1:])
    assert jitter([0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.3]) == pytest.approx(0.0, abs=1e-12)
    assert jitter([0.0, 0.2, 0.2, 0.4], [0.0, 0.1, 0.2, 0.3]) == pytest.approx(0.1)
    assert jitter([0.95, 0.05], [0.95, 0.05], period=1.0) == pytest.approx(0.0, abs=1e-12)
    assert jitter([0.95, 0.05], period=1.0) == pytest.approx(0.1)  # the short way round
    assert jitter([0.0, np.nan, 0.2, 0.3]) == pytest.approx(0.1)  # steps touching an unmeasured frame left out


def test_sequence_scores_on_exact_renders():
    """Frames that are the exact renders of the identity with the driver's pose keep identity in every frame
    and follow without jitter; frames of another identity keep none."""
    count = 12
    t = np.linspace(0, 1, count)
    drivers = {"shape": np.full(count, 1), "x": 0.4 + 0.2 * t, "y": 0.5 + 0.1 * np.sin(6 * t), "scale": 0.3 + 0.4 * t,
               "rotation": (0.9 + 0.3 * t) % 1.0, "hue": np.full(count, 0.7), "background": np.full(count, 0.3)}
    drivers = lj.shapes.check_factors(drivers)
    identity = {"shape": 2, "hue": 0.25}
    intended = {**drivers, "shape": jnp.full(count, 2), "hue": jnp.full(count, 0.25)}
    scores = lj.shapes.swaps.sequence_scores(lj.shapes.render(intended, 32).images, identity, drivers)
    assert scores["valid"] == 1.0 and scores["identity_kept"] == 1.0
    assert max(scores[f"{f}_jitter"] for f in ("x", "y", "scale", "rotation", "background")) < 0.02, scores
    other = lj.shapes.swaps.sequence_scores(lj.shapes.render(drivers, 32).images, identity, drivers)
    assert other["identity_kept"] == 0.0


def test_sequence_command_writes_frames_gif_mp4_and_metrics(parts, tmp_path, monkeypatch, capsys):
    from PIL import Image
    from latentjax.cli import main
    from latentjax.programs import sequence
    from support import fake_ffmpeg

    _, generator, identity, pose = parts
    mapper = IdentityMapper.build(MapperConfig(str(generator), f"recognizer:{identity}", f"recognizer:{pose}",
                                               hidden=(16,)), jax.random.key(3))
    mapper_dir = save_mapper(mapper, tmp_path / "mapper")
    picture = np.asarray(lj.shapes.render(lj.shapes.sample_factors(jax.random.key(1), 1), 16).images[0])
    Image.fromarray(((picture + 1) * 127.5).round().astype(np.uint8)).save(tmp_path / "id.png")
    (tmp_path / "poses.json").write_text('{"x": [0.4, 0.5, 0.6], "rotation": [0.0, 0.1, 0.2]}')
    out = tmp_path / "seq"
    assert main(["sequence", "--identity", str(tmp_path / "id.png"), "--driver", str(tmp_path / "poses.json"),
                 "--mapper", str(mapper_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert Image.open(out / "sequence.gif").n_frames == 3
    assert not (out / "sequence.mp4").exists() or sequence.find_ffmpeg()  # written where an ffmpeg is installed
    monkeypatch.setattr(sequence, "find_ffmpeg", lambda: fake_ffmpeg(tmp_path))
    assert main(["sequence", "--identity", str(tmp_path / "id.png"), "--driver", str(tmp_path / "poses.json"),
                 "--mapper", str(mapper_dir), "--out", str(tmp_path / "seq_mp4")]) == 0
    gif = Image.open(out / "sequence.gif")
    assert (tmp_path / "seq_mp4" / "sequence.mp4").read_bytes() == b"MP4:%d" % (3 * gif.width * gif.height * 3)
    monkeypatch.setattr(sequence, "find_ffmpeg", lambda: None)
    capsys.readouterr()
    assert main(["sequence", "--identity", str(tmp_path / "id.png"), "--driver", str(tmp_path / "poses.json"),
                 "--mapper", str(mapper_dir), "--out", str(tmp_path / "seq_no_mp4")]) == 0
    assert not (tmp_path / "seq_no_mp4" / "sequence.mp4").exists() and "no ffmpeg found" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 3 and len(metrics["identity_cosine_to_first"]) == 3 and "identity_kept" in metrics["truth"]
    frames_dir = tmp_path / "drivers"
    frames_dir.mkdir()
    for i in range(2):
        Image.open(out / "frames" / f"{i:04d}.png").save(frames_dir / f"{i}.png")
    assert main(["sequence", "--identity", str(tmp_path / "id.png"), "--driver", str(frames_dir), "--mapper",
                 str(mapper_dir), "--out", str(tmp_path / "seq2")]) == 0
    assert "truth" not in json.loads((tmp_path / "seq2" / "metrics.json").read_text())
    (tmp_path / "bad.json").write_text('{"x": [0.4, 0.5], "y": [0.5]}')
    assert main(["sequence", "--identity", str(tmp_path / "id.png"), "--driver", str(tmp_path / "bad.json"),
                 "--mapper", str(mapper_dir), "--out", str(tmp_path / "seq3")]) == 2
    assert main(["sequence", "--identity", str(tmp_path / "id.png"), "--driver", str(frames_dir), "--mapper",
                 str(mapper_dir), "--out", str(frames_dir / "inside")]) == 2


def test_pose_comparison_compares_angles_as_directions_where_both_images_have_one():
    """Plain heads: mean squared difference. A (cos, sin) pair: the squared difference of directions,
    weighted by the attribute and identity images' vector lengths (up to 1), over all columns."""
    from latentjax.identity.encoders import Encoder
    from latentjax.tasks.identity import pose_comparison

    pixel = lambda params, images: images[:, 0, 0, :]  # noqa: E731  the estimates ride in the first pixel
    pose = Encoder("test:pose", pixel, {}, 3, 1, False, heads=("x", "turn_cos", "turn_sin"))
    as_images = lambda rows: jnp.asarray(rows, jnp.float32)[:, None, None, :]  # noqa: E731
    out = as_images([[0.5, 0.0, 2.0], [0.5, 0.0, 1.0], [0.5, 0.0, 1.0], [0.5, 0.3, 0.0]])
    attributes = as_images([[0.1, 0.0, 1.0], [0.5, 0.0, -1.0], [0.5, 0.01, 0.0], [0.5, 1.0, 0.0]])
    identity = as_images([[0.0, 1.0, 0.0], [0.0, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    plain = pose_comparison(pose)(None, out, attributes, identity)
    np.testing.assert_allclose(plain, np.mean((out - attributes)[:, 0, 0] ** 2, axis=-1), rtol=1e-6)
    angles = pose_comparison(pose, (("turn_cos", "turn_sin"),))(None, out, attributes, identity)
    # same direction (any length) | opposite, identity's vector 0.6 long | the attribute image has no angle
    # (length 0.01, its direction measured as if 0.5 long) | the identity image has none
    np.testing.assert_allclose(angles, [0.16 / 3, 0.6 * 4 / 3, 0.01 * (0.02 ** 2 + 1) / 3, 0.0], rtol=1e-5, atol=1e-7)
    halved = pose_comparison(pose, (("turn_cos", "turn_sin"),), angle_weight=0.5)(None, out, attributes, identity)
    np.testing.assert_allclose(halved, [0.16 / 3, 0.3 * 4 / 3, 0.005 * (0.02 ** 2 + 1) / 3, 0.0], rtol=1e-5, atol=1e-7)
    grads = jax.grad(lambda o: jnp.sum(pose_comparison(pose, (("turn_cos", "turn_sin"),))(None, o, attributes,
                                                                                         identity)))(out)
    assert np.all(np.isfinite(grads))
    for bad in ((("turn_cos",),), (("x", "nope"),), (("turn_cos", "turn_sin"), ("turn_sin", "x"))):
        with pytest.raises(ValueError, match=r"config.pose_angles must be distinct \(cos, sin\) pairs"):
            pose_comparison(pose, bad)


@pytest.mark.slow
def test_killed_on_eight_devices_resumes_on_one_to_the_same_state(parts, tmp_path):
    """The smoke config through the harness: steps 1-2 on 8 simulated devices, SIGKILLed before the
    checkpoint of step 4, resumed on one device; the state at step 4 equals an uninterrupted
    one-device run's, which logs the evaluation and exports a mapper that loads."""
    from support import assert_trees_close, run_killed

    _, generator, identity, pose = parts
    flags = ["--config", f"{CONFIGS / 'identity.py'}:smoke", f"--config.generator={generator}",
             f"--config.identity_encoder=recognizer:{identity}", f"--config.attribute_encoder=recognizer:{pose}",
             f"--config.pose_encoder=recognizer_values:{pose}", "--config.batch_size=8", "--workdir", "unused"]
    run_killed(f"""
        from latentjax.programs.flags import parse_config_flags
        from latentjax.train import train
        assert jax.device_count() == 8
        train(parse_config_flags({flags!r}, "train").config, {str(tmp_path / 'killed')!r})
        """, kill_at_checkpoint=4, devices=8)
    config = parse_config_flags(flags, "train").config
    resumed = train(config, tmp_path / "killed")
    straight = train(config, tmp_path / "straight")
    assert int(resumed["step"]) == int(straight["step"]) == 4
    assert_trees_close(resumed["state"]["trainable"], straight["state"]["trainable"], rtol=1e-4, atol=1e-6)
    assert_trees_close(resumed["state"]["disc"], straight["state"]["disc"], rtol=1e-4, atol=1e-6)
    mapper = lj.identity.load(tmp_path / "straight" / "identity_mapper")
    assert mapper.metadata["step"] == 4 and mapper.mapping.config.features == (16, 8)
    lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    assert any('"eval/disentanglement"' in line for line in lines) and any('"loss/pixel"' in line for line in lines)
    assert list((tmp_path / "straight" / "samples").glob("*.png"))


@pytest.mark.slow
def test_face_recipe_smoke_on_a_stylegan2_snapshot_with_resnet_encoders(tmp_path):
    """The face configuration as a user runs it, shrunk: an NVIDIA snapshot, a VGGFace2-convention identity
    ResNet and an ImageNet-convention attribute ResNet (torchvision layouts, random weights), no landmarks."""
    flags = ["--config", f"{CONFIGS / 'identity.py'}:face,smoke",
             f"--config.generator={FIXTURES / 'stylegan2' / 'ada_s32_snapshot.pkl'}",
             f"--config.identity_encoder=vggface2:{FIXTURES / 'resnet' / 'basic.pt'}",
             f"--config.attribute_encoder=resnet:{FIXTURES / 'resnet' / 'bottleneck.pt'}", "--workdir", str(tmp_path)]
    values = parse_config_flags(flags, "train")
    assert values.config.pose_encoder == "" and values.config.pose_weight == 0.001
    from latentjax.tasks.identity import make_task
    with pytest.raises(ValueError, match=r"config.pose_angles .* needs a config.pose_encoder"):
        make_task(parse_config_flags(flags + ["--config.pose_angles=(('a', 'b'),)"], "train").config)
    assert int(train(values.config, tmp_path)["step"]) == 4
    mapper = lj.identity.load(tmp_path / "identity_mapper")
    assert mapper.identity.dim == 16 and mapper.attributes.dim == 64 and mapper.mapping.config.in_features == 80
    images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)
    assert mapper.swap(images, images[::-1]).shape == (2, 32, 32, 3)


def test_the_shipped_shapes_mapper_keeps_identity_and_follows_attributes():
    """builtin:shapes at the strict tolerance: shape and hue follow the identity image (chance: shape
    accuracy 1/3, hue error 0.25), the rest the attribute image (chance: about 0.25-0.33), on fresh pairs."""
    mapper = lj.identity.load("builtin:shapes")
    assert mapper.metadata["step"] == 16_000 and mapper.identity.spec == "recognizer_turns:builtin:shapes_identity"
    scores = lj.shapes.swap_scores(mapper.swap, jax.random.key(11), 64, 32)
    assert scores["valid"] > 0.6 and scores["shape_accuracy"] > 0.9 and scores["hue_error"] < 0.05, scores
    assert max(scores[f"{f}_error"] for f in ("x", "y", "scale", "background")) < 0.07, scores
    assert scores["rotation_error"] < 0.1, scores


def test_the_shipped_shapes_mapper_keeps_red_identities():
    """builtin:shapes lays hue on a line whose two ends are both red; the shipped mapper, fed the hue in
    turns cut at red too, keeps red identities from either end (attribute images of another hue)."""
    from latentjax.shapes.swaps import summarize_swaps, swap_errors

    mapper = lj.identity.load("builtin:shapes")
    identity = lj.shapes.sample_factors(jax.random.key(12), 96)
    identity["hue"] = jnp.linspace(-0.04, 0.04, 96) % 1.0  # half at each end of the line
    attributes = {**lj.shapes.sample_factors(jax.random.key(13), 96), "hue": jnp.full(96, 0.5)}
    outputs = mapper.swap(lj.shapes.render(identity, 32).images, lj.shapes.render(attributes, 32).images)
    scores = summarize_swaps(swap_errors(outputs, identity, attributes))
    assert scores["valid"] > 0.6 and scores["hue_error"] < 0.03, scores


def test_the_shipped_pose_network_gives_a_circle_no_rotation():
    """builtin:shapes_pose's (cos, sin) rotation vector is near 0 for a circle and near unit length for a
    square or triangle: why the identity task compares it as a direction where both images have one."""
    pose = load_encoder("recognizer_values:builtin:shapes_pose", heads=("rotation_cos", "rotation_sin"))
    factors = lj.shapes.sample_factors(jax.random.key(4), 96)
    length = np.linalg.norm(pose.embed(pose.params, lj.shapes.render(factors, 32).images), axis=-1)
    shape = np.asarray(factors["shape"])
    assert length[shape == 0].mean() < 0.1 and length[shape > 0].mean() > 0.9, (length[shape == 0], length[shape > 0])
