"""Jacobian / LowRankGAN: latentjax discover --config configs/jacobian.py --config.generator=PATH --workdir out/jac

Principal directions of JᵀJ over `region`; with `protect='complement'` they are projected onto the
null space of the rest of the image, so edits stay inside the region.
Variants: `configs/jacobian.py:smoke` (one sample, three directions).
"""

from ml_collections import config_dict

from latentjax.config import parse_arg
from latentjax.programs.discover import base_config, smoke


def get_config(arg=None):
    arg = parse_arg(arg)
    config = base_config("jacobian", {
        "k": 10,
        "num_samples": 5,
        "chunk_size": 64,  # tangents per vmapped JVP (memory vs. speed)
        "region": config_dict.placeholder(tuple),  # (top, bottom, left, right) fractions; None: whole image
        "protect": config_dict.placeholder(str),  # 'complement' to keep the rest of the image fixed
        "null_tol": 1e-3,
        "num_relax": 0,
        "layers": "all",
    })
    return smoke(config, k=3, num_samples=1) if arg.smoke else config
