"""Quality of a shapes generator, measured with the analytic factor read-out.

    python benchmarks/shapes_generator_quality.py                        # the built-in generator
    python benchmarks/shapes_generator_quality.py --generator runs/shapes_gan/generator

Prints the valid fraction (at the read-out's tolerance 0.01 and looser ones), percentiles of the
rerender error and, per factor, the distance between the generated and the true
distribution (`latentjax.shapes.quality`: total variation for shape, W1 for the rest),
next to the same numbers for true renders (the noise floor for that sample count), and writes
JSON to benchmarks/results/shapes_generator_quality.json.
"""

from __future__ import annotations

import argparse
import time

import jax

import latentjax as lj
from latentjax import shapes
from latentjax.shapes import quality as shapes_quality
from timing import write_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="builtin:shapes")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/shapes_generator_quality.json")
    args = parser.parse_args()

    G = lj.load_generator(args.generator)
    key = jax.random.key(args.seed)
    start = time.perf_counter()
    generated = shapes_quality.generator_quality(G, key, args.num_samples, args.batch_size)
    seconds = time.perf_counter() - start
    floor = shapes_quality.true_render_quality(key, G.img_resolution, args.num_samples, args.batch_size)

    names = [f"valid at rerender error < {tol}" for tol in generated["valid_fraction_at"]]
    names += [f"rerender error p{p} (one object)" for p in generated["rerender_error_percentiles"]]
    names += [f"{name} distance" for name in shapes.FACTOR_NAMES]
    names += [f"{name} distance (one object)" for name in shapes.FACTOR_NAMES]
    rows = [(generated[group][k], floor[group][k]) for group in ("valid_fraction_at", "rerender_error_percentiles")
            for k in generated[group]]
    rows += [(generated[group][name], floor[group][name]) for group in ("distances", "distances_one_object")
             for name in shapes.FACTOR_NAMES]
    print(f"{args.generator}: {args.num_samples} samples, seed {args.seed}, {seconds:.1f} s\n")
    print("| measure | generator | true renders |\n|---|---:|---:|")
    for name, (ours, truth) in zip(names, rows):
        print(f"| {name} | {ours:.4f} | {truth:.4f} |")

    write_record(args.out, "shapes_generator_quality", generator=args.generator, seed=args.seed, seconds=seconds,
                 generated=generated, true_renders=floor)


if __name__ == "__main__":
    main()
