r"""A small recognition network on the shapes world (`latentjax.tasks.recognizer`).

    latentjax train --config configs/train_recognizer.py --workdir runs/recognizer
    latentjax train --config configs/train_recognizer.py --workdir runs/r8 --config.width=8 --config.num_train=1024
    latentjax train --config configs/train_recognizer.py:smoke --workdir out/smoke   # seconds (CI)
    latentjax train --config configs/train_recognizer.py:assessor --workdir runs/assessor
    latentjax train --config configs/train_recognizer.py:identity --workdir runs/identity
    latentjax train --config configs/train_recognizer.py:pose --workdir runs/pose

It classifies the object's shape and hue bin (`heads`, `bins`) of 32x32 true renders whose scale
is in [0, 0.6) (`train_ranges`); evaluation also scores the held-out scales [0.6, 1)
(`shifted_ranges`). `width`, `weight_decay`, `num_train` (0: a fresh draw every step), `seed`,
`total_steps`, `depth` and `lr` are what the disentanglement study varies
(`benchmarks/recognition_study.py`); shorter, shallower or slower training reads the shape from
the object's area, which fails on the held-out scales. The result is
`WORKDIR/recognizer/` (`latentjax.nn.recognizer.load_recognizer`); the default config trained the
shipped `builtin:shapes_recognizer`.

The `assessor` variant trains the shapes world's assessor, `builtin:shapes_assessor`: value heads
only (`value_heads`), regressing x, y, scale, background and the hue angle (as its cosine and
sine) of renders from the whole world, with squared error. It is differentiable, so GANalyze
learns through it (`scorer='assessor'` in `latentjax discover` configs): our stand-in for the
memorability and attribute networks guided methods use on real images. Its errors beside the
analytic read-out's: `benchmarks/shapes_assessor.py`.
"""

import ml_collections

from latentjax.config import parse_arg
from latentjax.train.trainer import harness_config


def get_config(arg=None):
    arg = parse_arg(arg, network=("recognizer", "assessor", "identity", "pose"))
    config = harness_config("latentjax.tasks.recognizer", total_steps=4000, batch_size=64, eval_every=500,
                            ckpt_every=1000, keep_ckpts=1)
    config.resolution = 32
    config.heads = ("shape", "hue")  # class heads
    config.value_heads = ()  # regression heads (`latentjax.shapes.recognition.VALUE_HEADS`)
    config.bins = 6  # classes of every head but 'shape'
    config.width = 16  # channels of the first conv stage; stage i has width * 2**i
    config.depth = 4
    config.lr = 3e-3
    config.weight_decay = 0.0  # AdamW's decoupled weight decay
    config.num_train = 0  # training images (factor vectors): 0 = a fresh draw every step
    config.data_seed = 1
    config.train_ranges = ml_collections.ConfigDict({"scale": (0.0, 0.6)})
    config.shifted_ranges = ml_collections.ConfigDict({"scale": (0.6, 1.0)})
    config.eval_size = 1024
    if arg.network != "recognizer":  # the regressors of the whole world: (class heads, value heads)
        heads, values = {"assessor": ((), ("x", "y", "scale", "background", "hue_cos", "hue_sin")),
                         "identity": (("shape",), ("hue_cos", "hue_sin")),
                         "pose": ((), ("x", "y", "scale", "background", "rotation_cos", "rotation_sin"))}[arg.network]
        config.update(heads=heads, value_heads=values, depth=4, total_steps=6000, eval_every=1000, ckpt_every=1000,
                      lr=2e-3)
        config.train_ranges = config.shifted_ranges = None
    if arg.smoke:
        config.update(resolution=16, width=4, depth=2, total_steps=4, batch_size=8, eval_every=2, eval_size=16,
                      ckpt_every=2)
    return config
