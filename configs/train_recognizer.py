r"""A small recognition network on the shapes world (`latentjax.tasks.recognizer`).

    latentjax train --config configs/train_recognizer.py --workdir runs/recognizer
    latentjax train --config configs/train_recognizer.py --workdir runs/r8 --config.width=8 --config.num_train=1024
    latentjax train --config configs/train_recognizer.py:smoke --workdir out/smoke   # seconds (CI)

It classifies the object's shape and hue bin (`heads`, `bins`) of 32x32 true renders whose scale
is in [0, 0.6) (`train_ranges`); evaluation also scores the held-out scales [0.6, 1)
(`shifted_ranges`). `width`, `weight_decay`, `num_train` (0: a fresh draw every step) and `seed`
are what the disentanglement study varies (`benchmarks/recognition_study.py`). The result is
`WORKDIR/recognizer/` (`latentjax.nn.recognizer.load_recognizer`); the default config trained the
shipped `builtin:shapes_recognizer`.
"""

import ml_collections

from latentjax.config import parse_arg
from latentjax.train.trainer import harness_config


def get_config(arg=None):
    arg = parse_arg(arg)
    config = harness_config("latentjax.tasks.recognizer", total_steps=2000, batch_size=64, eval_every=500,
                            ckpt_every=1000, keep_ckpts=1)
    config.resolution = 32
    config.heads = ("shape", "hue")
    config.bins = 6  # classes of every head but 'shape'
    config.width = 16  # channels of the first conv stage; stage i has width * 2**i
    config.depth = 3
    config.lr = 1e-3
    config.weight_decay = 0.0  # AdamW's decoupled weight decay
    config.num_train = 0  # training images (factor vectors): 0 = a fresh draw every step
    config.data_seed = 1
    config.train_ranges = ml_collections.ConfigDict({"scale": (0.0, 0.6)})
    config.shifted_ranges = ml_collections.ConfigDict({"scale": (0.6, 1.0)})
    config.eval_size = 1024
    if arg.smoke:
        config.update(resolution=16, width=4, depth=2, total_steps=4, batch_size=8, eval_every=2, eval_size=16,
                      ckpt_every=2)
    return config
