"""Inversion throughput: optimisation steps/s and images/s per generator and batch size.

    python benchmarks/inversion.py                                   # fixtures + 256x256, LPIPS loss
    python benchmarks/inversion.py --models fixture-ada-s32 --batches 1 8 64 --loss mse

Each row runs the inversion (`Inverter`, jit + vmap over the targets) for `--steps` steps after a
warm-up call that compiles it, and reports the median of `--repeats` runs. `target-steps/s` is
batch x steps/s; `img/s @1000` is the rate of fully inverted images at the projector's 1000
steps. `vs loop` is target-steps/s against batch 1 in the same run, i.e. against inverting the
same targets one image at a time. Models: the test-fixture checkpoints and a 256x256 config-f
StyleGAN2 with random weights. The LPIPS loss uses a VGG16 of the real widths with random weights
(no weights are downloaded; the cost is that of the real network). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from latentjax import StyleGAN2, StyleGAN2Config, load_generator
from latentjax.inversion import Inverter
from latentjax.metrics.lpips import STAGES, from_state_dicts
from timing import describe_environment, median_seconds, write_record

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stylegan2"
MODELS = ("fixture-ada-s32", "fixture-ada-gray-s16", "config-f-256")
VGG16_WIDTHS = (64, 128, 256, 512, 512)


def make_generator(name: str) -> StyleGAN2:
    if name == "fixture-ada-s32":
        return load_generator(FIXTURES / "ada_s32.pt")
    if name == "fixture-ada-gray-s16":
        return load_generator(FIXTURES / "ada_gray_s16.pt")
    resolutions = [4 * 2 ** i for i in range(7)]  # config-f at 256: z = w = 512, channel_base 32768, max 512
    config = StyleGAN2Config(z_dim=512, w_dim=512, img_resolution=256, img_channels=3, mapping_layers=8,
                             channels=tuple(min(32768 // r, 512) for r in resolutions), conv_clamp=256.0)
    return StyleGAN2.init(config, jax.random.key(0))


def random_vgg16_lpips(seed: int = 0):
    """LPIPS with a real-width VGG16 trunk (He-normal random weights) and random positive lin heads."""
    rng = np.random.default_rng(seed)
    vgg, c_in = {}, 3
    for stage, width in zip(STAGES, VGG16_WIDTHS):
        for i in stage:
            he_normal = rng.normal(size=(width, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in))
            vgg[f"features.{i}.weight"] = he_normal.astype(np.float32)
            vgg[f"features.{i}.bias"] = np.zeros(width, np.float32)
            c_in = width
    lin = {f"lin{k}.model.1.weight": rng.uniform(0.01, 1.0, (1, c, 1, 1)).astype(np.float32)
           for k, c in enumerate(VGG16_WIDTHS)}
    return from_state_dicts(vgg, lin)


def time_inversion(G, batch: int, steps: int, space: str, noise: bool, loss: str, lpips, repeats: int) -> float:
    """Median seconds of a `steps`-step inversion of `batch` targets (after a compiling warm-up)."""
    inverter = Inverter(G, space=space, steps=steps, loss=loss, lpips=lpips, optimize_noise=noise)
    z = jax.random.normal(jax.random.key(1), (batch, G.z_dim))
    targets = jnp.clip(G.generate(G.params, z, truncation_psi=0.5), -1, 1)
    return median_seconds(lambda: inverter(targets, jax.random.key(2), progress=False).latents, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--max-batch-256", type=int, default=8, help="largest batch for config-f-256 (CPU time)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed run (fixtures)")
    parser.add_argument("--steps-256", type=int, default=2, help="steps per timed run (config-f-256)")
    parser.add_argument("--space", default="w+", choices=("z", "w", "w+"))
    parser.add_argument("--noise", action="store_true", help="also optimise the noise maps")
    parser.add_argument("--loss", default="lpips", choices=("lpips", "mse"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/inversion.json")
    args = parser.parse_args(argv)

    lpips = random_vgg16_lpips() if args.loss == "lpips" else None
    rows = []
    header = (f"{'model':<22} {'batch':>5} {'steps/s':>9} {'target-steps/s':>15} {'img/s @1000':>12} "
              f"{'vs loop':>8}")
    print(f"{describe_environment()}, space {args.space}{' + noise' if args.noise else ''}, loss {args.loss}\n{header}")
    for name in args.models:
        G = make_generator(name)
        steps = args.steps_256 if name == "config-f-256" else args.steps
        batches = [b for b in args.batches if name != "config-f-256" or b <= args.max_batch_256]
        single = None
        for batch in batches:
            seconds = time_inversion(G, batch, steps, args.space, args.noise, args.loss, lpips, args.repeats)
            target_steps = batch * steps / seconds
            single = target_steps if batch == 1 else single
            ratio = target_steps / single if single else None
            rows.append({"model": name, "resolution": G.img_resolution, "batch": batch, "steps": steps,
                         "seconds": seconds, "steps_per_s": steps / seconds, "target_steps_per_s": target_steps,
                         "images_per_s_at_1000_steps": target_steps / 1000, "ratio_vs_single_loop": ratio})
            ratio_text = f"{ratio:8.2f}" if ratio else f"{'-':>8}"
            print(f"{name:<22} {batch:5d} {steps / seconds:9.3f} {target_steps:15.3f} {target_steps / 1000:12.5f} "
                  f"{ratio_text}", flush=True)
    write_record(args.out, "inversion", load_average=os.getloadavg(), space=args.space, noise=args.noise,
                 loss=args.loss, repeats=args.repeats, rows=rows)


if __name__ == "__main__":
    main()
