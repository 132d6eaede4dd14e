"""Identity swaps in the shapes world, scored against the truth, beside baselines.

    python benchmarks/identity_swaps.py                                # the shipped builtin:shapes mapper
    python benchmarks/identity_swaps.py --mapper runs/identity/identity_mapper --pairs 2000

Pairs of true renders of fresh factors go through each swap; the read-out measures the outputs
(`lj.shapes.swap_scores`): the share it accepts, identity kept (shape accuracy, hue error) and
attributes followed (x, y, scale, rotation, background errors). Baselines: copying the attribute
image (attributes perfect, identity by chance), copying the identity image (the reverse), and the
same mapper with an untrained mapping MLP (what training adds). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

import latentjax as lj
from latentjax.identity import IdentityMapper
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"
COLUMNS = ("valid", "shape_accuracy", "hue_error", "x_error", "y_error", "scale_error", "rotation_error",
           "background_error")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mapper", default="builtin:shapes")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--tol", type=float, default=0.2,
                        help="the read-out's validity tolerance (0.01 is strict; the built-in generator's soft "
                             "renders need 0.2, as the main job uses)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "identity_swaps.json"))
    args = parser.parse_args(argv)

    print(describe_environment())
    mapper = lj.identity.load(args.mapper)
    untrained = IdentityMapper.build(mapper.config, jax.random.key(args.seed))
    resolution = mapper.space.generator.img_resolution
    swaps = {"identity mapper": mapper.swap, "untrained mapping": untrained.swap,
             "copy the attribute image": lambda identity, attributes: attributes,
             "copy the identity image": lambda identity, attributes: identity}
    rows = {name: lj.shapes.swap_scores(swap, jax.random.key(args.seed), args.pairs, resolution, tol=args.tol)
            for name, swap in swaps.items()}
    print(f"\n{args.pairs} pairs of fresh true renders; errors over outputs valid at tol {args.tol}")
    print(f"{'swap':<26}" + "".join(f"{c:>17}" for c in COLUMNS))
    for name, row in rows.items():
        print(f"{name:<26}" + "".join(f"{row[c]:>17.3f}" for c in COLUMNS))
    write_record(args.out, "identity_swaps", mapper=args.mapper, pairs=args.pairs, seed=args.seed, tol=args.tol,
                 step=mapper.metadata.get("step"), rows=rows)


if __name__ == "__main__":
    main()
