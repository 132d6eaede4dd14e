"""InterFaceGAN's linear SVM: latentjax's solver beside scikit-learn's `SVC(kernel='linear')` (libsvm).

    python benchmarks/interfacegan_svm.py                      # InterFaceGAN-sized problems
    python benchmarks/interfacegan_svm.py --sizes 1400x64 --noise 0.5

Each problem is the boundary InterFaceGAN trains: N points (both sides of the top / bottom split,
e.g. 2 x 7,000 for 500K samples at the default ratio) in d dimensions, labelled by a planted linear
score plus noise. Per problem: the cosine between the two normals, the SVM iterations each took,
and the wall time (compilation included, one call each, as `train_boundary` runs it). Prints a
table and writes JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.svm import SVC

from latentjax.directions.svm import linear_svm
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"


def run(n: int, d: int, noise: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    truth = rng.normal(size=d)
    labels = ((x @ truth / np.linalg.norm(truth) + noise * rng.normal(size=n)) > 0).astype(int)
    start = time.perf_counter()
    ours = linear_svm(x, labels)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = SVC(kernel="linear").fit(x, labels)
    reference_s = time.perf_counter() - start
    coef = reference.coef_[0]
    cosine = float(ours.coef @ coef / np.linalg.norm(ours.coef) / np.linalg.norm(coef))
    return {"n": n, "d": d, "noise": noise, "cosine": cosine, "iterations": ours.iterations,
            "reference_iterations": int(reference.n_iter_[0]), "seconds": ours_s, "reference_seconds": reference_s}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1000x64", "2000x512", "5600x512"],
                        help="NxD problems (N points in D dimensions)")
    parser.add_argument("--noise", type=float, default=0.3, help="label noise, in units of the planted score")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "interfacegan_svm.json"))
    args = parser.parse_args(argv)

    print(describe_environment())
    rows = []
    for size in args.sizes:
        n, d = (int(v) for v in size.split("x"))
        rows.append(run(n, d, args.noise, args.seed))
        r = rows[-1]
        print(f"N {n:6d} d {d:4d}: cosine {r['cosine']:.7f}, iterations {r['iterations']} (sklearn "
              f"{r['reference_iterations']}), {r['seconds']:.1f} s (sklearn {r['reference_seconds']:.1f} s)")
    write_record(args.out, "interfacegan_svm", noise=args.noise, rows=rows)


if __name__ == "__main__":
    main()
