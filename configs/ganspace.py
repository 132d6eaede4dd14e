"""GANSpace (PCA): latentjax discover --config configs/ganspace.py --config.generator=PATH --workdir out/ganspace

StyleGAN2: PCA of w samples. BigGAN / PGGAN (or any z space): PCA of the activations at
`settings.layer` (default: the generator's first layer), regressed back to z.
Variants: `configs/ganspace.py:smoke` (2,000 samples, three directions).
"""

from ml_collections import config_dict

from latentjax.config import parse_arg
from latentjax.programs.discover import base_config, smoke


def get_config(arg=None):
    arg = parse_arg(arg)
    config = base_config("ganspace", {
        "k": 10,
        "num_samples": 100_000,  # streamed in batches over all devices; the reference uses up to 1e6
        "batch_size": 1000,
        "num_components": 80,
        "layer": config_dict.placeholder(str),  # feature layer (None: the latent samples themselves)
        "regression_samples": 10_000,
        "layers": "all",  # w+ layers each direction edits, e.g. '0-3'
    })
    return smoke(config, k=3, num_samples=2000, regression_samples=1000) if arg.smoke else config
