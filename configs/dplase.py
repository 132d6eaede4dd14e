r"""DP-LaSE directions (`latentjax.directions.dplase`) on the training harness:

    latentjax train --config configs/dplase.py --workdir runs/dplase_shapes             # builtin:shapes, CPU
    latentjax train --config configs/dplase.py:pggan --workdir runs/dplase_pggan --config.generator=pggan.pth
    latentjax train --config configs/dplase.py:biggan --workdir runs/dplase_biggan \
        --config.generator=biggan-deep-256/ --config.settings.traverse_scale=T
    latentjax train --config configs/dplase.py:smoke --workdir out/smoke                # seconds (CI)

Variants: one model word, optionally with `smoke`; all act in `z`, as the reference. `pggan`,
`biggan` and `stylegan2` need `--config.generator` and carry their reference's recipe
(guanyuelee/DP-LaSE), then the subspace stage of `maximum_subspace.py` (one S per direction, 5K
steps of batch 4 after the 50K of the traverse, linear shifts by 10 * U(-1, 1), ρ 0.2, d 12, power 3):

- `pggan` (`maximum_traverse_for_PGGAN.py`; the `DPLaSEConfig` defaults): layer `b32` (its layer
  8), 20 directions, Gram-Schmidt init, weights in P, -P + 0.001 N + 1.0 O, Adam 1e-4, batch 16;
  subspaces at `b16.conv0` (its `s_layer` 5: the 16x16 block's first conv).
- `biggan` (`maximum_traverse_for_BigGAN.py`): layer `gen_z` (its layer 1), class 239, D = expm of
  a skew matrix, no weights, no O, N weight 0.1, z ~ N(0, I) untruncated at truncation 1. Its step
  scale has no default there (`--t_scale` 0): give `--config.settings.traverse_scale`. The reference
  has no BigGAN subspace stage; here it runs at the first 16x16 map (an extension).
- `stylegan2` (`maximum_traverse_for_styleGAN2.py`): z mapped with truncation 0.7, the styles of the
  first three convs compared (`--which_layers 1-3`: `b4.conv1`, `b8.conv0`, `b8.conv1`), no weights,
  N weight 0.1 (one cosine over the style vector), Gram-Schmidt after every step, 500K steps. The
  reference has no StyleGAN2 subspace stage; here it runs at `b16.conv0` (an extension).

`shapes` (the default, `builtin:shapes`, the PGGAN recipe) is sized for two CPU cores (about 10
minutes): 10 directions at `b16`, 3,000 traverse steps with Adam 1e-2 instead of 1e-4 (rows of norm
about sqrt(64) = 8 would barely turn at 1e-4 in 3,000 steps), then 500 subspace steps (Adam 1e-2)
at `b16.conv0`. `settings` are `DPLaSEConfig` fields, `steps` (the whole run: traverse and
subspaces) and `batch_size` included.
"""

import dataclasses

from ml_collections import config_dict

from latentjax.config import parse_arg, space_config
from latentjax.directions.dplase import DPLaSEConfig
from latentjax.directions.learned import train_config

# model: (class, truncation_psi, settings that differ from the DPLaSEConfig defaults = the PGGAN recipe)
MODELS = {
    "shapes": (None, None, dict(layer="b16", k=10, lr=1e-2, subspace_steps=500, subspace_lr=1e-2, steps=3500)),
    "pggan": (None, None, dict(layer="b32", subspace_layer="b16.conv0")),
    "biggan": (239, 1.0, dict(layer="gen_z", parametrization="expm", weighted=False, weight_orthogonal=0.0,
                              weight_negative=0.1, untruncated=True)),
    "stylegan2": (None, 0.7, dict(features="styles", style_layers=("b4.conv1", "b8.conv0", "b8.conv1"),
                                  weighted=False, weight_negative=0.1, reorthogonalize=True,
                                  subspace_layer="b16.conv0", steps=505_000)),
}


def get_config(arg=None):
    arg = parse_arg(arg, model=tuple(MODELS))
    class_index, truncation_psi, recipe = MODELS[arg.model]
    harness = dict(log_every=100, eval_every=1000, keep_ckpts=2)
    settings = DPLaSEConfig(**recipe)
    if arg.model == "shapes":
        harness.update(log_every=50, eval_every=500, ckpt_every=500)
    if arg.smoke:
        settings = dataclasses.replace(settings, steps=4, batch_size=8, k=4, num_groups=2, subspace_steps=2,
                                       score_samples=4)
        harness.update(log_every=1, eval_every=2, ckpt_every=2)
    config = train_config("latentjax.directions.dplase", settings, **harness)
    if arg.model == "biggan" and not arg.smoke:  # required, as in the reference (whose default, 0, is no walk)
        config.settings.traverse_scale = config_dict.placeholder(float)
    config.generator = "builtin:shapes" if arg.model == "shapes" else ""  # '' = required: --config.generator=PATH
    config.space = space_config("z", class_index)
    if truncation_psi is not None:
        config.space.truncation_psi = truncation_psi
    return config
