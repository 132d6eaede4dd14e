"""Encoder training for in-domain inversion (genforce/idinvert), a harness `Task`:
`latentjax train --config configs/train_encoder.py`.

The generator is frozen; the encoder (`latentjax.nn.encoder`) is trained with the reference's
`E_loss` (pixel MSE, VGG16 feature MSE and an adversarial term, weights 5e-5 and 0.08) against
StyleGAN2's residual discriminator (logistic loss and R1 every step), with Adam as the reference.
Images (`config.data`): the generator's own samples, the shapes world or a directory of images.
`export` writes the encoder to `WORKDIR/encoder/`.
Details: docs/methods.md#latentjaxtasksencoder
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax import shapes
from latentjax.config import ConfigMixin
from latentjax.inversion.indomain import check_feature_layer, check_feature_resolution, vgg_features
from latentjax.inversion.project import inversion_space
from latentjax.io.images import load_target
from latentjax.io.torch_pickle import PersistentObject, load
from latentjax.load import load_generator
from latentjax.metrics.lpips import as_vgg16
from latentjax.metrics.vgg import CONVENTIONS, load_vgg16
from latentjax.nn.discriminator import Discriminator, DiscriminatorConfig, from_nvidia, init_discriminator
from latentjax.nn.encoder import Encoder, config_for, save_encoder
from latentjax.train.metrics import note
from latentjax.train.task import Task

EXPORT_DIR = "encoder"
DATA_SOURCES = ("generator", "shapes")  # or a directory path
DISCRIMINATORS = ("fresh", "snapshot")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class TrainSettings(ConfigMixin):
    """`config.settings` of an encoder training run (defaults: the reference's).

    lr, d_lr, betas, eps     Adam for E and for D
    lr_decay_rate            both learning rates are multiplied by this every `lr_decay_steps`
    lr_decay_steps           (smoothly); 0: a quarter of `total_steps`, as the reference
    perceptual_weight        weight of the VGG feature MSE (needs `vgg16`; '' with a weight > 0: the
                             term is off, and the log says so)
    feature_layer            the VGG16 tap compared (the reference's conv4_3 after its ReLU)
    feature_resolution       images are nearest-resized to this many pixels before VGG16 (256)
    vgg16                    VGG16 weights (`latentjax.metrics.vgg.load_vgg16`): the reference's caffe
                             `vgg16.pth` (genforce/idinvert_pytorch) or a torchvision vgg16 state dict,
                             whose features are rescaled to the caffe input's scale ('': no VGG)
    vgg16_convention         '' (from the file's key names), 'caffe' or 'torchvision'
    adversarial_weight       weight of softplus(-D(G(E(x)))) in E's loss (the reference trains with 0.08)
    r1_gamma                 D's R1 weight (gamma / 2 * |grad|^2, every step)
    discriminator            'fresh' (StyleGAN2's D at G's widths, random init) or 'snapshot'
                             (the 'D' of an NVIDIA snapshot .pkl given as the generator, as the
                             reference starts from the GAN's own D)
    mbstd_group_size         D's minibatch-stddev group (per-device batch must divide by it)
    truncation_psi           for data='generator'
    grid_size, eval_size     images in the logged grid (targets and reconstructions) and in the
                             fixed evaluation set
    """

    config_name = "encoder training settings"

    lr: float = 1e-4
    d_lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    lr_decay_rate: float = 0.8
    lr_decay_steps: int = 0
    perceptual_weight: float = 5e-5
    feature_layer: str = "relu4_3"
    feature_resolution: int = 256
    vgg16: str = ""
    vgg16_convention: str = ""
    adversarial_weight: float = 0.08
    r1_gamma: float = 10.0
    discriminator: str = "fresh"
    mbstd_group_size: int = 4
    truncation_psi: float = 1.0
    grid_size: int = 8
    eval_size: int = 64

    def __post_init__(self):
        if self.lr <= 0 or self.d_lr <= 0 or not 0 < self.lr_decay_rate <= 1 or self.lr_decay_steps < 0:
            raise ValueError(f"settings: lr, d_lr must be positive, lr_decay_rate in (0, 1] and lr_decay_steps >= 0: "
                             f"{self}")
        if min(self.perceptual_weight, self.adversarial_weight, self.r1_gamma) < 0:
            raise ValueError(f"settings: perceptual_weight, adversarial_weight and r1_gamma must be >= 0: {self}")
        check_feature_layer(self.feature_layer)
        check_feature_resolution(self.feature_resolution)
        if self.vgg16_convention not in ("",) + CONVENTIONS:
            raise ValueError(f"settings.vgg16_convention must be '' (from the file's key names) or one of "
                             f"{CONVENTIONS}, got {self.vgg16_convention!r}")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"settings.discriminator must be one of {DISCRIMINATORS}, got {self.discriminator!r}")
        if self.grid_size < 1 or self.eval_size < 1 or self.mbstd_group_size < 1:
            raise ValueError(f"settings: grid_size, eval_size and mbstd_group_size must be >= 1: {self}")


def _load_directory(path: Path, G) -> np.ndarray:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"config.data: no {'/'.join(IMAGE_SUFFIXES)} images in {path}")
    images = [load_target(p, G.img_resolution, G.img_channels) for p in files]
    return np.round((np.stack(images) + 1.0) * 127.5).astype(np.uint8)


def _snapshot_discriminator(generator_path: str):
    path = Path(generator_path)
    obj = load(path) if path.suffix == ".pkl" and path.is_file() else None
    network = obj.get("D") if isinstance(obj, dict) else None
    if not isinstance(network, PersistentObject):
        raise ValueError(f"settings.discriminator='snapshot' needs an NVIDIA snapshot .pkl with a 'D' network as "
                         f"config.generator, got {generator_path!r}")
    return from_nvidia(network.state_dict(), network.init_kwargs, where=f"{path} [D]")


def build_task(G, encoder_config, settings: TrainSettings, *, data: str = "generator", batch_size: int,
               total_steps: int, vgg=None, discriminator=None, metadata: dict | None = None) -> Task:
    """The encoder training task for generator `G` (frozen; its params live in the state under
    'generator') and an `EncoderConfig`. `vgg`: the VGG16 (`load_vgg16`, or an LPIPS model's trunk)
    whose features give the feature term (None: the term is off, and the log says so).
    `discriminator`: (DiscriminatorConfig, params) to start D from (None: a fresh D). `data`:
    'generator', 'shapes' or a directory (see the module docstring)."""
    if G.c_dim or not G.style_based:
        raise ValueError("encoder training needs an unconditional generator with a mapping network (StyleGAN2)")
    if (encoder_config.img_resolution, encoder_config.num_ws, encoder_config.w_dim) != (G.img_resolution, G.num_ws,
                                                                                       G.w_dim):
        raise ValueError(f"the encoder config {encoder_config} does not fit {G}")
    use_features = vgg is not None and settings.perceptual_weight > 0
    if not use_features:
        note(f"encoder training: {'no VGG16 weights (settings.vgg16)' if vgg is None else 'perceptual_weight 0'}; "
             "the perceptual term is off (pixel MSE + adversarial loss only)")
    else:
        vgg = as_vgg16(vgg, "vgg")
        note(f"encoder training: perceptual term {settings.perceptual_weight} x VGG16 {settings.feature_layer} MSE "
             f"({vgg.convention} weights{'' if vgg.convention == 'caffe' else ', rescaled to the caffe input scale'}"
             f", images at {settings.feature_resolution} px)")

    def features(images):
        return vgg_features(vgg, images, settings.feature_layer, settings.feature_resolution)

    E = Encoder(encoder_config, None)
    if discriminator is None:
        d_config = DiscriminatorConfig(img_resolution=G.img_resolution, img_channels=G.img_channels,
                                       channels=tuple(G.config.channels), mbstd_group_size=settings.mbstd_group_size)
        d_params = None
    else:
        d_config, d_params = discriminator
        d_config = dataclasses.replace(d_config, mbstd_group_size=settings.mbstd_group_size)
    D = Discriminator(d_config)
    decay_steps = settings.lr_decay_steps or max(1, total_steps // 4)

    def adam(lr):
        schedule = optax.exponential_decay(lr, decay_steps, settings.lr_decay_rate)
        return optax.adam(schedule, b1=settings.betas[0], b2=settings.betas[1], eps=settings.eps)

    e_tx, d_tx = adam(settings.lr), adam(settings.d_lr)
    res = G.img_resolution
    if data == "generator":
        def batch(key):
            return {"z": jax.random.normal(key, (batch_size, G.z_dim))}
    elif data == "shapes":
        if G.img_channels != 3:
            raise ValueError(f"config.data='shapes' renders RGB images; the generator has {G.img_channels} channels")

        def batch(key):
            return {"images": shapes.sample(key, batch_size, res)[0]}
    else:
        path = Path(data)
        if not path.is_dir():
            raise ValueError(f"config.data must be one of {DATA_SOURCES} or a directory of images, got {data!r}")
        dataset = _load_directory(path, G)
        note(f"encoder training: {len(dataset)} images from {path}")

        def batch(key):
            index = jax.random.randint(key, (batch_size,), 0, len(dataset))
            return {"images": jnp.asarray(dataset)[index].astype(jnp.float32) / 127.5 - 1.0}

    # The fixed evaluation set (and the grid, its first images): z, or images.
    if data == "generator":
        eval_batch = {"z": jax.random.normal(jax.random.key(2020), (settings.eval_size, G.z_dim))}
    elif data == "shapes":
        eval_batch = {"images": shapes.sample(jax.random.key(2020), settings.eval_size, res)[0]}
    else:
        eval_batch = {"images": dataset[:settings.eval_size].astype(np.float32) / 127.5 - 1.0}

    def reals_of(g, b):
        """Images (and their true ws, for generated ones) of a batch."""
        if "images" in b:
            return b["images"], None
        ws = G.mapping(g, b["z"], truncation_psi=settings.truncation_psi)
        return G.synthesis(g, ws), ws

    w_space = inversion_space(G, "w")  # its prior mean (mean w) is where the projector starts, too

    def init(key):
        k_e, k_d = jax.random.split(key)
        encoder = Encoder.init(encoder_config, k_e, w_space.prior.mean).params
        d = d_params if d_params is not None else init_discriminator(d_config, k_d)
        return {"generator": G.params, "encoder": encoder, "d": d, "e_opt": e_tx.init(encoder["net"]),
                "d_opt": d_tx.init(d)}

    def logits(d, images):
        return D.apply({"params": d}, images)[:, 0]

    def reconstruct(g, encoder, images):
        return G.synthesis(g, E.encode(encoder, images))

    def step(state, b, key, step):
        g, encoder, d = state["generator"], state["encoder"], state["d"]
        reals, _ = reals_of(g, b)
        reals = jax.lax.stop_gradient(reals)
        real_features = jax.lax.stop_gradient(features(reals)) if use_features else None

        # E: reconstruct, look real to D.
        def e_loss(net):
            fakes = reconstruct(g, {**encoder, "net": net}, reals)
            terms = {"mse": jnp.mean(jnp.square(fakes - reals)),
                     "adversarial": jnp.mean(jax.nn.softplus(-logits(d, fakes)))}
            if use_features:
                terms["feature"] = jnp.mean(jnp.square(features(fakes) - real_features))
            loss = (terms["mse"] + settings.adversarial_weight * terms["adversarial"]
                    + settings.perceptual_weight * terms.get("feature", 0.0))
            return loss, terms

        (loss_e, terms), grads = jax.value_and_grad(e_loss, has_aux=True)(encoder["net"])
        updates, e_opt = e_tx.update(grads, state["e_opt"], encoder["net"])
        encoder = {**encoder, "net": optax.apply_updates(encoder["net"], updates)}

        # D: reals against the updated E's reconstructions, with R1 on the reals.
        fakes = jax.lax.stop_gradient(reconstruct(g, encoder, reals))

        def d_loss(d):
            real_logits, pullback = jax.vjp(lambda x: logits(d, x), reals)
            grad_reals = pullback(jnp.ones_like(real_logits))[0]
            r1 = jnp.mean(jnp.sum(jnp.square(grad_reals), axis=(1, 2, 3)))
            fake_logits = logits(d, fakes)
            loss = (jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))
                    + settings.r1_gamma / 2 * r1)
            return loss, (real_logits.mean(), fake_logits.mean(), r1)

        (loss_d, (score_real, score_fake, r1)), grads = jax.value_and_grad(d_loss, has_aux=True)(d)
        updates, d_opt = d_tx.update(grads, state["d_opt"], d)
        d = optax.apply_updates(d, updates)
        metrics = {"loss_E": loss_e, **terms, "loss_D": loss_d, "score_real": score_real,
                   "score_fake": score_fake, "r1_penalty": r1}
        return {**state, "encoder": encoder, "d": d, "e_opt": e_opt, "d_opt": d_opt}, metrics

    def sample(state):
        """Targets and their reconstructions, interleaved (target, reconstruction, ...)."""
        b = jax.tree.map(lambda x: x[:settings.grid_size], eval_batch)
        reals, _ = reals_of(state["generator"], b)
        fakes = reconstruct(state["generator"], state["encoder"], reals)
        pairs = jnp.stack([reals, fakes], axis=1).reshape(-1, *reals.shape[1:])
        return jnp.clip(pairs, -1.0, 1.0)

    def evaluate(state, key):
        reals, ws = reals_of(state["generator"], eval_batch)
        codes = E.encode(state["encoder"], reals)
        fakes = G.synthesis(state["generator"], codes)
        results = {"mse": jnp.mean(jnp.square(fakes - reals))}
        if ws is not None:
            results["latent_mse"] = jnp.mean(jnp.square(codes - ws))
        return results

    def export(state, workdir: Path, step: int):
        info = {"source_format": __name__, "step": int(step), "data": data, **(metadata or {})}
        save_encoder(Encoder(encoder_config, state["encoder"], info), Path(workdir) / EXPORT_DIR)

    return Task(init=init, step=step, batch=batch, sample=sample, evaluate=evaluate, export=export)


def make_task(config) -> Task:
    """The encoder training task of a train config (see `configs/train_encoder.py` for the fields)."""
    if not config.get("generator"):
        raise ValueError("config.generator is empty: pass --config.generator=PATH (or builtin:shapes)")
    settings = TrainSettings.from_dict(config.settings.to_dict())
    G = load_generator(config.generator)
    encoder_config = config_for(G, **config.encoder.to_dict())
    vgg = load_vgg16(settings.vgg16, settings.vgg16_convention or None) if settings.vgg16 else None
    discriminator = _snapshot_discriminator(config.generator) if settings.discriminator == "snapshot" else None
    return build_task(G, encoder_config, settings, data=str(config.get("data", "generator")),
                      batch_size=int(config.batch_size), total_steps=int(config.total_steps), vgg=vgg,
                      discriminator=discriminator,
                      metadata={"generator": str(config.generator), "settings": settings.to_dict()})
