r"""Voynov & Babenko's learned directions (`latentjax.directions.voynov`) on the training harness.

    latentjax train --config configs/voynov.py --workdir runs/voynov_shapes          # builtin:shapes, w
    latentjax train --config configs/voynov.py:stylegan2 --workdir runs/voynov_sg2 --config.generator=ffhq.pkl
    latentjax train --config configs/voynov.py:biggan --workdir runs/voynov_biggan --config.generator=DIR
    latentjax train --config configs/voynov.py:smoke --workdir out/smoke              # seconds (CI)

Variants: one model word, optionally with `smoke` (4 steps of batch 8, K = 4, LeNet on 32 px).
`shapes` (default): `builtin:shapes` in `w`, sized for two CPU cores (K = 10, 8,000 steps, about 15
minutes; OPENBLAS_NUM_THREADS=1 keeps `ortho`'s LAPACK calls fast on a busy CPU). `stylegan2` (`w`,
the reference's `w_shift`), `biggan` (`z`, class 0), `pggan` (`z`): the reference's hyper-parameters
(the `VoynovConfig` defaults), on `--config.generator` (required). `settings` are `VoynovConfig`
fields, `steps` and `batch_size` included. `WORKDIR/directions.npz` is written at every checkpoint;
`eval/rca` in `metrics.jsonl` is the reconstructor's accuracy.
"""

import dataclasses

from latentjax.config import parse_arg, space_config
from latentjax.directions.learned import train_config
from latentjax.directions.voynov import VoynovConfig

SPACES = {"shapes": ("w", None), "stylegan2": ("w", None), "biggan": ("z", 0), "pggan": ("z", None)}  # name, class


def get_config(arg=None):
    arg = parse_arg(arg, model=tuple(SPACES))
    harness = dict(log_every=100, eval_every=1000, sample_every=5000, ckpt_every=5000, keep_ckpts=2)
    settings = VoynovConfig()  # the reference's: K = the latent dimension, ortho, 100K steps of batch 32
    if arg.model == "shapes":
        settings = dataclasses.replace(settings, k=10, steps=8000)
        harness.update(eval_every=500, sample_every=1000, ckpt_every=1000)
    if arg.smoke:
        settings = dataclasses.replace(settings, k=4, steps=4, batch_size=8, reconstructor="lenet",
                                       reconstructor_size=32, fc_inner_dim=16, eval_per_direction=2, grid_size=2)
        harness.update(log_every=1, eval_every=2, sample_every=0, ckpt_every=2)
    config = train_config("latentjax.directions.voynov", settings, **harness)
    config.generator = "builtin:shapes" if arg.model == "shapes" else ""  # '' = required: --config.generator=PATH
    config.space = space_config(*SPACES[arg.model])
    return config
