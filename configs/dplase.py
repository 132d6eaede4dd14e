r"""DP-LaSE directions (`latentjax.directions.dplase`) on the training harness:

    latentjax train --config configs/dplase.py --workdir runs/dplase_shapes             # builtin:shapes, CPU
    latentjax train --config configs/dplase.py:pggan --workdir runs/dplase_pggan --config.generator=pggan.pth
    latentjax train --config configs/dplase.py:smoke --workdir out/smoke                # seconds (CI)

Variants: one model word, optionally with `smoke`; all act in `z`, as the reference. `stylegan2`,
`biggan` (class 0) and `pggan` need `--config.generator` and carry the reference's hyper-parameters
(guanyuelee/DP-LaSE; the `DPLaSEConfig` defaults) at layers PGGAN `b32` (its layer 8), BigGAN `gen_z`
(its layer 1) and StyleGAN2 `b16` (the reference walks StyleGAN2's styles instead). `shapes` (the
default, `builtin:shapes`) is sized for two CPU cores (5 to 15 minutes): 3,000 steps, 10 directions
at `b16`, Adam 1e-2 instead of 1e-4 (rows of norm about sqrt(64) = 8 would barely turn at 1e-4 in
3,000 steps), subspaces over the last 1,000 steps. `settings` are `DPLaSEConfig` fields, `steps`
and `batch_size` included.
"""

import dataclasses

from latentjax.config import parse_arg, space_config
from latentjax.directions.dplase import DPLaSEConfig
from latentjax.directions.learned import train_config

MODELS = {"shapes": (None, "b16"), "stylegan2": (None, "b16"), "biggan": (0, "gen_z"), "pggan": (None, "b32")}


def get_config(arg=None):
    arg = parse_arg(arg, model=tuple(MODELS))
    class_index, layer = MODELS[arg.model]
    harness = dict(log_every=100, eval_every=1000, keep_ckpts=2)
    settings = DPLaSEConfig(layer=layer)  # the reference's: 20 directions, 50K steps of batch 16, ...
    if arg.model == "shapes":
        settings = dataclasses.replace(settings, steps=3000, k=10, lr=1e-2, subspace_steps=1000, subspace_lr=1e-2)
        harness.update(log_every=50, eval_every=500, ckpt_every=500)
    if arg.smoke:
        settings = dataclasses.replace(settings, steps=4, batch_size=8, k=4, num_groups=2, subspace_steps=2,
                                       score_samples=4)
        harness.update(log_every=1, eval_every=2, ckpt_every=2)
    config = train_config("latentjax.directions.dplase", settings, **harness)
    config.generator = "builtin:shapes" if arg.model == "shapes" else ""  # '' = required: --config.generator=PATH
    config.space = space_config("z", class_index)
    return config
