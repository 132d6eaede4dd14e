"""Which direction methods find the shapes world's factors: ground-truth purity per method and factor.

    python benchmarks/ground_truth.py                                   # builtin:shapes
    python benchmarks/ground_truth.py --generator DIR --quick           # another shapes generator, fewer samples
    python benchmarks/ground_truth.py --directions voynov=runs/voynov_shapes/directions.npz \
        dplase=runs/dplase_shapes/directions.npz               # score saved (learned) directions too

Runs SeFa, GANSpace (PCA of w samples) and the Jacobian directions on the generator's `w+` space
(all layers), then scores each set and any saved `Directions` files (each in its own space, e.g.
`w` or `z` for the learned methods) with `latentjax.shapes.scoring`: every direction walked from
prior samples to the step that changes the image by --image-change, factors read back from the
images. Random unit directions of the same shape are scored beside each space's methods (the
baseline rows). Prints a table (best purity per factor, factors with purity >= 0.8, MIG, DCI
disentanglement, valid share, wall time of the method) and writes JSON to benchmarks/results/ and
a purity / change heatmap per method next to it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import latentjax as lj
from latentjax.directions import Directions, ganspace, jacobian, sefa
from latentjax.latent import latent_space
from latentjax.shapes.scoring import GroundTruthConfig, comparison, ground_truth, random_baseline
from latentjax.viz.report import markdown_table
from latentjax.viz.grid import encode_png
from timing import write_record

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="builtin:shapes", help="a shapes generator (default builtin:shapes)")
    parser.add_argument("--directions", nargs="*", default=[], metavar="[NAME=]PATH",
                        help="saved Directions files to score as well (named NAME, or by the file name)")
    parser.add_argument("--k", type=int, default=10, help="directions per method")
    parser.add_argument("--samples", type=int, default=64, help="start latents for the scores")
    parser.add_argument("--image-change", type=float, default=GroundTruthConfig.image_change,
                        help="mean |pixel change| each walk is matched to")
    parser.add_argument("--distance", type=float, default=0.0, help="> 0: walk every direction +-distance instead")
    parser.add_argument("--valid-tol", type=float, default=GroundTruthConfig.valid_tol,
                        help="rerender error below which an image counts as valid")
    parser.add_argument("--quick", action="store_true", help="fewer samples everywhere (a minute on a CPU)")
    parser.add_argument("--out", default=str(RESULTS / "ground_truth.json"))
    args = parser.parse_args(argv)

    G = lj.load_generator(args.generator)
    space = latent_space(G, "w+", fit_samples=2000 if args.quick else 10_000)
    samples = 16 if args.quick else args.samples
    methods = {
        "sefa": lambda: sefa(space, k=args.k),
        "ganspace": lambda: ganspace(space, k=args.k, num_samples=5000 if args.quick else 20_000,
                                     num_components=min(40, G.w_dim), progress=False),
        "jacobian": lambda: jacobian(space, k=args.k, num_samples=2 if args.quick else 5, progress=False),
    }
    found, seconds = {}, {}
    for name, run in methods.items():
        start = time.perf_counter()
        found[name] = run()
        seconds[name] = time.perf_counter() - start
    for item in args.directions:
        name, _, path = item.rpartition("=")
        name = name or Path(path).stem
        found[name] = Directions.load(path)
        seconds[name] = None  # found elsewhere

    scoring = GroundTruthConfig(num_samples=samples, image_change=args.image_change, distance=args.distance,
                                valid_tol=args.valid_tol)
    spaces = {name: space if d.space == space.spec else d.space_for(G) for name, d in found.items()}
    scores = {name: ground_truth(spaces[name], G.params, d, scoring) for name, d in found.items()}
    baselines = {}  # one per space and direction count: random unit directions scored the same way
    for name, d in found.items():
        label = f"random ({d.space['name']}, K={len(d)}, mean of {scoring.baseline_seeds})"
        if label not in baselines:
            baselines[label] = random_baseline(spaces[name], G.params, d, scoring)
    header, rows = comparison(scores, seconds, baselines)
    steps = (f"steps +-{args.distance:g}" if args.distance > 0 else f"steps matched to a mean pixel change of "
             f"{args.image_change:g}")
    print(f"generator {args.generator} ({G.config.img_resolution}x{G.config.img_resolution}), {samples} samples, "
          f"{steps}, valid_tol {args.valid_tol:g}\n")
    print(markdown_table(header, rows))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, result in scores.items():
        for kind, image in result.heatmaps().items():
            out.with_name(f"{out.stem}_{name}_{kind}.png").write_bytes(encode_png(image))
    per_method = {name: {**result.to_dict(), "seconds": seconds[name]} for name, result in scores.items()}
    baseline_runs = {label: [r.to_dict() for r in runs] for label, runs in baselines.items()}
    write_record(out, "ground_truth", generator=str(args.generator), settings=scoring.to_dict(), quick=args.quick,
                 k=args.k, methods=per_method, baselines=baseline_runs)
    print(f"and heatmaps {out.stem}_<method>_<purity|change>.png")


if __name__ == "__main__":
    main()
