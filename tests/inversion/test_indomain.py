"""In-domain inversion: the encoder (shape, w_avg start, per-sample independence), encoder training on
the harness (runs, exports, reloads), the reference's defaults and perceptual features (caffe VGG16
against genforce/idinvert_pytorch's model, tests/fixtures/perceptual), and the regularised
optimisation against independent computations of its loss and first Adam step, batch invariance,
progress, and bad inputs."""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import FIXTURES, REPO, relative_error

import latentjax
from latentjax.nn.encoder import Encoder, EncoderConfig, config_for, load_encoder, save_encoder
from latentjax.inversion.indomain import InDomainInverter, invert_in_domain, vgg_features
from latentjax.tasks.encoder import TrainSettings, build_task
from latentjax.metrics.lpips import load_lpips
from latentjax.metrics.vgg import TORCHVISION_TO_CAFFE_SCALE, load_vgg16, resize_nearest, trunk_features
from latentjax.train.checkpoint import read_state
from latentjax.train.metrics import read_metrics
from latentjax.programs.outputs import write
from latentjax.viz import encode_png
from support import make_generator

STEPS = 20
LR = 1e-2
NO_FEATURES = dict(feature_weight=0.0)  # the optimisation tests without VGG weights
CAFFE_VGG = FIXTURES / "perceptual" / "caffe_vgg16_narrow.pth"  # narrow random weights, idinvert_pytorch's layout
TV_VGG = FIXTURES / "lpips" / "vgg16_random.pth"  # narrow random torchvision VGG16
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


@pytest.fixture(scope="module")
def gen():
    """The 16x16 StyleGAN2 with 8-d w of the inversion tests, two targets from known ws, and an
    encoder with a random (non-zero) head, so that E(G(w)) depends on w."""
    G, ws, targets, _ = make_generator()
    encoder = Encoder.init(config_for(G, channel_base=64, channel_max=8), jax.random.key(0), ws[0, 0])
    head = encoder.params["net"]["head"]
    kernel = 0.05 * jax.random.normal(jax.random.key(1), head["kernel"].shape)
    params = {**encoder.params, "net": {**encoder.params["net"], "head": {**head, "kernel": kernel}}}
    return G, ws, targets, Encoder(encoder.config, params)


def loss_one(G, encoder, latent, target):
    """The in-domain loss of one w+ [num_ws, w_dim] (weights 1, 2), written from the paper's formula."""
    image = G.synthesis(G.params, latent[None])
    mse = jnp.mean((image[0] - target) ** 2)
    reg = jnp.mean((latent - encoder.encode(encoder.params, image)[0]) ** 2)
    return mse + 2.0 * reg, (mse, reg)


@functools.partial(jax.jit, static_argnums=(0, 1))
def objective(G, encoder, latents, targets):
    """Per target: (loss, (mse, regulariser)) of latents [N, num_ws, w_dim]."""
    return jax.vmap(lambda w, t: loss_one(G, encoder, w, t))(latents, targets)


@functools.partial(jax.jit, static_argnums=(0, 1))
def objective_grad(G, encoder, latents, targets):
    return jax.vmap(jax.grad(lambda w, t: loss_one(G, encoder, w, t)[0]))(latents, targets)


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------

def test_fresh_encoder_predicts_w_avg_and_has_the_w_plus_shape():
    config = EncoderConfig(img_resolution=16, img_channels=3, num_ws=6, w_dim=8, channel_base=64, channel_max=8)
    w_avg = np.linspace(-1, 1, 8).astype(np.float32)
    encoder = Encoder.init(config, jax.random.key(3), w_avg)
    encode = jax.jit(encoder.encode)
    images = jax.random.uniform(jax.random.key(4), (3, 16, 16, 3), minval=-1, maxval=1)
    ws = encode(encoder.params, images)
    assert ws.shape == (3, 6, 8)
    np.testing.assert_array_equal(ws, np.broadcast_to(w_avg, (3, 6, 8)))  # zero head: the offset is 0
    kernel = np.asarray(encoder.params["net"]["b4_0"]["conv1"]["kernel"])  # LeCun normal: std 1 / sqrt(fan_in)
    assert kernel.shape == (3, 3, 8, 8) and abs(kernel.std() * np.sqrt(3 * 3 * 8) - 1) < 0.15
    # The trunk is not degenerate: a non-zero head gives codes that differ between images.
    head = encoder.params["net"]["head"]
    kernel = jax.random.normal(jax.random.key(5), head["kernel"].shape)
    net = {**encoder.params["net"], "head": {**head, "kernel": kernel}}
    ws = encode({**encoder.params, "net": net}, images)
    assert float(jnp.min(jnp.std(ws, axis=0))) > 1e-3
    with pytest.raises(ValueError, match=r"encoder images must have shape \[N, 16, 16, 3\]"):
        encode(encoder.params, images[..., :1])
    with pytest.raises(ValueError, match="w_avg must have shape"):
        Encoder.init(config, jax.random.key(3), np.zeros(7))
    with pytest.raises(ValueError, match="norm must be one of"):
        EncoderConfig(16, 3, 6, 8, norm="batch")


def test_codes_do_not_depend_on_the_batch(gen):
    """Per-sample normalisation: an image's code is the same alone as in a batch, and under vmap."""
    _, _, targets, encoder = gen
    encode = jax.jit(encoder.encode)
    batched = encode(encoder.params, targets)
    alone = np.stack([encode(encoder.params, t[None])[0] for t in targets])
    mapped = jax.jit(jax.vmap(lambda t: encoder.encode(encoder.params, t[None])[0]))(targets)
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mapped, alone, rtol=1e-5, atol=1e-6)


def test_save_and_load_encoder_round_trip(gen, tmp_path):
    _, _, targets, encoder = gen
    encoder.metadata["note"] = "test"
    loaded = load_encoder(save_encoder(encoder, tmp_path / "enc"))
    assert loaded.config == encoder.config and loaded.metadata["note"] == "test"
    jax.tree.map(np.testing.assert_array_equal, loaded.params, encoder.params)
    with pytest.raises(ValueError, match="cannot read the encoder config"):
        load_encoder(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"'format' is 'latentjax.generator', expected 'latentjax.encoder'"):
        load_encoder(Path(latentjax.__file__).parent / "builtin" / "shapes")  # a generator directory


# ----------------------------------------------------------------------------------------------
# Encoder training
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow  # compiles the 32x32 snapshot's E + G + D step with R1 (about a minute of CPU)
def test_config_smoke_variant_trains_on_the_harness_from_the_snapshot_discriminator(tmp_path):
    """`latentjax train --config configs/train_encoder.py:stylegan2,smoke`: the documented loss, an
    evaluation, an export equal to the train state, G frozen, D started from the snapshot's."""
    from latentjax.io.torch_pickle import load
    from latentjax.nn.discriminator import from_nvidia
    from latentjax.programs.train import main

    generator = FIXTURES / "stylegan2" / "ada_s32_snapshot.pkl"
    assert main(["--config", "configs/train_encoder.py:stylegan2,smoke", f"--config.generator={generator}",
                 "--workdir", str(tmp_path)]) == 0
    records = read_metrics(tmp_path)
    steps = [r for r in records if "loss_E" in r]
    assert len(steps) == 3 and all(np.isfinite(r[k]) for r in steps for k in ("loss_E", "mse", "loss_D"))
    for r in steps:  # E's loss is its documented sum (no VGG: no feature term; the reference's 0.08 adversarial)
        np.testing.assert_allclose(r["loss_E"], r["mse"] + 0.08 * r["adversarial"], rtol=1e-5)
    assert any("eval/latent_mse" in r for r in records)

    G = latentjax.load_generator(generator)
    state = read_state(tmp_path)["state"]
    encoder = load_encoder(tmp_path / "encoder")
    assert (encoder.config.img_resolution, encoder.config.num_ws, encoder.config.w_dim) == (32, 8, 64)
    assert encoder.metadata["step"] == 3
    jax.tree.map(np.testing.assert_array_equal, encoder.params, state["encoder"])
    jax.tree.map(np.testing.assert_array_equal, state["generator"], G.params)  # G stays frozen
    # The encoder moved away from its zero head, starting from the mean of G's w.
    assert float(np.abs(state["encoder"]["net"]["head"]["kernel"]).max()) > 0
    # w_avg is the projector's start: the mean of 10,000 mapped samples, batch i from fold_in(key(123), i).
    zs = [jax.random.normal(jax.random.fold_in(jax.random.key(123), i), (1000, G.z_dim)) for i in range(10)]
    w_avg = np.mean(np.concatenate([G.mapping(G.params, z)[:, 0] for z in zs]), axis=0)
    np.testing.assert_allclose(encoder.params["w_avg"], w_avg, rtol=1e-5, atol=1e-6)

    snapshot = load(FIXTURES / "stylegan2" / "ada_s32_snapshot.pkl")["D"]
    _, d_snapshot = from_nvidia(snapshot.state_dict(), snapshot.init_kwargs)
    d_trained = state["d"]
    assert jax.tree.map(np.shape, d_trained) == jax.tree.map(np.shape, d_snapshot)
    moved = [float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(d_trained), jax.tree.leaves(d_snapshot))]
    assert 0 < max(moved) < 0.1  # three Adam steps of lr 1e-3 from the snapshot's weights


def test_directory_data_serves_its_images(gen, tmp_path):
    G = gen[0]
    pixels = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        write(tmp_path / f"{i}.png", encode_png(image))
    task = build_task(G, config_for(G), TrainSettings(eval_size=2), data=str(tmp_path), batch_size=4, total_steps=1)
    batch = np.asarray(task.batch(jax.random.key(0))["images"])
    assert batch.shape == (4, 16, 16, 3)
    served = np.round((batch + 1) * 127.5).astype(np.uint8)
    assert all(any(np.array_equal(b, p) for p in pixels) for b in served)
    with pytest.raises(ValueError, match="config.data must be one of"):
        build_task(G, config_for(G), TrainSettings(), data=str(tmp_path / "missing"), batch_size=4, total_steps=1)


def test_training_settings_reject_bad_values():
    with pytest.raises(ValueError, match=r"vgg16_convention must be '' \(from the file's key names\) or one of"):
        TrainSettings(vgg16="vgg16.pth", vgg16_convention="keras")
    with pytest.raises(ValueError, match="feature_resolution must be an int >= 16"):
        TrainSettings(feature_resolution=8)
    with pytest.raises(ValueError, match="discriminator must be one of"):
        TrainSettings(discriminator="pretrained")
    with pytest.raises(ValueError, match="feature_layer must be one of"):
        TrainSettings(feature_layer="conv4_3")


# ----------------------------------------------------------------------------------------------
# Domain-regularised optimisation
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inverted(gen):
    G, _, targets, encoder = gen
    return invert_in_domain(G, encoder, targets, steps=STEPS, lr=LR, progress=False, **NO_FEATURES)


def test_reported_terms_match_an_independent_computation(gen, inverted):
    G, ws, targets, encoder = gen
    assert inverted.space == "w+" and inverted.latents.shape == ws.shape and inverted.noise is None
    np.testing.assert_array_equal(inverted.ws, inverted.latents)
    total, (mse, reg) = objective(G, encoder, jnp.asarray(inverted.latents), jnp.asarray(targets))
    np.testing.assert_allclose(inverted.losses["regularizer"], reg, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(inverted.losses["mse"], mse, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(inverted.losses["loss"], total, rtol=1e-4, atol=1e-9)
    images = jax.jit(G.synthesis)(G.params, jnp.asarray(inverted.latents))
    np.testing.assert_allclose(inverted.images, images, rtol=1e-5, atol=1e-6)


def test_first_step_starts_at_the_code_and_follows_the_gradient(gen):
    """Adam's first step moves each coordinate by lr * sign(gradient) from E(x)."""
    G, _, targets, encoder = gen
    start = jax.jit(encoder.encode)(encoder.params, jnp.asarray(targets))
    result = invert_in_domain(G, encoder, targets, steps=1, lr=LR, progress=False, **NO_FEATURES)
    grad = np.asarray(objective_grad(G, encoder, start, jnp.asarray(targets)))
    significant = np.abs(grad) > 1e-4 * np.abs(grad).max()  # Adam's eps blurs the sign of ~0 gradients
    assert significant.mean() > 0.5
    expected = np.asarray(start) - LR * np.sign(grad)
    np.testing.assert_allclose(result.latents[significant], expected[significant], rtol=0, atol=1e-4 * LR)


def test_loss_decreases_from_the_encoder_start(gen, inverted):
    G, _, targets, encoder = gen
    start = jax.jit(encoder.encode)(encoder.params, jnp.asarray(targets))
    initial = np.asarray(objective(G, encoder, start, jnp.asarray(targets))[0])
    assert np.all(inverted.losses["loss"] < 0.8 * initial), (inverted.losses["loss"], initial)


def test_batched_equals_per_target(gen, inverted):
    G, _, targets, encoder = gen
    one_by_one = invert_in_domain(G, encoder, targets, steps=STEPS, lr=LR, batch_size=1, progress=False,
                                  **NO_FEATURES)
    np.testing.assert_allclose(one_by_one.latents, inverted.latents, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one_by_one.losses["loss"], inverted.losses["loss"], rtol=1e-5, atol=1e-9)


def test_feature_term_is_the_vgg_tap_mse(gen):
    """With torchvision weights (an LPIPS model's trunk): relu4_3 of the 256 px images, times the caffe scale."""
    G, _, targets, encoder = gen
    vgg = load_lpips(TV_VGG, FIXTURES / "lpips" / "lpips_vgg_narrow_lin.pth")
    result = invert_in_domain(G, encoder, targets, steps=2, lr=LR, feature_weight=0.5, regularization_weight=0.0,
                              vgg=vgg, progress=False)
    assert "regularizer" not in result.losses
    # Under jit: reconstructions may leave [-1, 1] slightly, which eager LPIPS calls refuse.
    features = jax.jit(lambda model, x: TORCHVISION_TO_CAFFE_SCALE * model.features(
        jnp.repeat(jnp.repeat(x, 16, axis=1), 16, axis=2))["relu4_3"])  # 16 px -> 256 px: each pixel 16x16
    expected = np.mean((features(vgg, jnp.asarray(result.images)) - features(vgg, jnp.asarray(targets))) ** 2,
                       axis=(1, 2, 3))
    np.testing.assert_allclose(result.losses["feature"], expected, rtol=1e-4)
    np.testing.assert_allclose(result.losses["loss"], result.losses["mse"] + 0.5 * expected, rtol=1e-4)


# ----------------------------------------------------------------------------------------------
# The reference's defaults and perceptual features
# ----------------------------------------------------------------------------------------------

def test_defaults_are_the_references():
    """idinvert_pytorch inverter.py: Adam 1e-2, 100 steps, feature 5e-5, regulariser 2.0; idinvert
    train_encoder.py: feature_scale 5e-5, D_scale 0.08, perceptual_img_size 256 (conv4_3)."""
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location("train_encoder", REPO / "configs" /
                                                  "train_encoder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    defaults = {k: p.default for k, p in inspect.signature(invert_in_domain).parameters.items()}
    assert {k: defaults[k] for k in ("steps", "lr", "feature_weight", "regularization_weight", "feature_layer",
                                     "feature_resolution")} == dict(steps=100, lr=1e-2, feature_weight=5e-5,
                                                                    regularization_weight=2.0,
                                                                    feature_layer="relu4_3", feature_resolution=256)
    settings = TrainSettings()
    assert (settings.perceptual_weight, settings.adversarial_weight, settings.r1_gamma) == (5e-5, 0.08, 10.0)
    assert (settings.feature_layer, settings.feature_resolution, settings.lr) == ("relu4_3", 256, 1e-4)
    config = module.get_config().settings
    assert (config.perceptual_weight, config.adversarial_weight, config.feature_resolution) == (5e-5, 0.08, 256)
    assert TrainSettings.from_dict(config.to_dict()).adversarial_weight == 0.08


def nhwc(x):
    return jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1))


@pytest.fixture(scope="module")
def perceptual_io():
    return dict(np.load(FIXTURES / "perceptual" / "perceptual_io.npz"))


def test_caffe_features_are_the_reference_preprocessing_and_network(perceptual_io):
    """The caffe path = a numpy transcription of the reference's input (nearest 8x upscale, [-1, 1] ->
    [0, 255], RGB -> BGR, minus the BGR mean) through the shared trunk, and = idinvert_pytorch's
    `VGG16` (output_layer_idx 23: relu4_3) on the same narrow weights."""
    vgg = load_vgg16(CAFFE_VGG)
    assert vgg.convention == "caffe" and vgg.channels == (4, 8, 16, 32, 32)
    x = nhwc(perceptual_io["x"])  # [2, 32, 32, 3], a little outside [-1, 1] like a generator's output
    ours = np.asarray(jax.jit(vgg_features)(vgg, x))
    up = np.repeat(np.repeat(np.asarray(x, np.float64), 8, axis=1), 8, axis=2)
    bgr = ((up + 1) * 255 / 2)[..., ::-1] - CAFFE_MEAN_BGR
    by_hand = trunk_features(vgg.trunk, jnp.asarray(bgr, jnp.float32), "relu4_3")["relu4_3"]
    np.testing.assert_allclose(ours, by_hand, rtol=1e-5, atol=1e-5 * float(np.abs(by_hand).max()))
    assert relative_error(ours, nhwc(perceptual_io["caffe_relu4_3_256"])) < 1e-5
    native = jax.jit(lambda m, x: vgg_features(m, x, resolution=32))(vgg, x)  # no resize: the native 4x4 tap
    assert relative_error(native, nhwc(perceptual_io["caffe_relu4_3_native"])) < 1e-5


def test_encoder_feature_term_is_the_references(perceptual_io):
    """loss_encoder.py: feature_scale * mean((VGG(real) - VGG(fake))^2), both at 256 px."""
    vgg = load_vgg16(CAFFE_VGG)
    fakes, reals = nhwc(perceptual_io["x"]), nhwc(perceptual_io["gt"])
    ours = 5e-5 * jnp.mean(jnp.square(jax.jit(vgg_features)(vgg, fakes) - jax.jit(vgg_features)(vgg, reals)))
    reference = 5e-5 * np.mean((perceptual_io["caffe_relu4_3_256"] - perceptual_io["caffe_relu4_3_256_gt"]) ** 2)
    assert relative_error(ours, reference) < 1e-5


def test_torchvision_features_are_rescaled_to_the_caffe_input_scale():
    """Torchvision weights: features times 255 * mean(std), which is exactly the network fed input
    on that scale with every bias scaled alike (ReLU and max-pool are positively homogeneous)."""
    vgg = load_vgg16(TV_VGG)
    assert vgg.convention == "torchvision"
    np.testing.assert_allclose(TORCHVISION_TO_CAFFE_SCALE, 255 * np.mean([0.229, 0.224, 0.225]), rtol=1e-6)
    x = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3), minval=-1, maxval=1)
    ours = jax.jit(vgg_features)(vgg, x)
    k = TORCHVISION_TO_CAFFE_SCALE
    scaled = tuple(tuple((w, k * b) for w, b in convs) for convs in vgg.trunk)
    homogeneous = jax.jit(lambda t, h: trunk_features(t, h, "relu4_3")["relu4_3"])(
        scaled, k * vgg.preprocess(resize_nearest(x, 256)))
    assert relative_error(ours, homogeneous) < 1e-5


def test_resize_nearest_is_the_references():
    """floor(i * in / out): an integer upscale repeats pixels; 384 -> 256 takes rows 0, 1, 3, 4, 6, ..."""
    x = jnp.arange(2 * 384 * 384 * 1, dtype=jnp.float32).reshape(2, 384, 384, 1)
    down = np.asarray(resize_nearest(x, 256))
    rows = np.floor(np.arange(256) * 1.5).astype(int)
    np.testing.assert_array_equal(down, np.asarray(x)[:, rows][:, :, rows])
    small = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
    np.testing.assert_array_equal(resize_nearest(small, 12), np.repeat(np.repeat(small, 3, axis=1), 3, axis=2))
    np.testing.assert_array_equal(resize_nearest(small, 4), small)


def test_the_default_feature_weight_needs_vgg_weights(gen):
    G, _, targets, encoder = gen
    with pytest.raises(ValueError, match=r"feature_weight 5e-05 weighs VGG16 features, which need weights: "
                                         r"vgg=latentjax.metrics.vgg.load_vgg16.*or feature_weight=0"):
        invert_in_domain(G, encoder, targets, progress=False)
    with pytest.raises(ValueError, match="vgg must be a latentjax.metrics.vgg.VGG16"):
        InDomainInverter(G, encoder, vgg="vgg16.pth")
    with pytest.raises(ValueError, match="feature_resolution must be an int >= 16"):
        InDomainInverter(G, encoder, vgg=load_vgg16(CAFFE_VGG), feature_resolution=0)


def test_bad_inputs_raise_clear_errors(gen):
    G, _, targets, encoder = gen
    run = dict(steps=STEPS, lr=LR, progress=False, **NO_FEATURES)
    with pytest.raises(ValueError, match=r"targets must be images \[N, 16, 16, 3\]"):
        invert_in_domain(G, encoder, np.zeros((1, 32, 32, 3), np.float32), **run)
    with pytest.raises(ValueError, match=r"targets must be images \[N, 16, 16, 3\]"):
        invert_in_domain(G, encoder, targets[..., :1], **run)
    with pytest.raises(ValueError, match="targets hold .* non-finite"):
        invert_in_domain(G, encoder, targets * np.nan, **run)
    with pytest.raises(ValueError, match="targets must be float images"):
        invert_in_domain(G, encoder, np.zeros((1, 16, 16, 3), np.uint8), **run)
    other = Encoder.init(EncoderConfig(32, 3, 8, 8, channel_base=64, channel_max=8), jax.random.key(0), np.zeros(8))
    with pytest.raises(ValueError, match="does not match the generator"):
        invert_in_domain(G, other, targets, **run)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        invert_in_domain(G, encoder, targets, steps=0, progress=False, **NO_FEATURES)
    with pytest.raises(ValueError, match="encoder must be a latentjax.nn.encoder.Encoder"):
        invert_in_domain(G, "encoder_dir", targets, **run)
