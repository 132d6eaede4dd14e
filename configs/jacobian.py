"""Jacobian / LowRankGAN: latentjax discover --config configs/jacobian.py --config.generator=PATH --workdir out/jac

Per sampled latent (the reference's default, `mode='reference'`): robust PCA of JᵀJ over `region`,
its principal directions, with `protect='complement'` projected onto the null space of the rest of
the image, so edits stay inside the region; the first `k` of the latents' sets in latent order
(fewer, with a warning, where their ranks add up to fewer). `--config.settings.mode=averaged`: the
k leading directions of the mean JᵀJ (null space by an eigenvalue threshold, `null_tol`).
Variants: `configs/jacobian.py:smoke` (five latents, the first three directions).
"""

from ml_collections import config_dict

from latentjax.config import parse_arg
from latentjax.programs.discover import base_config, smoke


def get_config(arg=None):
    arg = parse_arg(arg)
    config = base_config("jacobian", {
        "k": 10,
        "mode": "reference",  # 'reference' (per latent, robust PCA) or 'averaged' (mean JᵀJ)
        "num_samples": 5,
        "chunk_size": 64,  # tangents per vmapped JVP (memory vs. speed)
        "region": config_dict.placeholder(tuple),  # (top, bottom, left, right) fractions; None: whole image
        "protect": config_dict.placeholder(str),  # 'complement' to keep the rest of the image fixed
        "num_relax": 0,
        "lam": 1 / 60,  # reference: robust PCA's sparsity weight
        "max_iter": 10_000,  # reference: robust PCA iterations at most
        "null_tol": 1e-3,  # averaged: eigenvalue threshold of the protected rank
        "layers": "all",
    })
    # one latent's set can be a single direction (or none): five latents for three directions
    return smoke(config, k=3, num_samples=5) if arg.smoke else config
