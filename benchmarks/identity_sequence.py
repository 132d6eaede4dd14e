"""Identity-consistent sequences in the shapes world: a smooth pose trajectory, one identity, measured.

    python benchmarks/identity_sequence.py                     # the shipped builtin:shapes mapper

For each of `--identities` identities (true renders of fresh factors), a driver sequence of
`--frames` frames moves smoothly (x and y round an ellipse, scale up and down, a full turn of
rotation, background fixed); its frames are true renders of a driver object. Two ways to make the
sequence are scored by the read-out (`lj.shapes.sequence_scores`): identity kept (share of
frames read as the identity's shape with its hue within 0.05), attribute errors and frame-to-frame
jitter against the driver.

- **identity mapper**: `latentjax.identity.sequence.drive`, one identity embedding for all frames;
- **per-frame inversion**: each intended frame (the exact render of the identity in the driver's
  pose) inverted into w on its own (`lj.invert`, MSE, `--inversion-steps` Adam steps), as a
  per-frame method without a shared identity code would.

Prints a table, writes JSON and a GIF of the first identity's sequence (driver | mapper |
inversion).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import latentjax as lj
from latentjax.identity.sequence import drive
from latentjax.shapes.swaps import sequence_scores
from latentjax.viz import encode_gif, image_grid, to_uint8
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"
COLUMNS = ("valid", "identity_kept", "x_error", "y_error", "scale_error", "rotation_error", "x_jitter", "y_jitter",
           "scale_jitter", "rotation_jitter")


def trajectory(frames: int, driver_shape: int = 1, driver_hue: float = 0.6) -> dict[str, jnp.ndarray]:
    t = np.linspace(0.0, 1.0, frames, endpoint=False)
    return lj.shapes.check_factors({
        "shape": np.full(frames, driver_shape), "x": 0.5 + 0.15 * np.cos(2 * np.pi * t),
        "y": 0.5 + 0.1 * np.sin(2 * np.pi * t), "scale": 0.5 + 0.3 * np.sin(2 * np.pi * t),
        "rotation": t, "hue": np.full(frames, driver_hue), "background": np.full(frames, 0.4)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mapper", default="builtin:shapes")
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--inversion-steps", type=int, default=300)
    parser.add_argument("--tol", type=float, default=lj.shapes.reading.VALID_TOL,
                        help="the read-out's validity tolerance (default: its strict 0.01)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "identity_sequence.json"))
    parser.add_argument("--gif", default=str(RESULTS / "identity_sequence.gif"))
    args = parser.parse_args(argv)

    print(describe_environment())
    mapper = lj.identity.load(args.mapper)
    G = mapper.space.generator
    resolution = G.img_resolution
    drivers = trajectory(args.frames)
    driver_images = np.asarray(lj.shapes.render(drivers, resolution).images)
    # identities that are not circles, so that rotation is visible and scored
    identities = lj.shapes.sample_factors(jax.random.key(args.seed), args.identities)
    identities["shape"] = 1 + identities["shape"] % 2
    rows = {"identity mapper": [], "per-frame inversion": []}
    gif = None
    for i in range(args.identities):
        one = {k: v[i:i + 1] for k, v in identities.items()}
        identity_image = np.asarray(lj.shapes.render(one, resolution).images[0])
        truth = {k: one[k][0] for k in ("shape", "hue")}
        frames = drive(mapper, identity_image, driver_images)
        intended = {**drivers, "shape": jnp.full(args.frames, one["shape"][0]), "hue": jnp.full(args.frames, one["hue"][0])}
        inverted = lj.invert(G, lj.shapes.render(intended, resolution).images, space="w", steps=args.inversion_steps,
                             loss="mse", key=jax.random.key(i), progress=False).images
        rows["identity mapper"].append(sequence_scores(frames, truth, drivers, args.tol))
        rows["per-frame inversion"].append(sequence_scores(inverted, truth, drivers, args.tol))
        print(f"identity {i} ({lj.shapes.world.SHAPES[int(truth['shape'])]}, hue {float(truth['hue']):.3f}): kept "
              f"{rows['identity mapper'][-1]['identity_kept']:.2f} (mapper), "
              f"{rows['per-frame inversion'][-1]['identity_kept']:.2f} (inversion)")
        if gif is None:
            gif = np.stack([image_grid(p, cols=3, pad=1) for p in to_uint8(np.stack(
                [driver_images, frames, inverted], axis=1))])
    means = {name: {c: float(np.nanmean([r[c] for r in runs])) for c in COLUMNS} for name, runs in rows.items()}
    print(f"\n{args.identities} identities x {args.frames} frames; errors and jitter over valid frames")
    print(f"{'sequence':<22}" + "".join(f"{c:>16}" for c in COLUMNS))
    for name, row in means.items():
        print(f"{name:<22}" + "".join(f"{row[c]:>16.3f}" for c in COLUMNS))
    Path(args.gif).parent.mkdir(parents=True, exist_ok=True)
    Path(args.gif).write_bytes(encode_gif(gif, duration_ms=80, bounce=False))
    write_record(args.out, "identity_sequence", mapper=args.mapper, identities=args.identities, frames=args.frames,
                 inversion_steps=args.inversion_steps, seed=args.seed, tol=args.tol, step=mapper.metadata.get("step"), means=means,
                 per_identity=rows, identities_shape_hue=[[int(identities["shape"][i]), float(identities["hue"][i])]
                                                          for i in range(args.identities)])


if __name__ == "__main__":
    main()
