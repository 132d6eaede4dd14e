"""Networks that ship inside the package: generators, loaded with `lj.load_generator("builtin:NAME")`,
the shapes world's recognition networks (`latentjax.nn.recognizer.load_recognizer("builtin:shapes_recognizer")`),
and its identity mapper (`lj.identity.load("builtin:shapes")`).

Each one is a latentjax native directory (`config.json` + `params/`) under this package,
`latentjax/builtin/NAME/`, installed as package data.
"""

from __future__ import annotations

from pathlib import Path

SCHEME = "builtin:"

# name -> what it is and how it was made
BUILTINS = {
    "shapes": ("StyleGAN2 (widths 64-64-64-32, z = w = 64, a 5-layer mapping network 256 wide) trained on the "
               "procedural shapes world (latentjax.shapes.world: one circle, square or triangle with known position, "
               "scale, rotation, hue and background grey). Its synthesis network is the EMA generator of the "
               "supervised warm start with a projection term (latentjax.tasks.distill; `latentjax train --config "
               "configs/train_shapes_gan.py:builtin,distill --config.channel_base=1024`, seeding decoder seed 0, 2 "
               "rounds: about 40,000 steps on CPU, then 49,400 at batch 128 on a GPU; checkpoints/shapes_distilled), "
               "fine-tuned 15,000 steps on CPU with rotation and background asked over wider ranges "
               "(config.seeding.stretch; checkpoints/shapes_widened). Its mapping network is that generator's, grown "
               "by latentjax.tasks.sharpen (`latentjax train --config configs/sharpen_shapes.py`, 20,000 steps, about "
               "a minute on CPU) so that it switches shapes twenty times faster at the shape boundaries of its latent "
               "space, where the unsharpened one drew morphs. 91.1% of 10,000 samples are valid at the read-out's "
               "strict tolerance 0.01 (81.9% before the sharpening), and every factor's distribution is within W1 0.03 "
               "of the world's (shape: total variation 0.022; benchmarks/shapes_generator_quality.py). Its factors can "
               "be read back from images (latentjax.shapes.reading), so directions found in it can be scored against "
               "the ground truth (latentjax.shapes.scoring)."),
    "shapes_warm_start": ("The first supervised warm start (latentjax.tasks.distill) at widths 64-16: a StyleGAN2 "
                          "that regresses renders of the factors latentjax.shapes.seeding's decoder (seed 0, 2 rounds) "
                          "assigns to its latents; `latentjax train --config configs/train_shapes_gan.py:builtin,distill`, "
                          "13,000 steps at lr 0.01, 2,000 at 0.002, 5,000 at 0.0005 (each started from the last's "
                          "generator). INTERMEDIATE: 5.6% of samples valid at the read-out's tolerance 0.01 and 78% at "
                          "0.05 (benchmarks/shapes_generator_quality.py); shipped so that the next run (a longer or "
                          "adversarial fine-tune) continues from it with --config.init_from=builtin:shapes_warm_start."),
    "shapes_recognizer": ("A small CNN (latentjax.nn.recognizer: 4 conv stages, widths 16-128) that classifies the "
                          "shape and the hue bin (6) of 32x32 shapes-world renders with scale in [0, 0.6); trained "
                          "with `latentjax train --config configs/train_recognizer.py` (4,000 steps at lr 0.003, "
                          "seed 0; the 'base' network of benchmarks/recognition_study.py). Test accuracy on 4,096 "
                          "renders: shape 0.996, hue 0.980; on the held-out scales [0.6, 1): shape 0.919, hue 0.981."),
    "shapes_assessor": ("A small CNN (latentjax.nn.recognizer: 4 conv stages, widths 16-128, value heads only) that "
                        "regresses x, y, scale, background and the hue angle (cosine, sine) of 32x32 shapes-world "
                        "renders: the differentiable scorer GANalyze learns through; trained with `latentjax train "
                        "--config configs/train_recognizer.py:assessor` (6,000 steps, seed 0). Mean absolute error on "
                        "4,096 true renders (benchmarks/shapes_assessor.py): x 0.009, y 0.006, scale 0.026, "
                        "background 0.008, hue 0.002 (the analytic read-out: 0.004 or less)."),
    "shapes_identity": ("A small CNN (latentjax.nn.recognizer: 4 conv stages, widths 16-128) that recognises what the "
                        "object of a 32x32 shapes-world render is: its shape (a class head) and its hue angle (cosine, "
                        "sine), whatever its position, scale, rotation and background; its pooled features are the "
                        "identity embedding of the shapes identity mapper. Trained with `latentjax train --config "
                        "configs/train_recognizer.py:identity` (6,000 steps, seed 0); on 1,024 fresh renders: shape "
                        "accuracy 1.00, hue cosine / sine errors 0.016 / 0.017."),
    "shapes_pose": ("A small CNN (latentjax.nn.recognizer: 4 conv stages, widths 16-128, value heads only) that "
                    "regresses how the object of a 32x32 shapes-world render is shown: x, y, scale, background and "
                    "the rotation angle (cosine, sine); the attribute encoder and the landmarks of the shapes "
                    "identity mapper. Trained with `latentjax train --config configs/train_recognizer.py:pose` (6,000 "
                    "steps, seed 0); mean absolute errors on 2,048 fresh renders: x 0.011, y 0.011, scale 0.020, "
                    "background 0.010, rotation 0.009 (squares) and 0.007 (triangles) of a turn."),
    "shapes_identity_mapper": ("An identity mapper (latentjax.identity, Nitzan et al.) into builtin:shapes, loaded with "
                               "`lj.identity.load('builtin:shapes')`: identity = builtin:shapes_identity's heads plus "
                               "the hue in turns (recognizer_turns: cut at red, where the generator cuts hue), "
                               "attributes = builtin:shapes_pose's features (fine-tuned), MLP 134-256-256-128-w; trained "
                               "with `latentjax train --config configs/identity.py --config.total_steps=16000` (seed "
                               "0) on true renders: pose weight 10, rotation compared as a direction where both images "
                               "have one. On 1,000 fresh pairs at the strict tolerance: 88% valid, shape accuracy "
                               "1.00, hue error 0.014, x / y / scale / background errors 0.025 / 0.027 / 0.038 / 0.018, "
                               "rotation 0.040, no band of hues missed (benchmarks/identity_swaps.py); sequences "
                               "driven by a smooth pose trajectory keep identity in every frame of 8 identities "
                               "(benchmarks/identity_sequence.py)."),
}


def path(name: str) -> Path:
    """The directory of the built-in network `name` (a ValueError lists the known names)."""
    if name not in BUILTINS:
        raise ValueError(f"unknown built-in network {name!r}; available: {', '.join(sorted(BUILTINS))}")
    return Path(__file__).parent / name
