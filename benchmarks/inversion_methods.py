"""Inversion methods compared on generated targets, whose true latents are known.

    python benchmarks/inversion_methods.py --encoder shapes=runs/encoder_shapes/encoder
    python benchmarks/inversion_methods.py --models shapes --targets 16 --steps 100 \
        --lpips-vgg vgg16.pth --lpips-lin vgg.pth

For each model, `--targets` images G(w) are drawn from z with `--seed` and clipped to [-1, 1];
every method inverts them with the same step budget `--steps` and reports, per method, the mean
over targets of PSNR and MSE of the reconstruction, LPIPS (only with real VGG16 weights), and the
latent error: mean over targets and layers of |w - w_true| (in w+, a 'w' result broadcast to
every layer) as a fraction of the spread of w (the RMS distance of G's w to their mean), and
the wall time of the call (compilation included, as a user pays it once per setting).

Methods (`METHODS`, a list, so that more can be added): `w` and `w+` are the NVIDIA projector's
recipe (from the mean w) in those spaces with the MSE loss; `encoder` is the encoder's code E(x)
alone (no optimisation); `in-domain` is `invert_in_domain` (E(x), then regularised Adam; its VGG
feature term needs `--feature-vgg`, else the LPIPS trunk of `--lpips-vgg`, else it is off), and
`in-domain, no reg.` the same without the domain regulariser (an ablation); `mGANprior` is
`invert_multicode` with its 'adam' preset (20 `w` codes composed at the default layer, Adam at 0.03,
MSE; the reference's SGD recipe needs VGG weights and 3,000 steps; it has no single latent, so no
latent error). Models: `shapes` (`builtin:shapes`) and
`fixture-ada-s32` (the random-weight 32x32 test snapshot). Methods that need an encoder take it
from `--encoder MODEL=DIR` (a `WORKDIR/encoder` of `configs/train_encoder.py`), or train one for
`--train-steps` steps on the model's own samples first (kept under `--train-dir`). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from latentjax import load_generator
from latentjax.inversion import InversionResult, invert, invert_multicode, inversion_space
from latentjax.nn.encoder import Encoder, config_for, load_encoder
from latentjax.inversion.indomain import invert_in_domain
from latentjax.tasks.encoder import EXPORT_DIR, TrainSettings, build_task
from latentjax.metrics.image import psnr
from timing import describe_environment, write_record

REPO = Path(__file__).resolve().parent.parent
MODELS = {"shapes": "builtin:shapes", "fixture-ada-s32": str(REPO / "tests/fixtures/stylegan2/ada_s32_snapshot.pkl")}


@dataclasses.dataclass
class Context:
    """What a method gets: the generator, targets [N, H, W, C], the step budget, a key, and the
    shared extras (an encoder, an LPIPS model and the in-domain feature VGG16, any may be None)."""

    G: object
    targets: np.ndarray
    steps: int
    key: jax.Array
    encoder: Encoder | None
    lpips: object | None
    vgg: object | None = None


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[Context], InversionResult]
    needs_encoder: bool = False


def _projector(space: str) -> Callable[[Context], InversionResult]:
    def run(ctx: Context) -> InversionResult:
        return invert(ctx.G, ctx.targets, space=space, steps=ctx.steps, loss="mse", key=ctx.key, progress=False)

    return run


def _encoder_only(ctx: Context) -> InversionResult:
    E = ctx.encoder
    ws = np.asarray(jax.jit(E.encode)(E.params, jnp.asarray(ctx.targets)))
    images = np.asarray(jax.jit(ctx.G.synthesis)(ctx.G.params, jnp.asarray(ws)))
    mse = np.mean(np.square(images - ctx.targets), axis=(1, 2, 3))
    return InversionResult(space="w+", steps=0, latents=ws, ws=ws, images=images, losses={"loss": mse, "mse": mse})


def _in_domain(regularization_weight: float) -> Callable[[Context], InversionResult]:
    def run(ctx: Context) -> InversionResult:
        return invert_in_domain(ctx.G, ctx.encoder, ctx.targets, steps=ctx.steps, vgg=ctx.vgg,
                                feature_weight=5e-5 if ctx.vgg is not None else 0.0,
                                regularization_weight=regularization_weight, key=ctx.key, progress=False)

    return run


def _multicode(ctx: Context) -> InversionResult:
    r = invert_multicode(ctx.G, ctx.targets, key=ctx.key, config="adam", steps=ctx.steps, progress=False)
    return InversionResult(space="w", steps=r.steps, latents=r.latents, ws=None, images=r.images, losses=r.losses)


METHODS = [
    Method("w (projector, mse)", _projector("w")),
    Method("w+ (projector, mse)", _projector("w+")),
    Method("encoder E(x)", _encoder_only, needs_encoder=True),
    Method("in-domain", _in_domain(2.0), needs_encoder=True),
    Method("in-domain, no reg.", _in_domain(0.0), needs_encoder=True),  # ablation: E(x) start, MSE only
    Method("mGANprior (adam preset, 20 codes)", _multicode),
]


def train_encoder(G, generator: str, steps: int, workdir: Path) -> Encoder:
    """A quickly trained encoder (G's own samples, the reference's losses, lr 1e-3, batch 16)."""
    settings = TrainSettings(lr=1e-3, d_lr=1e-3, grid_size=4, eval_size=16)
    task = build_task(G, config_for(G, channel_base=1024, channel_max=128), settings, data="generator",
                      batch_size=16, total_steps=steps, metadata={"generator": generator})
    config = ml_collections.ConfigDict(dict(task="latentjax.tasks.encoder", total_steps=steps, batch_size=16,
                                            log_every=max(1, steps // 10), ckpt_every=steps, keep_ckpts=1))
    from latentjax.train.trainer import train

    train(config, workdir, task=task)
    return load_encoder(workdir / EXPORT_DIR)


def generated_targets(G, n: int, seed: int):
    """n images G(w) for z drawn with `seed` (clipped to [-1, 1]) and their true ws."""
    ws = G.mapping(G.params, jax.random.normal(jax.random.key(seed), (n, G.z_dim)))
    images = jax.jit(G.synthesis)(G.params, ws)
    return np.clip(np.asarray(images), -1.0, 1.0), np.asarray(ws)


def evaluate(result: InversionResult, targets, ws_true, spread: float, lpips) -> dict:
    images = np.clip(np.asarray(result.images), -1.0, 1.0)
    row = {"psnr": float(np.mean(psnr(images, targets))), "mse": float(np.mean(np.square(images - targets)))}
    if result.ws is not None:  # methods with one latent per target
        ws = np.asarray(result.ws)
        row.update(latent_error=float(np.mean(np.linalg.norm(ws - ws_true, axis=-1)) / spread),
                   latent_mse=float(np.mean(np.square(ws - ws_true))))
    if lpips is not None:
        row["lpips"] = float(np.mean(lpips(jnp.asarray(images), jnp.asarray(targets))))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=[m.name for m in METHODS], choices=[m.name for m in METHODS])
    parser.add_argument("--encoder", action="append", default=[], metavar="MODEL=DIR",
                        help="a trained encoder directory for a model (else one is trained)")
    parser.add_argument("--train-steps", type=int, default=300, help="steps of the encoder trained when none is given")
    parser.add_argument("--train-dir", help="keep trained encoders in DIR/<model> (and reuse them; default: discard)")
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100, help="optimisation steps of every method")
    parser.add_argument("--seed", type=int, default=7, help="seed of the targets' z (not used in encoder training)")
    parser.add_argument("--lpips-vgg", help="torchvision vgg16 state dict (.pth): LPIPS metric (and in-domain "
                        "features without --feature-vgg)")
    parser.add_argument("--lpips-lin", help="lpips package lin weights (weights/v0.1/vgg.pth)")
    parser.add_argument("--feature-vgg", help="VGG16 weights for the in-domain feature term: the reference's caffe "
                        "vgg16.pth (genforce/idinvert_pytorch) or a torchvision state dict")
    parser.add_argument("--out", default="benchmarks/results/inversion_methods.json")
    args = parser.parse_args(argv)
    if bool(args.lpips_vgg) != bool(args.lpips_lin):
        parser.error("--lpips-vgg and --lpips-lin go together")
    encoders = dict(item.split("=", 1) for item in args.encoder)
    unknown = sorted(set(encoders) - set(MODELS))
    if unknown:
        parser.error(f"--encoder: unknown models {unknown}; expected some of {list(MODELS)}")
    from latentjax.metrics.lpips import load_lpips
    from latentjax.metrics.vgg import load_vgg16

    lpips = load_lpips(args.lpips_vgg, args.lpips_lin) if args.lpips_vgg else None
    vgg = load_vgg16(args.feature_vgg) if args.feature_vgg else lpips
    methods = [m for m in METHODS if m.name in args.methods]

    rows, encoder_info = [], {}
    header = f"{'model':<16} {'method':<22} {'PSNR dB':>8} {'MSE':>9} {'LPIPS':>7} {'w err':>7} {'time s':>7}"
    print(f"{describe_environment()}; "
          f"{args.targets} generated targets per model, {args.steps} steps; LPIPS "
          f"{'on' if lpips is not None else 'off (no VGG16 weights given)'}\n{header}")
    for model in args.models:
        G = load_generator(MODELS[model])
        encoder = None
        if any(m.needs_encoder for m in methods):
            if model in encoders:
                encoder = load_encoder(encoders[model])
            elif args.train_dir:  # the harness resumes: a finished run is not trained again
                encoder = train_encoder(G, MODELS[model], args.train_steps, Path(args.train_dir) / model)
            else:
                with tempfile.TemporaryDirectory(prefix="encoder-") as tmp:
                    encoder = train_encoder(G, MODELS[model], args.train_steps, Path(tmp))
            encoder_info[model] = {"source": encoders.get(model, f"trained here for {args.train_steps} steps"),
                                   "metadata": {k: v for k, v in encoder.metadata.items() if k != "settings"},
                                   "config": encoder.config.to_dict()}
        targets, ws_true = generated_targets(G, args.targets, args.seed)
        spread = float(inversion_space(G, "w").prior.spread)
        for method in methods:
            ctx = Context(G, targets, args.steps, jax.random.key(args.seed + 1), encoder, lpips, vgg)
            start = time.perf_counter()
            result = method.run(ctx)
            seconds = time.perf_counter() - start
            row = {"model": model, "method": method.name, "steps": result.steps, "seconds": seconds,
                   **evaluate(result, targets, ws_true, spread, lpips)}
            rows.append(row)
            lpips_text = f"{row['lpips']:7.4f}" if "lpips" in row else f"{'-':>7}"
            error_text = f"{row['latent_error']:7.3f}" if "latent_error" in row else f"{'-':>7}"
            print(f"{model:<16} {method.name:<22} {row['psnr']:8.2f} {row['mse']:9.2e} {lpips_text} "
                  f"{error_text} {seconds:7.1f}", flush=True)
    write_record(args.out, "inversion_methods", load_average=os.getloadavg(), targets=args.targets, steps=args.steps,
                 seed=args.seed, lpips=lpips is not None,
                 feature_vgg=None if vgg is None else getattr(vgg, "convention", "torchvision"),
                 encoders=encoder_info, rows=rows)


if __name__ == "__main__":
    main()
