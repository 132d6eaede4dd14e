"""A scored sample table of the shapes GAN: latentjax score --config configs/score.py --workdir out/scores

Scores `num_samples` samples of `builtin:shapes` (`--config.generator=PATH` for another) with the
world's read-out (`scorer`: 'readout' or 'readout:TOL'; the strict TOL 0.01 by default),
`shard_size` per file; run it again to complete a killed run. `smoke`: 64 samples
in two shards (seconds).
"""

from ml_collections import ConfigDict

from latentjax.config import parse_arg, space_config


def get_config(arg=None):
    arg = parse_arg(arg)
    config = ConfigDict({
        "generator": "builtin:shapes",
        "space": space_config("w"),  # InterFaceGAN's boundaries are trained on w
        "scorer": "readout:0.01",
        "num_samples": 100_000,
        "shard_size": 10_000,
        "batch_size": 500,
        "seed": 0,  # sample i is drawn with fold_in(key(seed), i)
    })
    if arg.smoke:
        config.update(num_samples=64, shard_size=32, batch_size=32)
    return config
