r"""StyleGAN2 on the procedural shapes world (`latentjax.shapes.world`), sized for CPU at 32x32.

    latentjax train --config configs/train_shapes_gan.py --workdir runs/shapes_gan
    latentjax train --config configs/train_shapes_gan.py:res=64 --workdir runs/shapes64 --config.batch_size=64
    latentjax train --config configs/train_shapes_gan.py:smoke --workdir out/smoke   # seconds (CI)
    latentjax train --config configs/train_shapes_gan.py:builtin --workdir runs/builtin_shapes
    latentjax train --config configs/train_shapes_gan.py:builtin,distill --workdir runs/builtin_distill

The `distill` variant is the supervised warm start (`latentjax.tasks.distill`): the same generator
regresses renders of a fixed random factor decoder's factors; a GAN run then fine-tunes it
(`--config.init_from=runs/builtin_distill/generator`).

The `builtin` variant is the narrow model of the first built-in generator (widths 64-16, z = w = 64,
10,000 steps = 320 kimg, seed 0): about 1.5 hours on 2 CPU cores. `builtin,distill` with
`--config.channel_base=1024` (widths 64-64-64-32) is the architecture and the first phase of the
current `builtin:shapes`; the README gives the whole chain.

Hyperparameters follow stylegan2-ada-pytorch's 'auto' config where they are not about size:
Adam lr 0.0025, betas (0, 0.99); R1 gamma 0.0002 * res^2 / batch every 16 steps; EMA half-life
batch * 10 / 32 kimg with ramp-up 0.05; mixing probability 0.9; 2 mapping layers; no path-length
penalty. Widths are min(channel_base // res, channel_max) for G and D.
"""

import ml_collections

from latentjax.config import parse_arg
from latentjax.shapes import world
from latentjax.train.trainer import harness_config


def get_config(arg=None):
    arg = parse_arg(arg, res=32, builtin=False, distill=False)
    config = harness_config("latentjax.tasks.gan", total_steps=25_000, batch_size=32, sample_every=500)  # 800 kimg
    config.resolution = arg.res
    config.init_from = ""  # a generator to warm-start G from, grown if narrower (latentjax.tasks.gan); "" = random

    config.channel_base = 4096
    config.channel_max = 128
    config.d_channel_base = 0  # D's widths; 0: the same as G's
    config.d_channel_max = 0
    config.generator = ml_collections.ConfigDict(dict(z_dim=128, w_dim=128, mapping_layers=2))
    config.discriminator = ml_collections.ConfigDict(dict(mbstd_group_size=4))

    config.g_lr = 0.0025
    config.d_lr = 0.0025
    config.betas = (0.0, 0.99)
    config.eps = 1e-8
    config.r1_gamma = 0.0002 * config.resolution ** 2 / config.batch_size
    config.r1_interval = 16
    config.style_mixing_prob = 0.9
    config.ema_kimg = config.batch_size * 10 / 32
    config.ema_rampup = 0.05

    config.grid_size = 64
    config.grid_seed = 0
    config.eval_size = 256  # fixed latents whose images the read-out checks (latentjax.shapes.quality.training_metrics)
    config.distill_weight = 0.0  # > 0: keep the warm start's loss in G's (latentjax.tasks.gan)
    # latentjax.shapes.seeding; periodic="circle" joins the ends of hue and rotation (z_dim >= 9);
    # stretch > 1 asks for a factor's ends more often (to counter a generator drawing it narrower)
    config.seeding = ml_collections.ConfigDict(dict(seed=0, rounds=2, periodic="line",
                                                    stretch=dict.fromkeys(world.FACTOR_NAMES[1:], 1.0)))
    config.object_weight = 9.0  # the warm start's extra weight on object pixels

    if arg.builtin:
        config.total_steps = 10_000
        config.channel_base = 512
        config.channel_max = 64
        config.generator = ml_collections.ConfigDict(dict(z_dim=64, w_dim=64, mapping_layers=2))
    if arg.distill:
        config.task = "latentjax.tasks.distill"
        config.total_steps = 40_000
        config.lr = 0.002
        config.betas = (0.9, 0.99)
        config.mapping_lr_scale = 100.0  # undoes the mapping's lr multiplier 0.01
        config.projection_weight = 0.0  # > 0: also pull each image to its own re-render (latentjax.tasks.distill)
        config.projection_given = ("shape", "scale")  # factors the re-render takes from the decoder, not the read-out
        config.boundary_fraction = 0.0  # of each batch drawn near the decoder's shape boundaries (latentjax.tasks.distill)
        config.boundary_oversample = 8  # ... as the nearest of this many prior draws per latent
        config.eval_every = 1000
        config.ema_kimg = 0.0  # > 0: export the params' moving average, half-life ema_kimg thousand images
        config.ema_rampup = 0.0  # the half-life's ramp as in the GAN; 0: none (a continued run starts averaged)
        for name in ("g_lr", "d_lr", "eps", "r1_gamma", "r1_interval", "style_mixing_prob", "d_channel_base", "d_channel_max", "discriminator", "distill_weight"):
            del config[name]
    if arg.smoke:
        config.resolution = 8
        config.batch_size = 8
        config.total_steps = 6
        config.channel_base = 128
        config.channel_max = 16
        config.generator = ml_collections.ConfigDict(dict(z_dim=16, w_dim=16, mapping_layers=1))
        config.eval_size = 8
        if arg.distill:
            config.eval_every = 3
        else:
            config.r1_interval = 2
        config.log_every = 1
        config.sample_every = 2
        config.ckpt_every = 2
        config.grid_size = 4
    return config
