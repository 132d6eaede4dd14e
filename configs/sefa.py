"""SeFa (closed form): latentjax discover --config configs/sefa.py --config.generator=PATH --workdir out/sefa

Variants: `configs/sefa.py:smoke` (three directions, one seed, three steps: seconds on CPU).
"""

from latentjax.programs.discover import base_config, shrink


def get_config(arg=None):
    config = base_config("sefa", {
        "k": 10,
        "layers": "all",  # w+ layers (StyleGAN2): 'all', 'i-j', 'i,j,...'
        "normalize": True,  # genforce/sefa's unit-length weight vectors
    })
    if arg == "smoke":
        return shrink(config, k=3)
    if arg:
        raise ValueError(f"configs/sefa.py: unknown variant {arg!r} (known: smoke)")
    return config
