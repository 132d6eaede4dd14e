"""Training an identity mapper (Nitzan et al. 2020, YotamNitzan/ID-disentanglement), a harness `Task`:
`latentjax train --config configs/identity.py`.

Data are the frozen generator's own samples (the reference's) or true shapes-world renders. Every
`cross_every`-th step is a "cross" step (attribute images from other samples), the others "same"
steps. The losses, with the reference's weights as defaults: identity, pose, pixel (same steps
only) and a non-saturating adversarial loss on w against a discriminator with R1; three Adam
optimisers, as the reference. The identity encoder, the pose encoder and the generator are frozen
and ride in the train state. Evaluation includes the reference's disentanglement score. `export`
writes the mapper to `WORKDIR/identity_mapper/`.
Details: docs/methods.md#latentjaxtasksidentity
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax.identity import IdentityMapper, MapperConfig, load_encoder, save_mapper
from latentjax.latent import latent_space
from latentjax.metrics.image import centre_weights, ms_ssim, ms_ssim_weights
from latentjax.nn.mlp import MLP, MLPConfig
from latentjax.shapes.world import render, sample_factors
from latentjax.sharding import shard_batch
from latentjax.train.task import Task

EXPORT_DIR = "identity_mapper"
DISCRIMINATOR_WIDTHS = (256, 128, 64, 1)
MS_SSIM_WINDOW = 11
DATA = ("generator", "shapes")


def mapper_config(config) -> MapperConfig:
    return MapperConfig(generator=str(config.generator), identity_encoder=str(config.identity_encoder),
                        attribute_encoder=str(config.attribute_encoder), hidden=tuple(config.hidden),
                        class_index=config.get("class_index"))


def pixel_loss(out, target, weights, scales):
    """0.84 (1 - MS-SSIM) + 0.16 weighted L1 per pair [N], images in [-1, 1] compared in [0, 1]."""
    out01, target01 = (out + 1) / 2, (target + 1) / 2
    structure = 1 - ms_ssim(out01, target01, data_range=1.0, weights=scales, window=MS_SSIM_WINDOW)
    weighted_l1 = jnp.mean(jnp.sum(weights[None, :, :, None] * jnp.abs(out01 - target01), axis=(1, 2)), axis=-1)
    return 0.84 * structure + 0.16 * weighted_l1


def pose_comparison(pose, angles: tuple[tuple[str, str], ...] = (), angle_weight: float = 1.0):
    """The pose loss per pair: `error(params, out, attribute_images, identity_images) -> [N]`, the mean
    squared difference of `pose`'s estimates of the output and of the attribute image.

    `angles` names (cos, sin) head pairs of an angle that only some images have (a polygon's
    rotation; a circle's vector is near 0). Those pairs are compared as directions, weighted by the
    length (up to 1) of the attribute image's vector and of the identity image's, so that an image
    without the angle asks nothing of the output's; the squared difference of the pose network's
    raw vectors would instead pull the output towards the attribute image's shape. `angle_weight`
    scales the angle terms against the plain ones (`config.pose_angle_weight`)."""
    names = pose.heads or ()
    wanted = [name for pair in angles for name in pair]
    if any(len(pair) != 2 for pair in angles) or not set(wanted) <= set(names) or len(set(wanted)) != len(wanted):
        raise ValueError(f"config.pose_angles must be distinct (cos, sin) pairs of the pose encoder's heads {names}, "
                         f"got {angles}")
    pairs = np.asarray([[names.index(c), names.index(s)] for c, s in angles], int).reshape(-1, 2)
    plain = np.asarray([i for i, name in enumerate(names) if name not in wanted] if names else range(pose.dim), int)
    count = len(plain) + pairs.size

    def unit(v):  # a direction; vectors shorter than 0.5 (no angle to speak of) are not blown up
        return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 0.5)

    def error(params, out, attribute_images, identity_images):
        got = pose.embed(params, out)
        target = jax.lax.stop_gradient(pose.embed(params, attribute_images))
        total = jnp.sum((got[:, plain] - target[:, plain]) ** 2, axis=-1)
        if len(pairs):
            reference = jax.lax.stop_gradient(pose.embed(params, identity_images))[:, pairs]
            length = lambda v: jnp.minimum(jnp.linalg.norm(v, axis=-1), 1.0)  # noqa: E731
            weight = length(target[:, pairs]) * length(reference)
            total += angle_weight * jnp.sum(weight * jnp.sum((unit(got[:, pairs]) - unit(target[:, pairs])) ** 2, -1), -1)
        return total / count
    return error


def make_task(config) -> Task:
    """The identity-mapper task for `config` (see `configs/identity.py` for the fields)."""
    batch_size, cross_every, eval_size = int(config.batch_size), int(config.cross_every), int(config.eval_size)
    if batch_size < 2 or cross_every < 1 or eval_size < 2:
        raise ValueError(f"config.batch_size and config.eval_size must be >= 2 (a cross step pairs different samples) "
                         f"and config.cross_every >= 1, got {batch_size}, {eval_size}, {cross_every}")
    data = str(config.get("data", "generator"))
    if data not in DATA:
        raise ValueError(f"config.data must be one of {DATA}, got {data!r}")
    fresh = IdentityMapper.build(mapper_config(config), jax.random.key(0))
    G = fresh.space.generator
    data_space = latent_space(G, "w", truncation_psi=float(config.truncation_psi), class_index=config.get("class_index"))
    pose = (load_encoder(config.pose_encoder, heads=tuple(config.get("pose_heads", ())) or None)
            if config.get("pose_encoder") else None)
    if pose is not None:
        compare_pose = pose_comparison(pose, tuple(tuple(pair) for pair in config.get("pose_angles", ())),
                                       float(config.get("pose_angle_weight", 1.0)))
    elif config.get("pose_angles"):
        raise ValueError(f"config.pose_angles {config.pose_angles} needs a config.pose_encoder")
    resolution = G.img_resolution
    if resolution < MS_SSIM_WINDOW:
        raise ValueError(f"the pixel loss's MS-SSIM needs images of at least {MS_SSIM_WINDOW} pixels; "
                         f"{config.generator} makes {resolution}x{resolution}")
    weights = jnp.asarray(centre_weights(resolution, resolution, 80.0 * resolution / 256))
    scales = ms_ssim_weights(min(5, int(np.log2(resolution / MS_SSIM_WINDOW)) + 1))
    disc = MLP(MLPConfig(G.w_dim, DISCRIMINATOR_WIDTHS), None)
    lr = float(config.lr)
    main_tx, gan_tx, disc_tx = optax.adam(lr), optax.adam(0.1 * lr), optax.adam(0.4 * lr)
    w_identity, w_pose, w_pixel, w_adv = (float(config[k]) for k in ("identity_weight", "pose_weight", "pixel_weight",
                                                                     "adversarial_weight"))
    r1_gamma = float(config.r1_gamma)

    def init(key):
        k_map, k_disc = jax.random.split(key)
        mapping = MLP.init(fresh.mapping.config, k_map).params
        trainable = {"mapping": mapping, "attributes": fresh.attributes.params}
        d = MLP.init(disc.config, k_disc).params
        frozen = {"generator": G.params, "identity": fresh.identity.params,
                  "pose": pose.params if pose is not None else {}}
        return {"trainable": trainable, "disc": d, "frozen": frozen, "main_opt": main_tx.init(trainable),
                "gan_opt": gan_tx.init(mapping), "disc_opt": disc_tx.init(d)}

    def draw(frozen, key, n):
        """n training images: generator samples or true renders (`config.data`)."""
        if data == "shapes":
            return render(sample_factors(key, n), resolution).images
        return data_space.decode(frozen["generator"], data_space.sample(key, n, frozen["generator"]))

    def forward(trainable, frozen, identity_images, attribute_images):
        """(the mapping's input embeddings, w, output images, unit identity embeddings of the identity
        images and of the outputs)."""
        id_embedding = jax.lax.stop_gradient(fresh.identity.embed(frozen["identity"], identity_images))
        inputs = jnp.concatenate([id_embedding, fresh.attributes.embed(trainable["attributes"], attribute_images)], -1)
        w = fresh.mapping.apply(trainable["mapping"], inputs)
        out = fresh.decode(frozen["generator"], w)
        return inputs, w, out, id_embedding, fresh.identity.embed(frozen["identity"], out)

    def pose_error(frozen, out, attribute_images, identity_images):
        if pose is None:
            return jnp.zeros(out.shape[0])
        return compare_pose(frozen["pose"], out, attribute_images, identity_images)

    def step(state, batch, key, step):
        k_data, k_real = jax.random.split(key)
        frozen, trainable, d = state["frozen"], state["trainable"], state["disc"]
        identity_images = draw(frozen, k_data, batch_size)
        identity_images = shard_batch(identity_images)
        cross = step % cross_every == 0
        attribute_images = jnp.where(cross, jnp.roll(identity_images, 1, axis=0), identity_images)

        def main_loss(trainable):
            inputs, w, out, id_embedding, out_embedding = forward(trainable, frozen, identity_images, attribute_images)
            parts = {"identity": jnp.mean(jnp.abs(out_embedding - id_embedding)),
                     "pose": jnp.mean(pose_error(frozen, out, attribute_images, identity_images)),
                     "pixel": jnp.where(cross, 0.0, jnp.mean(pixel_loss(out, attribute_images, weights, scales)))}
            total = w_identity * parts["identity"] + w_pose * parts["pose"] + w_pixel * parts["pixel"]
            return total, (parts, w, inputs)

        (total, (parts, w_fake, inputs)), grads = jax.value_and_grad(main_loss, has_aux=True)(trainable)

        # the mapping's adversarial term: gradients at the same params and inputs, its own optimiser
        embeddings = jax.lax.stop_gradient(inputs)
        adversarial_loss = lambda mapping: w_adv * jnp.mean(  # noqa: E731
            jax.nn.softplus(-disc.apply(d, fresh.mapping.apply(mapping, embeddings))[:, 0]))
        adv, gan_grads = jax.value_and_grad(adversarial_loss)(trainable["mapping"])
        updates, main_opt = main_tx.update(grads, state["main_opt"], trainable)
        gan_updates, gan_opt = gan_tx.update(gan_grads, state["gan_opt"], trainable["mapping"])
        trainable = optax.apply_updates(trainable, updates)
        trainable = {**trainable, "mapping": optax.apply_updates(trainable["mapping"], gan_updates)}

        w_real = shard_batch(data_space.sample(k_real, batch_size, frozen["generator"]))

        def disc_loss(d):
            real_logits = disc.apply(d, w_real)[:, 0]
            fake_logits = disc.apply(d, jax.lax.stop_gradient(w_fake))[:, 0]
            r1 = jnp.mean(jnp.sum(jax.grad(lambda w: jnp.sum(disc.apply(d, w)))(w_real) ** 2, axis=-1))
            return jnp.mean(jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)) + 0.5 * r1_gamma * r1

        loss_d, d_grads = jax.value_and_grad(disc_loss)(d)
        d_updates, disc_opt = disc_tx.update(d_grads, state["disc_opt"], d)
        on = step % 2 == 0  # the discriminator steps on even steps only
        d_next, disc_opt = jax.tree.map(lambda new, old: jnp.where(on, new, old),
                                        (optax.apply_updates(d, d_updates), disc_opt), (d, state["disc_opt"]))
        metrics = {"loss": total, **{f"loss/{k}": v for k, v in parts.items()}, "loss/adversarial": adv,
                   "loss/discriminator": loss_d, "cross": cross.astype(jnp.float32)}
        return {**state, "trainable": trainable, "disc": d_next, "main_opt": main_opt, "gan_opt": gan_opt,
                "disc_opt": disc_opt}, metrics

    def evaluate(state, key):
        frozen, trainable = state["frozen"], state["trainable"]
        images = draw(frozen, jax.random.key(int(config.eval_seed)), eval_size)
        attributes = jnp.roll(images, 1, axis=0)
        _, _, out, id_embedding, out_embedding = forward(trainable, frozen, images, attributes)
        attr_embedding = fresh.identity.embed(frozen["identity"], attributes)
        id_cos, attr_cos = jnp.sum(out_embedding * id_embedding, -1), jnp.sum(out_embedding * attr_embedding, -1)
        _, _, same, _, same_embedding = forward(trainable, frozen, images, images)
        mse = jnp.mean((same - images) ** 2, axis=(1, 2, 3))
        return {"disentanglement": jnp.mean(id_cos - attr_cos), "identity_similarity": jnp.mean(id_cos),
                "pose_error": jnp.mean(pose_error(frozen, out, attributes, images)),
                "reconstruction_mse": jnp.mean(mse), "reconstruction_psnr": jnp.mean(10 * jnp.log10(4.0 / mse)),
                "reconstruction_identity": jnp.mean(jnp.sum(same_embedding * id_embedding, -1))}

    def sample(state):
        """A grid's worth: 8 identity images, 8 attribute images, their swaps."""
        frozen = state["frozen"]
        images = draw(frozen, jax.random.key(int(config.eval_seed) + 1), 16)
        identity_images, attribute_images = images[:8], images[8:]
        _, _, out, _, _ = forward(state["trainable"], frozen, identity_images, attribute_images)
        return jnp.concatenate([identity_images, attribute_images, out])

    def result(train_state):
        trainable = train_state["state"]["trainable"]
        return IdentityMapper(fresh.config, fresh.space, fresh.identity, fresh.attributes, fresh.mapping, trainable,
                              {"step": int(train_state["step"])})

    def export(state, workdir: Path, step: int):
        save_mapper(result({"state": state, "step": step}), Path(workdir) / EXPORT_DIR)

    return Task(init=init, step=step, evaluate=evaluate, sample=sample, export=export, result=result)
