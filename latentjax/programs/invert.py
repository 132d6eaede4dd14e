"""Resumable inversion of a directory of PNG images, and the `latentjax invert` command.

Each image `<name>.png` gives `<name>.npz` (latents, ws, noise maps, losses, metrics, settings) and
`<name>.png` (the reconstruction) in the output directory; `write_overview` adds `comparison.png`
(target and reconstruction side by side) and `metrics.md` / `metrics.json` over every finished image. An image whose `.npz` exists is
skipped, so an interrupted job continues where it stopped; the `.npz` is written last, through a
temporary file, so it only exists for finished targets. Each target's key is derived from its
file name, so its result does not depend on which other images share its batch or run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Mapping

import jax
import numpy as np
from PIL import Image

from latentjax.inversion.project import INVERSION_SPACES, InversionConfig, Inverter
from latentjax.io.images import load_target
from latentjax.load import load_generator
from latentjax.metrics.image import image_metrics
from latentjax.metrics.lpips import load_lpips
from latentjax.programs.outputs import apart, output_dir, write
from latentjax.viz import encode_png, image_grid, to_uint8
from latentjax.programs.flags import finite_float, non_negative_int, positive_float, positive_int, seed
from latentjax.viz.report import markdown_table

OVERVIEW_PAIRS = 64  # most target/reconstruction pairs in comparison.png


def _save_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def invert_directory(G, in_dir, out_dir, *, key, space: str = "w+", steps: int = 1000, loss="lpips", lpips=None,
                     classes=None, optimize_noise: bool = False, optimize_class: bool = False,
                     config: InversionConfig | None = None, batch_size: int = 8, progress: bool = True) -> dict:
    """Invert every `*.png` in `in_dir` not yet done in `out_dir`, `batch_size` images per compiled step.

    `classes` (conditional generators): one class index for every image, or {image name (stem): index}
    naming every image; `optimize_class` as in `invert`.

    Returns {'done': names inverted now, 'skipped': names already done, 'unreadable': {file name: why}
    (files that are not readable images: reported and left out, the job goes on), 'metrics': {name:
    {metric: value}}} (metrics of the reconstructions clipped to [-1, 1]: PSNR, SSIM, and LPIPS when
    `lpips` is given).
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ValueError(f"invert_directory: {in_dir} is not a directory")
    apart(out_dir, in_dir, "invert_directory: out_dir")
    files = sorted(p for p in in_dir.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise ValueError(f"invert_directory: no .png images in {in_dir}")
    if isinstance(classes, Mapping):
        missing = sorted(p.stem for p in files if p.stem not in classes)
        if missing:
            raise ValueError(f"invert_directory: classes has no class index for images {missing[:5]} "
                             f"({len(missing)} missing); it must name every image of {in_dir}")
    todo = [p for p in files if not (out_dir / f"{p.stem}.npz").exists()]
    summary = {"done": [], "skipped": [p.stem for p in files if p not in todo], "unreadable": {}, "metrics": {}}
    if not todo:
        return summary
    out_dir.mkdir(parents=True, exist_ok=True)
    inverter = Inverter(G, space=space, steps=steps, loss=loss, lpips=lpips, optimize_noise=optimize_noise,
                        optimize_class=optimize_class, config=config)
    settings = {"space": space, "steps": steps, "loss": inverter.weights, "optimize_noise": optimize_noise,
                "optimize_class": optimize_class, "config": inverter.config.to_dict()}
    for lo in range(0, len(todo), batch_size):
        loaded = {}
        for p in todo[lo:lo + batch_size]:
            try:
                loaded[p] = load_target(p, G.img_resolution, G.img_channels)
            except ValueError as e:
                summary["unreadable"][p.name] = str(e)
        if not loaded:
            continue
        paths, targets = list(loaded), np.stack(list(loaded.values()))
        keys = jax.numpy.stack([jax.random.fold_in(key, zlib.crc32(p.stem.encode())) for p in paths])
        labels = None if classes is None else [classes[p.stem] if isinstance(classes, Mapping) else classes
                                               for p in paths]
        result = inverter(targets, keys, classes=labels, batch_size=batch_size, progress=progress)
        metrics = {k: np.asarray(v) for k, v in image_metrics(result.images, targets, lpips=lpips).items()}
        for i, path in enumerate(paths):
            write(out_dir / f"{path.stem}.png", encode_png(to_uint8(result.images[i])))
            arrays = {"latents": result.latents[i], "source": path.name, "settings": json.dumps(settings)}
            if result.ws is not None:
                arrays["ws"] = result.ws[i]
            if result.classes is not None:
                arrays["classes"] = result.classes[i]
            arrays.update({f"loss/{k}": v[i] for k, v in result.losses.items()})
            arrays.update({f"metric/{k}": v[i] for k, v in metrics.items()})
            arrays.update({f"noise/{k}": v[i] for k, v in (result.noise or {}).items()})
            _save_npz(out_dir / f"{path.stem}.npz", arrays)
            summary["done"].append(path.stem)
            summary["metrics"][path.stem] = {k: float(v[i]) for k, v in metrics.items()}
    return summary


def write_overview(in_dir, out_dir, pairs_per_row: int = 4) -> dict:
    """Write `comparison.png` (target | reconstruction pairs, `pairs_per_row` per row, the first
    OVERVIEW_PAIRS finished images) and the metrics table `metrics.md` / `metrics.json` (per
    image and the mean) for every finished image in `out_dir`; returns the table as a dict."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    table, pairs = {}, []
    for path in sorted(out_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            table[path.stem] = {k.split("/", 1)[1]: float(data[k]) for k in data.files if k.startswith("metric/")}
            source = in_dir / str(data["source"])
        if len(pairs) < OVERVIEW_PAIRS and source.is_file():
            with Image.open(out_dir / f"{path.stem}.png") as image:
                reconstruction = np.asarray(image)
            if reconstruction.ndim == 2:
                reconstruction = reconstruction[..., None]
            target = to_uint8(load_target(source, reconstruction.shape[0], reconstruction.shape[-1]))
            pairs += [target, reconstruction]
    if not table:
        raise ValueError(f"write_overview: no finished inversions (*.npz) in {out_dir}")
    names = sorted({k for metrics in table.values() for k in metrics})
    mean = {k: float(np.mean([m[k] for m in table.values() if k in m])) for k in names}
    rows = [(name, *(f"{m.get(k, float('nan')):.4g}" for k in names)) for name, m in table.items()]
    rows.append(("**mean**", *(f"{mean[k]:.4g}" for k in names)))
    (out_dir / "metrics.md").write_text(markdown_table(("image", *names), rows))
    (out_dir / "metrics.json").write_text(json.dumps({"images": table, "mean": mean}, indent=1) + "\n")
    if pairs:
        write(out_dir / "comparison.png",
              encode_png(image_grid(np.stack(pairs), cols=min(len(pairs), 2 * pairs_per_row), pad=2)))
    return {"images": table, "mean": mean}


def add_invert_arguments(parser: argparse.ArgumentParser) -> None:
    """The `latentjax invert` options after the checkpoint argument."""
    parser.add_argument("in_dir", help="directory of target .png images")
    parser.add_argument("out_dir", help="output directory: <name>.npz latents and <name>.png reconstructions")
    parser.add_argument("--space", choices=INVERSION_SPACES, default="w+")
    parser.add_argument("--noise", action="store_true", help="also optimise the noise maps (NVIDIA: --space w --noise)")
    parser.add_argument("--class-index", type=non_negative_int, help="conditional generators: the class of every image")
    parser.add_argument("--classes", help="conditional generators: a JSON file {image name: class index}")
    parser.add_argument("--optimize-class", action="store_true", help="also optimise the class vector (space z)")
    parser.add_argument("--truncation", type=finite_float, default=1.0,
                        help="truncation psi in space z (BigGAN: its batch-norm statistics and z box)")
    parser.add_argument("--steps", type=positive_int, default=1000)
    parser.add_argument("--loss", choices=("lpips", "mse", "lpips+mse"), default="lpips")
    parser.add_argument("--mse-weight", type=positive_float, default=1.0, help="weight of the MSE term in lpips+mse")
    parser.add_argument("--lpips-vgg", help="torchvision vgg16 state dict (.pth), for the LPIPS loss and metric")
    parser.add_argument("--lpips-lin", help="lpips package lin weights (weights/v0.1/vgg.pth)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="targets per compiled step")
    parser.add_argument("--seed", type=seed, default=0)


def main(args: argparse.Namespace) -> int:
    """Run `latentjax invert` from parsed arguments (see `add_invert_arguments`)."""
    apart(args.out_dir, args.in_dir, "out_dir")
    output_dir(args.out_dir, "out_dir")
    if bool(args.lpips_vgg) != bool(args.lpips_lin):
        raise SystemExit("error: --lpips-vgg and --lpips-lin go together")
    lpips = load_lpips(args.lpips_vgg, args.lpips_lin) if args.lpips_vgg else None
    if "lpips" in args.loss and lpips is None:
        raise SystemExit(f"error: --loss {args.loss} needs --lpips-vgg and --lpips-lin")
    loss = {"lpips": {"lpips": 1.0}, "mse": {"mse": 1.0},
            "lpips+mse": {"lpips": 1.0, "mse": args.mse_weight}}[args.loss]
    if args.class_index is not None and args.classes:
        raise SystemExit("error: give --class-index or --classes, not both")
    classes = args.class_index
    if args.classes:
        try:
            classes = json.loads(Path(args.classes).read_text())
        except OSError as e:
            raise SystemExit(f"error: --classes {args.classes}: cannot read it ({e.strerror or e})") from None
        except ValueError as e:
            raise SystemExit(f"error: --classes {args.classes}: not JSON ({e})") from None
        if not isinstance(classes, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                    for v in classes.values()):
            raise SystemExit(f"error: --classes {args.classes} must hold a JSON object {{image name: class index}}")
    G = load_generator(args.checkpoint, ema=not args.no_ema)
    summary = invert_directory(G, args.in_dir, args.out_dir, key=jax.random.key(args.seed), space=args.space,
                               steps=args.steps, loss=loss, lpips=lpips, classes=classes, optimize_noise=args.noise,
                               optimize_class=args.optimize_class,
                               config=InversionConfig(truncation_psi=args.truncation), batch_size=args.batch_size)
    overview = write_overview(args.in_dir, args.out_dir)
    print(f"{G}\ninverted {len(summary['done'])} images into {args.out_dir} "
          f"({len(summary['skipped'])} already done)")
    for reason in summary["unreadable"].values():
        print(f"skipped: {reason}", file=sys.stderr)
    print("mean over all finished images: " + ", ".join(f"{k} {v:.4g}" for k, v in overview["mean"].items()))
    print(f"wrote {Path(args.out_dir) / 'comparison.png'} and {Path(args.out_dir) / 'metrics.md'}")
    return 0
