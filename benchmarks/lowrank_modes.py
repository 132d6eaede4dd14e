"""LowRankGAN's two modes side by side: the reference's per-latent robust PCA against the averaged,
eigenvalue-thresholded variant, on one generator, one region and its protected complement.

    OPENBLAS_NUM_THREADS=1 python benchmarks/lowrank_modes.py                       # builtin:shapes, centre box
    python benchmarks/lowrank_modes.py --generator ffhq.pkl --region 0.5 0.8 0.3 0.7 --samples 3

Per mode: the directions found, the protected region's rank and null-space dimension (per latent
for 'reference'), the region's ranks, and the wall time end to end (compilation included, one
call each, as a user calls `jacobian`). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import jax

import latentjax as lj
from latentjax.directions import jacobian
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"


def run_mode(G, mode: str, args) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():  # 'reference' may find fewer than k: reported in the table instead
        warnings.simplefilter("ignore")
        d = jacobian(G, k=None if mode == "reference" else args.k, mode=mode, num_samples=args.samples,
                     region=tuple(args.region), protect="complement", progress=False, key=jax.random.key(args.seed))
    seconds = time.perf_counter() - start
    s = d.settings
    return {"mode": mode, "directions": len(d.vectors), "seconds": seconds,
            "rank_f": s.get("rank_f"), "rank_b": s.get("rank_b"),
            "null_space_dim": s["null_space_dim"], "samples": args.samples}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", default="builtin:shapes")
    parser.add_argument("--region", type=float, nargs=4, default=(0.25, 0.75, 0.25, 0.75),
                        metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"), help="the edited box, as image fractions")
    parser.add_argument("--samples", type=int, default=5, help="latents (the reference's 5)")
    parser.add_argument("--k", type=int, default=10, help="directions of the averaged mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "lowrank_modes.json"))
    args = parser.parse_args(argv)

    print(describe_environment())
    G = lj.load_generator(args.generator)
    rows = [run_mode(G, mode, args) for mode in ("reference", "averaged")]
    print(f"\n{'mode':<10} {'dirs':>5} {'region ranks':>16} {'protected ranks':>16} {'null dims':>16} {'s':>7}")
    for r in rows:
        print(f"{r['mode']:<10} {r['directions']:5d} {str(r['rank_f'] or '-'):>16} {str(r['rank_b'] or '-'):>16} "
              f"{str(r['null_space_dim']):>16} {r['seconds']:7.1f}")
    write_record(args.out, "lowrank_modes", generator=args.generator, region=list(args.region), rows=rows)


if __name__ == "__main__":
    main()
