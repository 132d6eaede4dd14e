"""StyleGAN2 training (as in stylegan2-ada-pytorch) on the procedural shapes world, as a harness `Task`.

Per step, in the reference's phase order: G main, D main, every `r1_interval` steps a lazy R1 update
of D, then the EMA generator; G has no path-length penalty. The EMA generator is exported with
`latentjax.save_generator` to `WORKDIR/generator/` at every checkpoint. `config.init_from`
warm-starts G and its EMA copy (with a fresh D and fresh optimisers); `config.distill_weight` > 0
adds the supervised warm start's loss (`latentjax.tasks.distill`) to G's.
Details: docs/shapes.md#latentjaxtasksgan
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax import shapes
from latentjax.shapes import seeding
from latentjax.load import load_generator
from latentjax.load import save_generator
from latentjax.models.stylegan2 import StyleGAN2, StyleGAN2Config, mix_styles, widen
from latentjax.nn.discriminator import Discriminator, DiscriminatorConfig, init_discriminator
from latentjax.sharding import shard_batch
from latentjax.train.task import Task

W_AVG_BETA = 0.995
EXPORT_DIR = "generator"


def channels(resolution: int, channel_base: int, channel_max: int) -> tuple[int, ...]:
    """Widths at resolutions 4, 8, ..., `resolution`: min(channel_base // res, channel_max)."""
    res = [4 << i for i in range(int(np.log2(resolution)) - 1)]
    return tuple(min(int(channel_base) // r, int(channel_max)) for r in res)


def generator_config(config) -> StyleGAN2Config:
    return StyleGAN2Config(img_resolution=int(config.resolution), img_channels=3,
                           channels=channels(config.resolution, config.channel_base, config.channel_max),
                           **config.generator.to_dict())


def discriminator_config(config) -> DiscriminatorConfig:
    """D's widths come from `d_channel_base` / `d_channel_max` where set, else from G's."""
    widths = channels(config.resolution, config.get("d_channel_base") or config.channel_base,
                      config.get("d_channel_max") or config.channel_max)
    return DiscriminatorConfig(img_resolution=int(config.resolution), img_channels=3, channels=widths,
                               **config.discriminator.to_dict())


def warm_start_generator(source, expected: StyleGAN2Config, key) -> StyleGAN2:
    """The generator at `source` (a `latentjax.load_generator` source), which must be a StyleGAN2
    with the `expected` architecture, or one that differs only by narrower channels: that one is
    widened to it (`latentjax.models.stylegan2.widen`, new channels drawn with `key`), drawing the
    same images. Its params as numpy arrays."""
    generator = load_generator(source)
    found = getattr(generator, "config", type(generator).__name__)
    if not isinstance(generator, StyleGAN2):
        raise ValueError(f"config.init_from={source!r}: expected a StyleGAN2 generator, found {found}")
    if generator.config != expected:
        try:
            generator = widen(generator, expected, key)
        except ValueError:
            raise ValueError(f"config.init_from={source!r}: expected a StyleGAN2 generator with the configured "
                             f"architecture {expected} (or the same with narrower channels), found {found}") from None
    return StyleGAN2(generator.config, jax.tree.map(np.asarray, generator.params), generator.metadata)


def configured_warm_start(config, expected: StyleGAN2Config) -> StyleGAN2 | None:
    """The `warm_start_generator` that `config.init_from` names (None when it is empty or absent),
    any new channels drawn from `config.seed`."""
    if not config.get("init_from"):
        return None
    return warm_start_generator(config.init_from, expected, jax.random.key(config.seed))


def fixed_latents(config, z_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The latents of the logged image grid (`grid_size`, seed `grid_seed`) and of the periodic
    read-out evaluation (`eval_size`, seed `grid_seed + 1`)."""
    grid = jax.random.normal(jax.random.key(config.grid_seed), (int(config.grid_size), z_dim))
    evaluation = jax.random.normal(jax.random.key(config.grid_seed + 1), (int(config.eval_size), z_dim))
    return np.asarray(grid), np.asarray(evaluation)


def export_metadata(config, source_format: str, step: int, warm_start: StyleGAN2 | None, **extra) -> dict:
    """An exported generator's metadata: what trained it, how far, and where the run started (with that
    generator's own metadata) when it was warm-started."""
    metadata = {"source_format": source_format, "dataset": "shapes", "step": int(step),
                "kimg": int(step) * int(config.batch_size) / 1000, **extra}
    if warm_start is not None:
        metadata.update(init_from=str(config.init_from), init_metadata=dict(warm_start.metadata))
    return metadata


def adam(lr: float, betas, eps: float, reg_interval: int = 0) -> optax.GradientTransformation:
    """Adam; with a lazy regulariser every `reg_interval` steps, lr * r and betas ** r, r = k / (k + 1)."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return optax.adam(lr * ratio, b1=betas[0] ** ratio, b2=betas[1] ** ratio, eps=eps)


def _sanitize(grads):
    return jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5), grads)


def track_w_avg(params, ws):
    """w_avg <- lerp(mean w, w_avg, 0.995), as the reference's mapping network does while training."""
    mean = ws[:, 0].mean(axis=0)
    w_avg = mean + W_AVG_BETA * (params["mapping"]["w_avg"] - mean)
    return {**params, "mapping": {**params["mapping"], "w_avg": w_avg}}


def ema_generator(g, g_ema, step, batch_size: int, ema_kimg: float, ema_rampup: float):
    """StyleGAN2's EMA of the generator's params, (new g_ema, beta): a half-life of `ema_kimg`
    thousand images, ramped up to it over the first `step * batch_size * ema_rampup` images
    (`ema_rampup` 0: no ramp); `w_avg` is the raw generator's, not averaged twice."""
    ema_nimg = ema_kimg * 1000.0
    if ema_rampup:
        ema_nimg = jnp.minimum(ema_nimg, jnp.asarray(step, jnp.float32) * batch_size * ema_rampup)
    beta = 0.5 ** (batch_size / jnp.maximum(ema_nimg, 1e-8))
    g_ema = jax.tree.map(lambda p, e: p + (e - p) * beta, g, g_ema)
    g_ema["mapping"]["w_avg"] = g["mapping"]["w_avg"]
    return g_ema, beta


def make_task(config) -> Task:
    """The GAN task for `config` (see `configs/train_shapes_gan.py` for the fields)."""
    G = StyleGAN2(generator_config(config), None)
    d_config = discriminator_config(config)
    D = Discriminator(d_config)
    batch_size, resolution = int(config.batch_size), int(config.resolution)
    r1_gamma, r1_interval = float(config.r1_gamma), int(config.r1_interval)
    lazy_r1 = r1_interval if r1_gamma > 0 else 0
    g_tx = adam(config.g_lr, tuple(config.betas), config.eps)
    d_tx = adam(config.d_lr, tuple(config.betas), config.eps, lazy_r1)
    grid_z, eval_z = fixed_latents(config, G.z_dim)
    warm_start = configured_warm_start(config, G.config)
    distill_weight = float(config.get("distill_weight", 0.0))
    if distill_weight:
        decoder = seeding.decoder_from(config.seeding, G.z_dim)

    def init(key):
        k_g, k_d = jax.random.split(key)
        if warm_start is None:
            g = StyleGAN2.init(G.config, k_g).params
        else:
            g = jax.tree.map(jnp.asarray, warm_start.params)
        d = init_discriminator(d_config, k_d)
        return {"g": g, "d": d, "g_ema": g, "g_opt": g_tx.init(g), "d_opt": d_tx.init(d),
                "r1_penalty": jnp.zeros((), jnp.float32)}

    def run_G(g, key):
        """Fakes with style mixing and random noise; also the main latents and their ws (for w_avg)."""
        k_z, k_mix, k_cut, k_prob, k_noise = jax.random.split(key, 5)
        z = shard_batch(jax.random.normal(k_z, (batch_size, G.z_dim)))
        ws = G.mapping(g, z)
        if config.style_mixing_prob > 0:
            cutoff = jax.random.randint(k_cut, (), 1, G.num_ws)
            cutoff = jnp.where(jax.random.uniform(k_prob) < config.style_mixing_prob, cutoff, G.num_ws)
            ws_mix = G.mapping(g, shard_batch(jax.random.normal(k_mix, (batch_size, G.z_dim))))
            mixed = mix_styles(ws, ws_mix, cutoff)
        else:
            mixed = ws
        return G.synthesis(g, mixed, noise_mode="random", key=k_noise), z, ws

    def logits(d, img):
        return D.apply({"params": d}, img)[:, 0]

    def step(state, reals, key, step):
        k_g, k_d = jax.random.split(key)
        g, d = state["g"], state["d"]

        # G main: maximise the logits of fakes (and, optionally, draw the seeding decoder's renders).
        def g_loss(g):
            fakes, z, ws = run_G(g, k_g)
            loss = jnp.mean(jax.nn.softplus(-logits(d, fakes)))
            if not distill_weight:
                return loss, (ws, jnp.zeros(()))
            targets, weights = seeding.render_targets(decoder, z, resolution, float(config.object_weight))
            unmixed = G.synthesis(g, ws, noise_mode="random", key=jax.random.fold_in(k_g, 1))
            distill = seeding.pixel_loss(unmixed, targets, weights)
            return loss + distill_weight * distill, (ws, distill)

        (loss_g, (ws, loss_distill)), grads = jax.value_and_grad(g_loss, has_aux=True)(g)
        updates, g_opt = g_tx.update(_sanitize(grads), state["g_opt"], g)
        g = track_w_avg(optax.apply_updates(g, updates), ws)

        # D main: minimise the logits of fakes (from the updated G), maximise those of reals.
        fakes, _, ws = run_G(g, k_d)
        fakes = jax.lax.stop_gradient(fakes)
        g = track_w_avg(g, ws)

        def d_loss(d):
            fake_logits, real_logits = logits(d, fakes), logits(d, reals)
            loss = jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))
            return loss, (fake_logits.mean(), real_logits.mean())

        (loss_d, (score_fake, score_real)), grads = jax.value_and_grad(d_loss, has_aux=True)(d)
        updates, d_opt = d_tx.update(_sanitize(grads), state["d_opt"], d)
        d = optax.apply_updates(d, updates)

        # D reg: lazy R1 on reals, its own optimiser step, weighted by the interval.
        def r1_update(args):
            d, d_opt, _ = args

            def r1_loss(d):
                grad_img = jax.grad(lambda x: logits(d, x).sum())(reals)
                penalty = jnp.sum(jnp.square(grad_img), axis=(1, 2, 3))
                return jnp.mean(penalty * (r1_gamma / 2)) * r1_interval, penalty.mean()

            (_, penalty), grads = jax.value_and_grad(r1_loss, has_aux=True)(d)
            updates, d_opt = d_tx.update(_sanitize(grads), d_opt, d)
            return optax.apply_updates(d, updates), d_opt, penalty

        r1_penalty = state["r1_penalty"]
        if lazy_r1:
            d, d_opt, r1_penalty = jax.lax.cond(step % r1_interval == 0, r1_update, lambda args: args,
                                                (d, d_opt, r1_penalty))

        g_ema, beta = ema_generator(g, state["g_ema"], step, batch_size, config.ema_kimg, config.ema_rampup)

        metrics = {"loss_G": loss_g, "loss_D": loss_d, "score_real": score_real, "score_fake": score_fake,
                   "r1_penalty": r1_penalty, "ema_beta": beta}
        if distill_weight:
            metrics["loss_distill"] = loss_distill
        return {"g": g, "d": d, "g_ema": g_ema, "g_opt": g_opt, "d_opt": d_opt, "r1_penalty": r1_penalty}, metrics

    def batch(key):
        return shapes.sample(key, batch_size, resolution)[0]

    def sample(state):
        return G.generate(state["g_ema"], jnp.asarray(grid_z), noise_mode="const")

    def evaluate(state, key):
        images = G.generate(state["g_ema"], jnp.asarray(eval_z), noise_mode="const")
        return shapes.quality.training_metrics(jnp.clip(images, -1.0, 1.0))

    def export(state, workdir: Path, step: int):
        metadata = export_metadata(config, "latentjax.tasks.gan", step, warm_start, ema=True)
        save_generator(StyleGAN2(G.config, state["g_ema"], metadata), Path(workdir) / EXPORT_DIR)

    return Task(init=init, step=step, batch=batch, sample=sample, evaluate=evaluate, export=export)
