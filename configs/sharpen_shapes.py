r"""Build a sharper shape switch into a seeded generator's mapping network (`latentjax.tasks.sharpen`): the
widened generator in `checkpoints/shapes_widened` becomes `builtin:shapes` (about a minute on one core).

    latentjax train --config configs/sharpen_shapes.py --workdir runs/sharpen
    latentjax train --config configs/sharpen_shapes.py:smoke --workdir out/sharpen   # seconds (CI)

Only the regressor of the seeding decoder's shape coordinate trains (Adam, cosine decay, half of each
batch near a shape boundary); the export in WORKDIR/generator is a StyleGAN2 whose mapping moves
latents within `width` of a boundary to within `band` of it (`seeding.sharpen_boundaries`).
"""

from latentjax.config import parse_arg
from latentjax.train.trainer import harness_config


def get_config(arg=None):
    arg = parse_arg(arg, smoke=False)
    config = harness_config("latentjax.tasks.sharpen", total_steps=20_000, batch_size=1024, log_every=500,
                            eval_every=5000, sample_every=5000, ckpt_every=5000)
    config.generator = "checkpoints/shapes_widened"  # a seeded StyleGAN2 (latentjax.tasks.distill)
    config.width = 0.02  # shape margins below this ...
    config.band = 0.4  # ... are stretched to below this (seeding.sharpen_boundaries; < 0.431): 0.2 is less valid (README)
    config.regressor_width = 128
    config.regressor_layers = 2
    config.lr = 0.003
    config.boundary_fraction = 0.5  # of each batch drawn near a shape boundary
    config.boundary_oversample = 4  # ... as the nearest of this many prior draws
    config.direction_samples = 20_000  # prior draws that fit each boundary's direction
    config.grid_size = 64
    config.grid_seed = 0
    config.eval_size = 1000
    if arg.smoke:
        config.total_steps = 4
        config.batch_size = 32
        config.direction_samples = 2000
        config.eval_size = 16
        config.grid_size = 4
        config.regressor_width = 16
        config.log_every = config.eval_every = config.sample_every = config.ckpt_every = 2
    return config
