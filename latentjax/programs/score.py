"""`latentjax score`: a table of sampled latents and their scores, written in shards, resumable.

    latentjax score --config configs/score.py --workdir out/scores

Samples `num_samples` latents of the config's space, decodes and scores them with the config's
scorer (`scorer_from_spec`) in one jitted program sharded over the devices, `shard_size` samples
per file: `WORKDIR/scores-00000.npz` ... (arrays `latents`, `scores`, `index`: the sample indices,
sample i drawn with `fold_in(key(seed), i)`) and `WORKDIR/scores.json` (what the table is: the
generator, the space, the scorer's attribute names, the seed, the shard size). Each shard is
written under a temporary name and renamed, so a killed run leaves only whole shards, and running
the same config again computes only the missing ones; a different config in the same workdir is
refused. `load_table(workdir)` reads the table back in sample order: the input of InterFaceGAN's
`train_boundary` or of `regress` at the reference's 500K samples.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from latentjax.latent import space_from_spec
from latentjax.load import load_generator
from latentjax.metrics.scorer import score_samples
from latentjax.programs.discover import scorer_from_spec
from latentjax.programs.flags import parse_config_flags
from latentjax.programs.outputs import output_dir

MANIFEST = "scores.json"


def shard_path(workdir: Path, shard: int) -> Path:
    return Path(workdir) / f"scores-{shard:05d}.npz"


def shard_index(shard: int, shard_size: int, num_samples: int) -> np.ndarray:
    """The sample indices shard `shard` holds in a table of `num_samples`."""
    return np.arange(shard * shard_size, min((shard + 1) * shard_size, num_samples))


def _holds(path: Path, index: np.ndarray) -> bool:
    """Whether the shard file at `path` holds exactly the samples `index`."""
    with np.load(path) as data:
        return np.array_equal(data["index"], index)


def score(config, workdir, progress: bool = True) -> Path:
    """Write (or complete) the table `config` describes under `workdir`; returns `workdir`."""
    for name in ("num_samples", "shard_size", "batch_size"):
        if not isinstance(config[name], int) or config[name] < 1:
            raise ValueError(f"config.{name} must be a positive int, got {config[name]!r}")
    if not config.generator:
        raise ValueError("config.generator is empty: pass --config.generator=PATH")
    workdir = Path(workdir)
    G = load_generator(config.generator)
    space = space_from_spec(G, config.space)
    scorer = scorer_from_spec(config.scorer)
    manifest = {"generator": str(config.generator), "space": space.spec, "scorer": config.scorer,
                "attributes": list(scorer.names), "seed": config.seed, "shard_size": config.shard_size,
                "num_samples": config.num_samples}
    existing = workdir / MANIFEST
    if existing.exists():
        before = json.loads(existing.read_text())
        differs = sorted(k for k in manifest if k != "num_samples" and before.get(k) != manifest[k])
        if differs:
            raise ValueError(f"{workdir} holds a table of another config (differs in {differs}); "
                             "use a new --workdir")
    (workdir / (MANIFEST + ".tmp")).write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(workdir / (MANIFEST + ".tmp"), existing)
    key = jax.random.key(config.seed)
    num_shards = -(-config.num_samples // config.shard_size)
    for shard in range(num_shards):
        path = shard_path(workdir, shard)
        index = shard_index(shard, config.shard_size, config.num_samples)
        if path.exists() and _holds(path, index):  # a grown table recomputes its last, short shard
            continue
        if progress:
            print(f"shard {shard + 1}/{num_shards}: samples {index[0]}..{index[-1]}")
        latents, scores = score_samples(space, scorer, len(index), batch_size=config.batch_size, key=key,
                                        start=int(index[0]), progress=progress)
        partial = path.with_suffix(".tmp.npz")
        np.savez(partial, latents=latents, scores=scores, index=index)
        os.replace(partial, path)
    return workdir


def load_table(workdir) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(latents [N, ...], scores [N, A], attribute names) of a `score` workdir, in sample order;
    an error names a missing or damaged shard."""
    workdir = Path(workdir)
    manifest_path = workdir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{workdir}: no {MANIFEST}; is it a `latentjax score` workdir?")
    manifest = json.loads(manifest_path.read_text())
    num_shards = -(-manifest["num_samples"] // manifest["shard_size"])
    latents, scores = [], []
    for shard in range(num_shards):
        path = shard_path(workdir, shard)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run `latentjax score` with the same config to complete the table")
        expected = shard_index(shard, manifest["shard_size"], manifest["num_samples"])
        if not _holds(path, expected):
            raise ValueError(f"{path}: does not hold samples {expected[0]}..{expected[-1]}; run `latentjax score` "
                             "with the same config to complete the table")
        with np.load(path) as data:
            latents.append(data["latents"])
            scores.append(data["scores"])
    return np.concatenate(latents), np.concatenate(scores), manifest["attributes"]


def main(argv) -> int:
    """`latentjax score --config FILE[:variant] [--config.field=value ...] --workdir DIR`."""
    values = parse_config_flags(argv, "score")
    output_dir(values.workdir, "--workdir")
    workdir = score(values.config, values.workdir)
    latents, scores, names = load_table(workdir)
    valid = np.isfinite(scores).all(axis=1).mean()
    print(f"{len(latents)} samples x {len(names)} scores ({', '.join(names)}); {valid:.1%} scored in full; "
          f"wrote {workdir}/scores-*.npz and {workdir / MANIFEST}")
    return 0
