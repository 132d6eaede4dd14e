"""The discovery pipeline behind `latentjax discover` and `latentjax walk`, usable from code.

A run is an ml_collections config (`configs/sefa.py`, `configs/ganspace.py`, ...), built on
`base_config`: the generator, the latent space, the method and its settings, and how to draw the
walks. `discover(config, workdir)` computes the directions and writes `directions.npz`, a grid PNG
per seed (rows = directions, columns = steps, the original in the centre column), a GIF per
direction (seeds side by side) and `report.html`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from ml_collections import config_dict

from latentjax.directions import METHODS
from latentjax.directions.base import Directions
from latentjax.latent import latent_space, space_option_names
from latentjax.viz import encode_gif, encode_png, save_report, walk_grid
from latentjax.viz.walk import walk_images


def base_config(method: str, settings: dict) -> ml_collections.ConfigDict:
    """The fields every discovery config shares; `settings` are the method's config fields."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)}")
    config = ml_collections.ConfigDict()
    config.generator = ""  # checkpoint or latentjax directory (required: --config.generator=PATH)
    config.method = method
    config.seed = 0  # key for the method (sampling)
    config.space = ml_collections.ConfigDict({
        "name": "",  # '' = the family's editing space (StyleGAN2 'w+', BigGAN/PGGAN 'z')
        "class_index": config_dict.placeholder(int),  # conditional generators
        "truncation_psi": config_dict.placeholder(float),
        "fit_samples": config_dict.placeholder(int),  # StyleGAN2: samples for the w Gaussian (others ignore it)
    })
    config.settings = ml_collections.ConfigDict(settings)
    config.walk = ml_collections.ConfigDict({
        "kind": "linear",  # 'linear' or 'iso_density'
        "seeds": (0, 1, 2),  # one grid per seed
        "num_steps": 7,  # odd, so that the centre column is the original
        "distance": 3.0,  # steps run over [-distance, distance]
        "batch_size": 8,
        "gif_ms": 120,  # GIF frame duration
    })
    return config


def space_options(config, generator) -> dict:
    """The set `config.space` options, less `fit_samples` for families without a fitted density
    (the smoke variants set it whatever the generator); any other option a family does not take
    is left in for `latent_space` to refuse."""
    options = {k: v for k, v in config.space.items() if k != "name" and v is not None}
    if "fit_samples" not in space_option_names(generator):
        options.pop("fit_samples", None)
    return options


def discover(config, workdir, progress: bool = True) -> Directions:
    """Compute directions as `config` says and write them with their pictures under `workdir`."""
    import latentjax as lj

    if not config.generator:
        raise ValueError("config.generator is empty: pass --config.generator=PATH")
    workdir = Path(workdir)
    G = lj.load_generator(config.generator)
    space = latent_space(G, config.space.name or None, **space_options(config, G))
    if space.num_classes and space.options.get("class_index") is None:  # fail before the method runs
        raise ValueError(f"{config.generator} is class-conditional: choose the class of the walks with "
                         f"--config.space.class_index=N (0..{space.num_classes - 1})")
    method, config_cls = METHODS[config.method]
    settings = config_cls.from_dict(config.settings.to_dict())
    start = time.perf_counter()
    directions = method(space, settings, jax.random.key(config.seed), progress=progress)
    seconds = time.perf_counter() - start
    directions.save(workdir / "directions.npz")
    summary = {"generator": str(config.generator), "method": config.method, "space": directions.space,
               "settings": directions.settings, "seconds": round(seconds, 3), "walk": config.walk.to_dict()}
    write_walks(workdir, space, G.params, directions, summary, progress=progress, **config.walk.to_dict())
    return directions


def write_walks(workdir, space, params, directions: Directions, summary: dict, *, kind="linear", seeds=(0,),
                num_steps=7, distance=3.0, batch_size=8, gif_ms=120, progress: bool = True) -> list[Path]:
    """Grids (`walk_seed{s}.png`), GIFs (`direction{k}.gif`), `report.html` and `summary.json`; returns the paths."""
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
    title = f"{directions.method} directions in {directions.space['name']}"
    paths.append(save_report(workdir / "report.html", title, summary, directions.scores, figures))
    paths.append(workdir / "summary.json")
    paths[-1].write_text(json.dumps(summary, indent=1) + "\n")
    return paths


def shrink(config, **settings) -> ml_collections.ConfigDict:
    """The `:smoke` variant of a config: one seed, three steps, a small w fit, and `settings` overrides."""
    config.walk.seeds = (0,)
    config.walk.num_steps = 3
    config.space.fit_samples = 2000
    config.settings.update(settings)
    return config
