r"""DP-LaSE directions (`latentjax.directions.dplase`) through the training harness:

    latentjax train --config configs/dplase.py --workdir runs/dplase_shapes             # builtin:shapes, CPU
    latentjax train --config configs/dplase.py:pggan --workdir runs/dplase_pggan \
        --config.generator=PATH/TO/pggan.pth                                           # the reference's run
    latentjax train --config configs/dplase.py:biggan,smoke --workdir out/smoke       # seconds (CI)

Variants (one model word, optionally with `smoke`): `shapes` (the default: `builtin:shapes`),
`stylegan2` (`tests/fixtures/stylegan2/ada_s32_snapshot.pkl`), `biggan`
(`tests/fixtures/biggan/deep_tiny`, class 0), `pggan` (`tests/fixtures/pggan/pgan_tiny.pth`); point
`--config.generator` at a real checkpoint of the family for a real run. All act in `z`, as the
reference does.

The model variants carry the reference's hyper-parameters (guanyuelee/DP-LaSE
`maximum_traverse_for_PGGAN.py`, `maximum_subspace.py`): 20 directions, t = 10 * U(-1, 1), Adam
1e-4, batch 16, 50K steps, loss weights 0.001 (N) and 1.0 (O); subspaces over the last 5K steps
with Adam 1e-4, |S|^2 weight 0.1, 6 channel groups. Layers: PGGAN `b32` (the reference's layer 8,
the 32x32 block), BigGAN `gen_z` (its layer 1, the 4x4 map of the first linear layer), StyleGAN2
`b16` (the block at half the size of the 32 px fixture; the reference walks StyleGAN2's styles
instead of a feature map).

`shapes` is sized for two CPU cores (5 minutes alone, 15 on a busy machine): 3,000 steps at
batch 16 with Adam 1e-2 instead of 1e-4 (the parameters' rows have norm about sqrt(64) = 8, so at
1e-4 they would barely turn in 3,000 steps), 10 directions, the subspace stage over the last 1,000
steps with Adam 1e-2, at `b16` (16x16, 32 channels) of the 32 px generator.
"""

import ml_collections

from latentjax.directions.learned import model_config

FIXTURES = "tests/fixtures"
MODELS = {  # variant -> (generator, space, class_index); the first is the default
    "shapes": ("builtin:shapes", "z", None),
    "stylegan2": (f"{FIXTURES}/stylegan2/ada_s32_snapshot.pkl", "z", None),
    "biggan": (f"{FIXTURES}/biggan/deep_tiny", "z", 0),
    "pggan": (f"{FIXTURES}/pggan/pgan_tiny.pth", "z", None),
}
LAYERS = {"shapes": "b16", "stylegan2": "b16", "biggan": "gen_z", "pggan": "b32"}


def get_config(arg=None):
    config, model, arg = model_config("configs/dplase.py", "latentjax.directions.dplase", arg, MODELS)
    layer = LAYERS[model]
    config.total_steps = 50_000
    config.batch_size = 16
    config.settings = ml_collections.ConfigDict({
        "k": 20,
        "layer": layer,
        "traverse_scale": 10.0,
        "lr": 1e-4,
        "weight_negative": 0.001,
        "weight_orthogonal": 1.0,
        "num_groups": 6,
        "subspace_steps": 5000,
        "subspace_lr": 1e-4,
        "subspace_init": 1e-4,
        "weight_sparse": 0.1,
        "score_samples": 32,
    })
    config.log_every = 100
    config.eval_every = 1000
    config.ckpt_every = 1000
    config.keep_ckpts = 2

    if model == "shapes":
        config.total_steps = 3000
        config.settings.k = 10
        config.settings.lr = 1e-2
        config.settings.subspace_steps = 1000
        config.settings.subspace_lr = 1e-2
        config.log_every = 50
        config.eval_every = 500
        config.ckpt_every = 500
    if arg.smoke:
        config.total_steps = 4
        config.batch_size = 8
        config.settings.k = 4
        config.settings.num_groups = 2
        config.settings.subspace_steps = 2
        config.settings.score_samples = 4
        config.log_every = 1
        config.eval_every = 2
        config.ckpt_every = 2
    return config
