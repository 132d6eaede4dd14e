r"""Voynov & Babenko's learned directions (`latentjax.directions.voynov`) on the training harness.

    latentjax train --config configs/voynov.py --workdir runs/voynov_shapes          # builtin:shapes, w
    latentjax train --config configs/voynov.py:stylegan2 --workdir runs/voynov_sg2 --config.generator=ffhq.pkl
    latentjax train --config configs/voynov.py:biggan --workdir runs/voynov_biggan --config.generator=DIR
    latentjax train --config configs/voynov.py:pggan,smoke --workdir out/smoke       # seconds (CI)

Variants (one model word, optionally with `smoke`):

| word | generator (default; `--config.generator=` to change) | space |
|---|---|---|
| `shapes` (default) | `builtin:shapes` | `w` |
| `stylegan2` | the 32 px test fixture `ada_s32_snapshot.pkl` | `w` (the reference's `w_shift`) |
| `biggan` | the test fixture `deep_tiny` | `z`, `class_index` 0 |
| `pggan` | the test fixture `pgan_tiny.pth` | `z` |

`stylegan2`, `biggan` and `pggan` carry the reference's hyper-parameters: K = the latent
dimension, `ortho` deformator, shifts 6 * U(-1, 1) with |shift| >= 0.5, loss CE + 0.25 L1, Adam
1e-4 for both networks, batch 32, 100K steps; the reconstructor is picked by resolution
(LeNet up to 32 px, ResNet-18 above). `shapes` is sized for two CPU cores: K = 10 (as the
closed-form methods in `configs/shapes.py`), the same shifts and optimiser, LeNet, 8,000 steps:
about 15 minutes when the cores are free (with OPENBLAS_NUM_THREADS=1:
the `ortho` deformator's matrix exponential calls LAPACK, which OpenBLAS's threads slow down
several-fold on a busy CPU). `smoke` shrinks any variant to 4 steps of batch 8 with K = 4 and a
LeNet on 32 px inputs.

The trained directions are written to `WORKDIR/directions.npz` at every checkpoint (load them with
`latentjax.directions.Directions.load`); `eval/rca` in `metrics.jsonl` is the reconstructor's
accuracy.
"""

import ml_collections

from latentjax.directions.learned import HARNESS_FIELDS, model_config
from latentjax.directions.voynov import VoynovConfig

FIXTURES = "tests/fixtures"
MODELS = {  # variant -> (generator, space, class_index); the first is the default
    "shapes": ("builtin:shapes", "w", None),
    "stylegan2": (f"{FIXTURES}/stylegan2/ada_s32_snapshot.pkl", "w", None),
    "biggan": (f"{FIXTURES}/biggan/deep_tiny", "z", 0),
    "pggan": (f"{FIXTURES}/pggan/pgan_tiny.pth", "z", None),
}


def get_config(arg=None):
    config, model, arg = model_config("configs/voynov.py", "latentjax.directions.voynov", arg, MODELS)
    defaults = VoynovConfig()
    config.total_steps = defaults.steps  # 100K, the reference's
    config.batch_size = defaults.batch_size  # 32
    config.settings = ml_collections.ConfigDict(
        {name: value for name, value in defaults.to_dict().items() if name not in HARNESS_FIELDS})

    config.log_every = 100
    config.eval_every = 1000
    config.sample_every = 5000
    config.ckpt_every = 5000
    config.keep_ckpts = 2

    if model == "shapes":
        config.total_steps = 8000
        config.settings.k = 10
        config.eval_every = 500
        config.sample_every = 1000
        config.ckpt_every = 1000
    if arg.smoke:
        config.total_steps = 4
        config.batch_size = 8
        config.settings.k = 4
        config.settings.reconstructor = "lenet"
        config.settings.reconstructor_size = 32
        config.settings.fc_inner_dim = 16
        config.settings.eval_per_direction = 2
        config.settings.grid_size = 2
        config.log_every = 1
        config.eval_every = 2
        config.sample_every = 0
        config.ckpt_every = 2
    return config
