"""Every direction method on the shapes GAN, scored against the world's true factors:

    latentjax discover --config configs/shapes.py --workdir out/shapes

Runs SeFa, GANSpace, the Jacobian directions, the learned Voynov & Babenko and DP-LaSE (short
CPU budgets; they train in `out/shapes/<method>/train/`, where a second run resumes) and the
guided InterFaceGAN and linear-encoded semantics (their scorer: the world's read-out, so they show
what knowing the factors buys) and GANalyze (guided and learned: through the differentiable
`builtin:shapes_assessor`, 1,000 steps at lr 1e-2, not the reference's 100K at 2e-4; a plain
shift, as w+ is not Gaussian) and Plumerault et al.'s continuous factors (guided by known image
transforms: translation, zoom, brightness; fewer trajectories and inversion steps than the
reference) on
`builtin:shapes` (`--config.generator=PATH` for another shapes generator), writes each method's
directions, grids and GIFs to `out/shapes/<method>/`, scores every direction by the factor changes
it causes (each walked to the same image change, beside random directions scored the same way:
`latentjax.shapes.scoring`) and writes `ground_truth.md`, heatmaps and one `report.html`:
about half an hour on two CPU cores (full budgets: `configs/voynov.py`, `configs/dplase.py`). Voynov &
Babenko uses the `linear` deformator (`ortho`'s matrix exponential calls LAPACK, slow on a busy
CPU). Images count at the read-out's strict tolerance (`valid_tol` 0.01, the guided scorers'
`readout:0.01`): 91% of the built-in generator's samples pass it. `configs/shapes.py:smoke`: three directions per method, few
samples and steps (seconds).
"""

from latentjax.config import parse_arg
from latentjax.programs.discover import multi_config, smoke


def get_config(arg=None):
    arg = parse_arg(arg)
    config = multi_config({
        "sefa": {"k": 10, "layers": "all", "normalize": True},
        "ganspace": {"k": 10, "num_samples": 20_000, "batch_size": 1000, "num_components": 40, "layers": "all"},
        "jacobian": {"k": 10, "num_samples": 5, "chunk_size": 64, "layers": "all"},
        "voynov": {"k": 10, "steps": 2000, "batch_size": 32, "deformator": "linear", "reconstructor": "lenet",
                   "grid_size": 0},
        "dplase": {"k": 10, "steps": 1200, "batch_size": 16, "layer": "b16", "lr": 1e-2, "subspace_steps": 200,
                   "subspace_lr": 1e-2},
        # guided by the read-out itself: one boundary per factor (and per shape), trained on w
        "interfacegan": {"scorer": "readout:0.01", "num_samples": 20_000, "chosen_num_or_ratio": 0.05,
                         "batch_size": 500},
        "linear_semantics": {"scorer": "readout:0.01", "num_samples": 10_000, "batch_size": 500},
        # guided through the assessor's gradient: one direction per assessed factor
        "ganalyze": {"scorer": "assessor", "steps": 1000, "batch_size": 8, "lr": 1e-2, "normalize": "none"},
        # guided by known image transforms: 20 trajectories of 30 inversion steps per t (the reference: 50 and 50)
        "continuous_factors": {"transforms": ("translate_x", "translate_y", "zoom", "brightness"),
                               "num_trajectories": 20, "inversion_steps": 30},
    }, ground_truth={"num_samples": 64, "image_change": 0.1, "walk": "linear", "batch_size": 64, "threshold": 0.8,
                     "min_change": 0.1, "min_valid": 0.5, "baseline_seeds": 3, "valid_tol": 0.01, "seed": 0})
    config.generator = "builtin:shapes"
    config.space.fit_samples = 5000
    if arg.smoke:
        config = smoke(config)
        for method, settings in config.methods.items():
            if method not in ("interfacegan", "linear_semantics", "ganalyze", "continuous_factors"):
                settings.k = 3
        config.methods.ganspace.num_samples = 1000
        config.methods.ganspace.num_components = 8
        # one latent, averaged: exactly three directions (the default per-latent robust PCA finds
        # as many as the latents' ranks, none for some latents of a random generator)
        config.methods.jacobian.update(num_samples=1, mode="averaged")
        config.methods.voynov.update(steps=4, batch_size=8, eval_per_direction=2)
        config.methods.dplase.update(steps=4, batch_size=8, subspace_steps=2, score_samples=4, num_groups=2)
        config.methods.interfacegan.update(num_samples=256, chosen_num_or_ratio=0.25, batch_size=64,
                                           attributes=("x", "hue", "square"))
        config.methods.linear_semantics.update(num_samples=128, batch_size=64, attributes=("x", "hue", "square"))
        config.methods.ganalyze.update(steps=4, batch_size=4, eval_samples=4, attributes=("x", "y", "hue_cos"))
        config.methods.continuous_factors.update(transforms=("translate_x", "translate_y", "zoom"), num_trajectories=2,
                                                 batch_size=2, inversion_steps=2, t_values=(0.2,), fit_epochs=2)
        config.ground_truth.update(num_samples=8, batch_size=16, search_samples=4, baseline_seeds=1)
    return config
