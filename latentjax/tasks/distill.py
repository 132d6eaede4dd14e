"""Supervised warm start of a StyleGAN2 on the shapes world, as a harness `Task`.

The generator regresses `render(decode_factors(f, z))` for a fixed random factor decoder f
(`latentjax.shapes.seeding`): supervised, so it learns to draw the world in a fraction of the steps
an adversarial run needs; `latentjax.tasks.gan` then fine-tunes it adversarially (`config.init_from`).
`config.projection_weight` > 0 adds a sharpening term against each image's own re-render, and
`config.boundary_fraction` of each batch is drawn near the decoder's shape boundaries
(`seeding.boundary_latents`), where a generator must switch shapes sharply and few prior draws fall.
`config.seeding.stretch` asks for chosen factors' ends more often (`seeding.factor_decoder`).
`config.ema_kimg` > 0 keeps StyleGAN2's moving average of the generator's params, which is then what
is sampled, evaluated (beside the raw params, `raw_*`) and exported. The mapping network's learning
rate is scaled by `config.mapping_lr_scale`: StyleGAN2's lr multiplier 0.01 would leave it almost
frozen here. The generator is exported to `WORKDIR/generator/` at every
checkpoint.
Details: docs/shapes.md#latentjaxtasksdistill
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from latentjax.load import save_generator
from latentjax.models.stylegan2 import StyleGAN2
from latentjax.shapes import quality, seeding, world
from latentjax.sharding import shard_batch
from latentjax.tasks.gan import (EXPORT_DIR, configured_warm_start, ema_generator, export_metadata, fixed_latents,
                                 generator_config, track_w_avg)
from latentjax.train.task import Task


def make_task(config) -> Task:
    """The warm-start task for `config` (see the `distill` variant of `configs/train_shapes_gan.py`)."""
    G = StyleGAN2(generator_config(config), None)
    batch_size, resolution = int(config.batch_size), int(config.resolution)
    decoder = seeding.decoder_from(config.seeding, G.z_dim)
    object_weight, projection_weight = float(config.object_weight), float(config.projection_weight)
    ema_kimg, ema_rampup = float(config.ema_kimg), float(config.ema_rampup)
    for name, value in (("object_weight", object_weight), ("projection_weight", projection_weight),
                        ("ema_kimg", ema_kimg), ("ema_rampup", ema_rampup)):
        if value < 0:
            raise ValueError(f"config.{name} must be >= 0, got {value}")
    boundary_fraction, oversample = float(config.boundary_fraction), config.boundary_oversample
    if not 0.0 <= boundary_fraction <= 1.0:
        raise ValueError(f"config.boundary_fraction must be in [0, 1], got {boundary_fraction}")
    seeding.check_oversample(oversample, "config.boundary_oversample")
    num_boundary = round(batch_size * boundary_fraction)
    given = tuple(config.projection_given)
    if projection_weight > 0 and not set(given) <= set(world.FACTOR_NAMES):
        raise ValueError(f"config.projection_given must name factors of {world.FACTOR_NAMES}, got {given}")
    lr = float(config.lr)
    tx = optax.multi_transform(
        {"mapping": optax.adam(lr * float(config.mapping_lr_scale), b1=config.betas[0], b2=config.betas[1]),
         "synthesis": optax.adam(lr, b1=config.betas[0], b2=config.betas[1])},
        lambda params: {name: ("mapping" if name == "mapping" else "synthesis") for name in params})
    grid_z, eval_z = fixed_latents(config, G.z_dim)
    warm_start = configured_warm_start(config, G.config)

    def init(key):
        g = StyleGAN2.init(G.config, key).params if warm_start is None else jax.tree.map(jnp.asarray, warm_start.params)
        return {"g": g, "opt": tx.init(g), **({"g_ema": g} if ema_kimg else {})}

    def shown(state):
        """The params sampled, evaluated and exported: the moving average when one is kept."""
        return state["g_ema"] if ema_kimg else state["g"]

    def batch(key):
        prior_key, boundary_key = jax.random.split(key)
        z = jax.random.normal(prior_key, (batch_size - num_boundary, G.z_dim))
        if num_boundary:
            z = jnp.concatenate([z, seeding.boundary_latents(decoder, boundary_key, num_boundary, G.z_dim, oversample)])
        target, weight = seeding.render_targets(decoder, z, resolution, object_weight)
        factors = seeding.decode_factors(decoder, z)
        return {"z": z, "target": target, "weight": weight, "given": {name: factors[name] for name in given}}

    def step(state, data, key, step):
        def loss_fn(g):
            ws = G.mapping(g, shard_batch(data["z"]))
            images = G.synthesis(g, ws, noise_mode="random", key=key)
            loss = seeding.pixel_loss(images, data["target"], data["weight"])
            logs = {"l1": jnp.mean(jnp.abs(images - data["target"]))}
            if projection_weight > 0:
                targets = seeding.projection_targets(images, object_weight, data["given"])
                logs["loss_projection"] = seeding.pixel_loss(images, *targets)
                loss = loss + projection_weight * logs["loss_projection"]
            return loss, (ws, logs)

        (loss, (ws, logs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["g"])
        updates, opt = tx.update(grads, state["opt"], state["g"])
        g = track_w_avg(optax.apply_updates(state["g"], updates), ws)
        if not ema_kimg:
            return {"g": g, "opt": opt}, {"loss": loss, **logs}
        g_ema, logs["ema_beta"] = ema_generator(g, state["g_ema"], step, batch_size, ema_kimg, ema_rampup)
        return {"g": g, "opt": opt, "g_ema": g_ema}, {"loss": loss, **logs}

    def sample(state):
        return G.generate(shown(state), jnp.asarray(grid_z), noise_mode="const")

    def evaluate(state, key):
        target = world.render(seeding.decode_factors(decoder, jnp.asarray(eval_z)), resolution).images

        def metrics(g):
            images = jnp.clip(G.generate(g, jnp.asarray(eval_z), noise_mode="const"), -1.0, 1.0)
            return {**quality.training_metrics(images), "l1_to_target": jnp.mean(jnp.abs(images - target))}

        if not ema_kimg:
            return metrics(state["g"])
        return {**metrics(state["g_ema"]), **{f"raw_{k}": v for k, v in metrics(state["g"]).items()}}

    def export(state, workdir: Path, step: int):
        metadata = export_metadata(config, "latentjax.tasks.distill", step, warm_start,
                                   seeding=dict(config.seeding.to_dict()), ema=bool(ema_kimg))
        save_generator(StyleGAN2(G.config, shown(state), metadata), Path(workdir) / EXPORT_DIR)

    return Task(init=init, step=step, batch=batch, sample=sample, evaluate=evaluate, export=export)
