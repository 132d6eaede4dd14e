"""Speed of the shapes renderer and read-out, and the read-out's accuracy per factor.

    python benchmarks/shapes_readout.py                       # 32 and 64 px, 2048 samples each
    python benchmarks/shapes_readout.py --resolutions 64 --samples 8192

Speed: images/s of `shapes.render` (factors given), `shapes.sample` (factors drawn, then
rendered) and `factors.readout`, jitted, median of repeats after a warm-up, at `--batch`.
Accuracy: `--samples` random renders are read back; per factor the mean and max error (normalised
units; rotation as a fraction of the symmetry period, circles excluded; shape as accuracy), the
share judged valid and the rerender error. The same is repeated on renders with Gaussian noise
and on half-way blends of two shapes, which must be judged invalid. There is no reference
implementation to time beside ours: the renderer is this project's own. Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import itertools

import jax
import numpy as np

from latentjax import shapes
from latentjax.shapes import reading as F
from timing import describe_environment, median_seconds, write_record


def images_per_second(run, batch: int, repeats: int) -> float:
    """Images/s of `run(i)`, each call with a fresh index (so no two calls see the same input)."""
    calls = itertools.count()
    return batch / median_seconds(lambda: run(next(calls)), repeats)


def speed(resolution: int, batch: int, repeats: int) -> dict:
    key = jax.random.key(0)
    factors = shapes.sample_factors(key, batch)
    images, _ = shapes.sample(key, batch, resolution)
    return {
        "render": images_per_second(lambda i: shapes.render(factors, resolution).images, batch, repeats),
        "sample": images_per_second(lambda i: shapes.sample(jax.random.fold_in(key, i), batch, resolution)[0],
                                    batch, repeats),
        "readout": images_per_second(lambda i: F.readout(images), batch, repeats),
    }


def corrupt(kind: str, images, factors, resolution: int, key):
    if kind == "renders":
        return images
    if kind.startswith("noise"):
        return images + float(kind.split()[1]) * jax.random.normal(key, images.shape)
    other = shapes.render({**factors, "shape": (factors["shape"] + 1) % len(shapes.SHAPES)}, resolution).images
    return 0.5 * images + 0.5 * other  # "blend": half-way between two shapes


def accuracy(resolution: int, samples: int, batch: int, kind: str) -> dict:
    outs, truths = [], []
    for i in range(-(-samples // batch)):
        key = jax.random.fold_in(jax.random.key(1), i)
        images, factors = shapes.sample(key, batch, resolution)
        outs.append(F.readout(corrupt(kind, images, factors, resolution, jax.random.fold_in(key, 1))))
        truths.append(factors)
    out = jax.tree.map(lambda *x: np.concatenate(x)[:samples], *outs)
    truth = jax.tree.map(lambda *x: np.concatenate(x)[:samples], *truths)
    errors = F.factor_errors(out, truth)
    row = F.summarize_errors(errors)
    row.update({f"{name}_max": float(np.nanmax(errors[name])) for name in shapes.FACTOR_NAMES[1:]})
    row.update({"valid": float(np.mean(out["valid"])), "one_object": float(np.mean(out["num_objects"] == 1)),
                "rerender_p50": float(np.median(out["rerender_error"])),
                "rerender_max": float(np.max(out["rerender_error"]))})
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", default=["renders", "noise 0.02", "noise 0.05", "blend"])
    parser.add_argument("--out", default="benchmarks/results/shapes_readout.json")
    args = parser.parse_args(argv)

    print(f"{describe_environment()}, batch {args.batch}\n"
          f"{'res':>4} {'render img/s':>13} {'sample img/s':>13} {'readout img/s':>14}")
    speeds = {}
    for res in args.resolutions:
        speeds[res] = speed(res, args.batch, args.repeats)
        print(f"{res:4d} {speeds[res]['render']:13.0f} {speeds[res]['sample']:13.0f} {speeds[res]['readout']:14.0f}",
              flush=True)

    names = shapes.FACTOR_NAMES[1:]
    print(f"\nread-out on {args.samples} samples: mean / max abs error (normalised units), shape accuracy, validity")
    print(f"{'res':>4} {'images':<10} {'shape':>6} " + " ".join(f"{n:>15}" for n in names)
          + f" {'valid':>6} {'rerender p50/max':>17}")
    rows = []
    for res in args.resolutions:
        for kind in args.kinds:
            row = {"resolution": res, "images": kind, **accuracy(res, args.samples, args.batch, kind)}
            rows.append(row)
            errs = " ".join(f"{row[f'{n}_mae']:7.4f}/{row[f'{n}_max']:7.4f}" for n in names)
            print(f"{res:4d} {kind:<10} {row['shape_accuracy']:6.3f} {errs} {row['valid']:6.3f} "
                  f"{row['rerender_p50']:8.4f}/{row['rerender_max']:.4f}", flush=True)
    write_record(args.out, "shapes_readout", batch=args.batch, samples=args.samples, valid_tol=F.VALID_TOL,
                 repeats=args.repeats, images_per_second={str(r): s for r, s in speeds.items()}, accuracy=rows)


if __name__ == "__main__":
    main()
