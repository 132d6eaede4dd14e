"""`latentjax walk`, and the walk pictures `discover` writes: grids, GIFs and a report of directions."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import jax
import numpy as np

from latentjax.directions import Directions
from latentjax.latent import compiled_decode
from latentjax.load import load_generator
from latentjax.programs.outputs import output_dir, write
from latentjax.progress import Progress
from latentjax.sharding import batched_map
from latentjax.viz import Section, encode_gif, encode_png, report, to_uint8, walk_grid
from latentjax.walks import WALKS, sweep


def render(space, params, latents, batch_size: int = 8, drange=(-1.0, 1.0), progress: bool = True) -> np.ndarray:
    """Latents [..., *space.shape] -> uint8 images [..., H, W, C], decoded in jitted, sharded batches."""
    latents = np.asarray(latents)
    lead = latents.shape[:latents.ndim - len(space.shape)]
    flat = latents.reshape((-1,) + space.shape)
    decode = functools.partial(compiled_decode, space, params)
    with Progress(len(flat), "rendering", unit="img", enabled=None if progress else False) as bar:
        images = to_uint8(batched_map(decode, flat, batch_size, progress=bar), drange)
    return images.reshape(lead + images.shape[1:])


def walk_images(space, params, vectors, layers, seeds, kind: str = "linear", num_steps: int = 7,
                distance: float = 3.0, batch_size: int = 8, progress: bool = True) -> np.ndarray:
    """uint8 images [seeds, K, num_steps, H, W, C]: each seed's latent walked along each direction.

    `kind` names a walk in `latentjax.walks.WALKS`; steps run evenly over [-distance, distance]
    (an odd count, so that the centre is the original); `layers` is None or [K, num_layers].
    """
    if kind not in WALKS:
        raise ValueError(f"unknown walk kind {kind!r}; expected one of {sorted(WALKS)}")
    if num_steps < 1 or num_steps % 2 == 0:
        raise ValueError(f"num_steps must be odd (the centre column is the original), got {num_steps}")
    steps = np.linspace(-distance, distance, num_steps, dtype=np.float32)
    edit = jax.jit(lambda latent: sweep(WALKS[kind], space, latent, vectors, steps, layers))
    latents = np.stack([np.asarray(edit(space.sample(jax.random.key(seed), 1)[0])) for seed in seeds])
    return render(space, params, latents, batch_size, progress=progress)


def walk_figures(workdir, space, params, directions: Directions, *, kind="linear", seeds=(0,), num_steps=7,
                 distance=3.0, batch_size=8, gif_ms=120, progress: bool = True) -> tuple[list, list[Path]]:
    """Write the grids (`walk_seed{s}.png`) and GIFs (`direction{k}.gif`); returns (captioned figures, paths)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    images = walk_images(space, params, directions.vectors, directions.layers, seeds, kind, num_steps, distance,
                         batch_size=batch_size, progress=progress)  # [seeds, K, steps, H, W, C]
    figures, paths = [], []
    for seed, seed_images in zip(seeds, images):
        data = encode_png(walk_grid(seed_images))
        paths.append(workdir / f"walk_seed{seed}.png")
        figures.append((f"seed {seed}: rows = directions 0..{len(directions) - 1}, columns = steps "
                        f"{-distance:g}..{distance:g} ({kind})", data))
    for k in range(len(directions)):
        frames = np.concatenate(list(images[:, k]), axis=2)  # seeds side by side: [steps, H, W * seeds, C]
        data = encode_gif(frames, gif_ms)
        paths.append(workdir / f"direction{k:02d}.gif")
        figures.append((f"direction {k} (score {directions.scores[k]:.4g})", data))
    for path, (_, data) in zip(paths, figures):
        path.write_bytes(data)
    return figures, paths


def write_walks(workdir, space, params, directions: Directions, summary: dict, progress: bool = True,
                **walk) -> list[Path]:
    """Grids (`walk_seed{s}.png`), GIFs (`direction{k}.gif`), `report.html` and `summary.json`; returns the paths.
    `walk`: the `walk_figures` options (kind, seeds, num_steps, distance, batch_size, gif_ms)."""
    workdir = Path(workdir)
    figures, paths = walk_figures(workdir, space, params, directions, progress=progress, **walk)
    title = f"{directions.method} directions in {directions.space['name']}"
    sections = [Section("Scores", scores=directions.scores), Section("Walks", figures=figures)]
    paths.append(write(workdir / "report.html", report(title, summary, sections)))
    paths.append(workdir / "summary.json")
    paths[-1].write_text(json.dumps(summary, indent=1) + "\n")
    return paths


def main(args) -> int:
    """`latentjax walk`: grids, GIFs and a report of saved directions."""
    output_dir(args.workdir, "--workdir")
    G = load_generator(args.generator)
    try:
        directions = Directions.load(args.directions)
        if args.indices:
            directions = directions[args.indices]
        space = directions.space_for(G)
        walk = dict(kind=args.kind, seeds=tuple(args.seeds), num_steps=args.num_steps, distance=args.distance,
                    batch_size=args.batch_size)
        summary = {"generator": args.generator, "directions": args.directions, "method": directions.method,
                   "space": directions.space, "settings": directions.settings, "walk": walk}
        paths = write_walks(args.workdir, space, G.params, directions, summary, **walk)
    except (ValueError, IndexError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files to {args.workdir}")
    return 0
