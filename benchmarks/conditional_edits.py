"""InterFaceGAN's conditional edit on the shapes world: does conditioning keep the other factors still?

    python benchmarks/conditional_edits.py                     # builtin:shapes, edit x keeping y and hue

Scores N samples of the `w` space with the read-out, trains the boundary of the edited factor and
of each condition (the reference's recipe, ratio `--ratio`), and projects the edited boundary off
the conditions. Then held-out latents are moved by ±`--step` standard deviations (of the latents'
projection on the boundary) along the plain and the conditioned boundary, and the read-out
measures how much each factor changed, on pairs that are clean renders at both ends (periodic
factors by circular distance). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import latentjax as lj
from latentjax.directions import fit_boundary, project_boundary
from latentjax.metrics.scorer import score_samples
from latentjax.shapes.reading import factor_distance, readout
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"
FACTORS = ("x", "y", "scale", "hue", "background")


def changes(space, params, latents, vector, step, tol) -> dict:
    decode = jax.jit(lambda x: space.decode(params, x))
    ends = [readout(decode(latents + sign * step * jnp.asarray(vector)), tol) for sign in (-1.0, 1.0)]
    valid = np.asarray(ends[0]["valid"] & ends[1]["valid"])
    row = {"valid_pairs": float(valid.mean())}
    for name in FACTORS:
        row[name] = float(np.mean(factor_distance(name, np.asarray(ends[0][name]), np.asarray(ends[1][name]))[valid]))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", default="builtin:shapes")
    parser.add_argument("--edit", default="x")
    parser.add_argument("--conditions", nargs="+", default=["y", "hue"])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--ratio", type=float, default=0.05, help="chosen_num_or_ratio")
    parser.add_argument("--tol", type=float, default=lj.shapes.reading.VALID_TOL,
                        help="the read-out's validity tolerance")
    parser.add_argument("--probes", type=int, default=512)
    parser.add_argument("--step", type=float, default=1.0, help="half the walk, in standard deviations")
    parser.add_argument("--out", default=str(RESULTS / "conditional_edits.json"))
    args = parser.parse_args(argv)

    print(describe_environment())
    G = lj.load_generator(args.generator)
    space = lj.latent_space(G, "w")
    scorer = lj.shapes.readout_scorer(args.tol)
    latents, scores = score_samples(space, scorer, args.samples, batch_size=500, key=jax.random.key(0))
    fits = {name: fit_boundary(latents, scores[:, scorer.names.index(name)], args.ratio, seed=0)
            for name in [args.edit, *args.conditions]}
    plain = fits[args.edit].normal
    conditioned = project_boundary(plain, *(fits[c].normal for c in args.conditions))
    probes = space.sample(jax.random.key(1), args.probes, G.params)
    step = args.step * float(np.std(latents @ plain))
    rows = []
    for label, vector in (("plain", plain), (f"conditioned on {', '.join(args.conditions)}", conditioned)):
        row = {"direction": label, **changes(space, G.params, probes, vector, step, args.tol)}
        row.update({f"cos_{c}": float(vector @ fits[c].normal) for c in args.conditions})
        rows.append(row)
    accuracy = {name: fit.val_accuracy for name, fit in fits.items()}
    print(f"\nboundary validation accuracy: {accuracy}; walk ±{step:.3f} in w (±{args.step} sd)")
    print(f"{'direction':<28}" + "".join(f"{'d' + f:>12}" for f in FACTORS) + f"{'valid':>8}")
    for r in rows:
        print(f"{r['direction']:<28}" + "".join(f"{r[f]:12.4f}" for f in FACTORS) + f"{r['valid_pairs']:8.3f}")
    write_record(args.out, "conditional_edits", generator=args.generator, edit=args.edit, conditions=args.conditions,
                 samples=args.samples, ratio=args.ratio, tol=args.tol, step=step, accuracy=accuracy, rows=rows)


if __name__ == "__main__":
    main()
