"""Sparse linear-encoded semantics in StyleSpace: how many channels, and how many layers, does each factor need?

    python benchmarks/sparse_semantics.py                      # builtin:shapes, the `s` space

Regresses each read-out factor on the `s` codes (every style channel) of N samples, with ridge
only, with L1 weights `--l1` (sparse channels) and with the same weights as group lasso over the
style layers (`sparsity="layers"`), and reports the held-out R², the number of channels each
direction uses and its layers. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

import latentjax as lj
from latentjax.directions import linear_semantics
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", default="builtin:shapes")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--l1", type=float, nargs="+", default=[0.0, 1e-3, 3e-3])
    parser.add_argument("--factors", nargs="+", default=["x", "y", "scale", "hue", "background"])
    parser.add_argument("--tol", type=float, default=lj.shapes.reading.VALID_TOL,
                        help="the read-out's validity tolerance")
    parser.add_argument("--out", default=str(RESULTS / "sparse_semantics.json"))
    args = parser.parse_args(argv)

    print(describe_environment())
    G = lj.load_generator(args.generator)
    space = lj.latent_space(G, "s")
    scorer = lj.shapes.readout_scorer(args.tol)
    runs = [("coordinates", l1) for l1 in args.l1] + [("layers", l1) for l1 in args.l1 if l1 > 0]
    rows = []
    for sparsity, l1 in runs:
        d = linear_semantics(space, scorer, num_samples=args.samples, l1=l1, sparsity=sparsity,
                             attributes=tuple(args.factors), key=jax.random.key(0), progress=False)
        for name, r2, nonzero, layers in zip(d.settings["directions"], d.scores, d.settings["nonzero"],
                                             d.settings["layers_used"]):
            rows.append({"sparsity": sparsity, "l1": l1, "factor": name, "r2_holdout": float(r2), "channels": nonzero,
                         "layers": layers})
    print(f"\n{space.direction_dim} StyleSpace channels in {len(space.style_sizes)} layers; "
          f"held-out R² (channels used; layers used)")
    print(f"{'sparsity':>12}{'l1':>8}" + "".join(f"{f:>20}" for f in args.factors))
    for sparsity, l1 in runs:
        cells = {r["factor"]: f"{r['r2_holdout']:.3f} ({r['channels']}; {len(r['layers'])})" for r in rows
                 if r["l1"] == l1 and r["sparsity"] == sparsity}
        print(f"{sparsity:>12}{l1:8g}" + "".join(f"{cells[f]:>20}" for f in args.factors))
    write_record(args.out, "sparse_semantics", generator=args.generator, samples=args.samples,
                 channels=space.direction_dim, layers=len(space.style_sizes), rows=rows)


if __name__ == "__main__":
    main()
