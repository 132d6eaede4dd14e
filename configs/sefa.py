"""SeFa (closed form): latentjax discover --config configs/sefa.py --config.generator=PATH --workdir out/sefa

Variants: `configs/sefa.py:smoke` (three directions, one seed, three steps: seconds on CPU).
"""

from latentjax.config import parse_arg
from latentjax.programs.discover import base_config, smoke


def get_config(arg=None):
    arg = parse_arg(arg)
    config = base_config("sefa", {
        "k": 10,
        "layers": "all",  # w+ layers (StyleGAN2): 'all', 'i-j', 'i,j,...'
        "normalize": True,  # genforce/sefa's unit-length weight vectors
    })
    return smoke(config, k=3) if arg.smoke else config
