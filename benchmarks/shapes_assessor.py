"""The shapes assessor beside the analytic read-out: how well each estimates the world's factors.

    python benchmarks/shapes_assessor.py          # builtin:shapes_assessor, builtin:shapes, 4096 images each

On N true renders, the mean absolute error of each factor (x, y, scale, background; hue as the
circular distance, from the assessor's cosine and sine) for the read-out and for the assessor. On N
generator samples, where no truth exists, how far the assessor is from the read-out on the samples
the read-out accepts (`--tol`). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

import latentjax as lj
from latentjax.nn.recognizer import load_recognizer
from latentjax.shapes.reading import factor_distance
from latentjax.shapes.recognition import assessor_scorer
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"
FACTORS = ("x", "y", "scale", "background", "hue")


def assessed(scores: np.ndarray, names) -> dict[str, np.ndarray]:
    """Factor values from the assessor's columns: values as they are, hue from its cosine and sine."""
    column = {n: scores[:, i] for i, n in enumerate(names)}
    hue = np.mod(np.arctan2(column["hue_sin"], column["hue_cos"]) / (2 * np.pi), 1.0)
    return {f: hue if f == "hue" else column[f] for f in FACTORS}


def errors(a: dict, b: dict, keep: np.ndarray) -> dict[str, float]:
    return {f: float(np.mean(factor_distance(f, a[f][keep], b[f][keep]))) for f in FACTORS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assessor", default="builtin:shapes_assessor")
    parser.add_argument("--generator", default="builtin:shapes")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--tol", type=float, default=lj.shapes.reading.VALID_TOL,
                        help="the read-out's validity tolerance on samples")
    parser.add_argument("--out", default=str(RESULTS / "shapes_assessor.json"))
    args = parser.parse_args(argv)

    print(describe_environment())
    net = load_recognizer(args.assessor)
    scorer, resolution = assessor_scorer(net), net.config.img_resolution
    score = jax.jit(scorer.score)
    read = jax.jit(lambda images: lj.shapes.readout(images, args.tol))

    truth, readout_true, assessor_true = [], [], []
    for i in range(-(-args.samples // args.batch)):
        images, factors = lj.shapes.sample(jax.random.key(i), args.batch, resolution)
        truth.append({f: np.asarray(factors[f]) for f in FACTORS})
        out = read(images)
        readout_true.append({f: np.asarray(out[f]) for f in FACTORS + ("valid",)})
        assessor_true.append(assessed(np.asarray(score(scorer.params, images)), scorer.names))
    join = lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # noqa: E731
    truth, readout_true, assessor_true = join(truth), join(readout_true), join(assessor_true)
    everything = np.ones(len(truth["x"]), bool)
    rows = [{"images": "true renders", "estimator": "read-out", "n": int(everything.sum()),
             **errors(readout_true, truth, everything)},
            {"images": "true renders", "estimator": "assessor", "n": int(everything.sum()),
             **errors(assessor_true, truth, everything)}]

    G = lj.load_generator(args.generator)
    space = lj.latent_space(G)
    decode = jax.jit(space.decode)
    readout_gen, assessor_gen = [], []
    for i in range(-(-args.samples // args.batch)):
        images = decode(G.params, space.sample(jax.random.key(10_000 + i), args.batch, G.params))
        out = read(images)
        readout_gen.append({f: np.asarray(out[f]) for f in FACTORS + ("valid",)})
        assessor_gen.append(assessed(np.asarray(score(scorer.params, images)), scorer.names))
    readout_gen, assessor_gen = join(readout_gen), join(assessor_gen)
    valid = readout_gen["valid"]
    rows.append({"images": f"{args.generator} samples valid at tol {args.tol:g}", "estimator": "assessor vs read-out",
                 "n": int(valid.sum()), **errors(assessor_gen, readout_gen, valid)})

    print(f"\nmean absolute error per factor (hue: circular distance); {args.assessor}")
    print(f"{'images':<40}{'estimator':<22}{'n':>6}" + "".join(f"{f:>12}" for f in FACTORS))
    for r in rows:
        print(f"{r['images']:<40}{r['estimator']:<22}{r['n']:>6}" + "".join(f"{r[f]:>12.4f}" for f in FACTORS))
    write_record(args.out, "shapes_assessor", assessor=args.assessor, generator=args.generator,
                 samples=args.samples, tol=args.tol, rows=rows)


if __name__ == "__main__":
    main()
