"""`latentjax sequence`: one identity image and a pose sequence -> an identity-consistent image sequence.

    latentjax sequence --identity face.png --driver frames/ --mapper runs/face/identity_mapper --out out/seq
    latentjax sequence --identity shape.png --driver poses.json --out out/seq      # builtin:shapes mapper

The driver is a directory of frames (PNG / JPEG, in name order) or, for a mapper of the shapes
world, a JSON object of per-frame factor lists ({"x": [...], "rotation": [...], ...}; factors left
out stay at the world's middle, the driver's object is a square of hue 0), rendered exactly.
Writes OUT/frames/NNNN.png, OUT/sequence.gif (driver beside output), OUT/sequence.mp4 (the same, where
an ffmpeg is installed: `latentjax.viz.video`), OUT/metrics.json: per-frame
identity-embedding cosine to frame 0 (identity drift) and, for a JSON driver, the read-out's
scores against the truth (identity kept, attribute errors and jitter; `lj.shapes.swaps.sequence_scores`),
counting frames the read-out accepts at `--valid-tol` (default 0.01, its strict tolerance: clean
renders only).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from latentjax.identity import load
from latentjax.identity.sequence import drive, identity_drift
from latentjax.io.images import load_target
from latentjax.programs.outputs import apart, output_dir, write
from latentjax.shapes import FACTOR_NAMES, check_factors, readout, render
from latentjax.shapes.swaps import sequence_scores
from latentjax.viz import encode_gif, encode_mp4, encode_png, find_ffmpeg, image_grid, to_uint8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DRIVER_DEFAULTS = {"shape": 1, "x": 0.5, "y": 0.5, "scale": 0.5, "rotation": 0.0, "hue": 0.0, "background": 0.5}


def driver_factors(path: Path) -> dict[str, np.ndarray]:
    """A JSON driver's factors [T] each, checked; a ValueError names the file and what was expected."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--driver {path}: not a readable JSON file ({e})") from None
    if not isinstance(spec, dict) or not spec or any(k not in FACTOR_NAMES for k in spec):
        raise ValueError(f"--driver {path}: expected a JSON object of per-frame lists keyed by factor names "
                         f"{FACTOR_NAMES}, got {list(spec) if isinstance(spec, dict) else type(spec).__name__}")
    lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in spec.items()}
    if len(set(lengths.values())) != 1 or min(lengths.values()) < 1:
        raise ValueError(f"--driver {path}: every factor must be a non-empty list of the same length, got {lengths}")
    count = next(iter(lengths.values()))
    try:
        factors = {k: np.asarray(spec.get(k, [v] * count), np.int32 if k == "shape" else np.float32)
                   for k, v in DRIVER_DEFAULTS.items()}
        return {k: np.asarray(v) for k, v in check_factors(factors).items()}
    except ValueError as e:
        raise ValueError(f"--driver {path}: {e}") from None


def main(args) -> int:
    out = output_dir(args.out, "--out")
    driver = Path(args.driver)
    if driver.is_dir():
        apart(out, driver, "--out")
    mapper = load(args.mapper)
    G = mapper.space.generator
    resolution, channels = G.img_resolution, G.img_channels
    identity = load_target(args.identity, resolution, channels)
    factors = None
    if driver.is_dir():
        files = sorted(p for p in driver.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"--driver {driver}: no {'/'.join(IMAGE_SUFFIXES)} frames in the directory")
        drivers = np.stack([load_target(p, resolution, channels) for p in files])
    elif driver.suffix.lower() == ".json":
        factors = driver_factors(driver)
        drivers = np.asarray(render({k: jnp.asarray(v) for k, v in factors.items()}, resolution).images)
    else:
        raise ValueError(f"--driver {driver}: expected a directory of frames or a .json of factors")
    start = time.perf_counter()
    frames = drive(mapper, identity, drivers, args.batch_size)
    seconds = time.perf_counter() - start
    for i, frame in enumerate(to_uint8(frames)):
        write(out / "frames" / f"{i:04d}.png", encode_png(frame))
    pairs = to_uint8(np.stack([drivers, frames], axis=1))  # [T, 2, H, W, C]
    grids = np.stack([image_grid(p, cols=2, pad=1) for p in pairs])
    write(out / "sequence.gif", encode_gif(grids, args.frame_ms, bounce=False))
    ffmpeg = find_ffmpeg()
    if ffmpeg:
        write(out / "sequence.mp4", encode_mp4(grids, 1000 / args.frame_ms, ffmpeg))
    else:
        print("no sequence.mp4: no ffmpeg found (install ffmpeg, or the imageio-ffmpeg package)")
    drift = identity_drift(mapper.encode_identity, frames)
    metrics = {"mapper": str(args.mapper), "frames": len(frames), "seconds": round(seconds, 3),
               "identity_cosine_to_first": drift.tolist(), "identity_cosine_min": float(drift.min())}
    if factors is not None:
        read = {k: np.asarray(v)[0] for k, v in readout(jnp.asarray(identity)[None]).items()}
        metrics["truth"] = sequence_scores(frames, read, {k: jnp.asarray(v) for k, v in factors.items()},
                                           args.valid_tol)
        metrics["valid_tol"] = args.valid_tol
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    summary = f"identity cosine to frame 0 >= {metrics['identity_cosine_min']:.3f}"
    if factors is not None:
        summary += f"; identity kept in {metrics['truth']['identity_kept']:.0%} of frames"
    print(f"{mapper}\nwrote {len(frames)} frames to {out} ({seconds:.1f} s): {summary}")
    return 0
