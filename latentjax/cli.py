"""The `latentjax` command (also `python -m latentjax`): a thin layer over the library."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def _generate_options(G, args) -> dict:
    """The keyword arguments of `G.generate` that this family takes, bound as Python values.

    Truncation stays a Python float: BigGAN selects its batch-norm statistics from it exactly
    as the reference does, and ProgressiveGAN refuses any value but 1.
    """
    if G.family == "stylegan2":
        return {"truncation_psi": args.truncation_psi, "truncation_cutoff": args.truncation_cutoff,
                "noise_mode": args.noise_mode}
    return {"truncation_psi": args.truncation_psi}


def _generate(args) -> int:
    import latentjax as lj
    from latentjax.viz import image_grid, save_png, to_uint8

    G = lj.load_generator(args.checkpoint, ema=not args.no_ema)
    key = jax.random.key(args.seed)
    k_z, k_c, k_noise = jax.random.split(key, 3)
    if G.family == "biggan":   # truncation also bounds z: draw it from the matching truncated normal
        z = G.sample_z(k_z, args.num, args.truncation_psi)
    else:
        z = jax.random.normal(k_z, (args.num, G.z_dim))
    c = None
    if G.c_dim:   # class indices as the latent spaces count them (PGGAN: combinations of attribute values)
        from latentjax.latent import class_vectors, num_classes, sample_classes

        if args.class_index is not None and not 0 <= args.class_index < num_classes(G):
            raise SystemExit(f"error: --class-index must be in [0, {num_classes(G)}) for {args.checkpoint}")
        c = (class_vectors(G, jnp.full((args.num,), args.class_index)) if args.class_index is not None
             else sample_classes(G, k_c, args.num))
    elif args.class_index is not None:
        raise SystemExit(f"error: {args.checkpoint} is unconditional; --class-index does not apply")
    generate = jax.jit(functools.partial(G.generate, **_generate_options(G, args)))
    noise_key = G.family == "stylegan2" and args.noise_mode == "random"
    start = time.perf_counter()
    images = []
    for lo in range(0, args.num, args.batch_size):
        sl = slice(lo, lo + args.batch_size)
        extra = {"key": jax.random.fold_in(k_noise, lo)} if noise_key else {}
        images.append(np.asarray(generate(G.params, z[sl], None if c is None else c[sl], **extra)))
    seconds = time.perf_counter() - start
    grid = image_grid(to_uint8(np.concatenate(images)), cols=args.cols)
    out = save_png(args.out, grid)
    print(f"{G}\nwrote {args.num} samples to {out} ({seconds:.1f} s, seed {args.seed}, "
          f"truncation_psi {args.truncation_psi})")
    return 0


def _convert(args) -> int:
    import latentjax as lj

    G = lj.load_generator(args.source, ema=not args.no_ema)
    out = lj.save_generator(G, args.out_dir)
    print(f"{G}\nwrote {out}")
    return 0


def _info(args) -> int:
    import latentjax as lj

    G = lj.load_generator(args.checkpoint, ema=not args.no_ema)
    count = sum(int(np.size(x)) for x in jax.tree.leaves(G.params))
    print(json.dumps({"family": G.family, "parameters": count, "num_ws": getattr(G, "num_ws", None), "layers": list(G.layer_names),
                      "config": G.config.to_dict(), "metadata": G.metadata}, indent=1))
    return 0


def parse_config_flags(argv, command: str, define_extra=None):
    """`--config FILE[:variant] --config.field=value ... --workdir DIR` through ml_collections' config flags.

    `define_extra(flag_values)` may declare more flags (e.g. `train`'s multi-process ones). Returns the
    parsed `absl.flags.FlagValues` (`.config` is the ConfigDict with overrides applied).
    """
    from absl import flags
    from ml_collections import config_flags

    argv = [f"latentjax {command}"] + list(argv)
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file (get_config), optionally FILE:variant",
                                    flag_values=values, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "output directory", flag_values=values)
    if define_extra is not None:
        define_extra(values)
    try:
        rest = values(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        raise SystemExit(f"error: {command}: bad flags: {e!r}") from None
    if len(rest) > 1 or values.config is None or not values.workdir:
        raise SystemExit(f"error: {command} takes --config FILE[:variant], --config.<field>=VALUE overrides and "
                         f"--workdir DIR; got {argv[1:]}")
    return values


def _invert(args) -> int:
    from latentjax.inversion.batch import invert_command

    return invert_command(args)


def _train(args) -> int:
    from latentjax.train.launch import main as train_main

    return train_main(args.flags)


def _discover(args) -> int:
    from latentjax.directions.discover import describe, discover

    values = parse_config_flags(args.flags, "discover")
    result = discover(values.config, values.workdir)
    print(describe(result, values.workdir))
    return 0


def _walk(args) -> int:
    import latentjax as lj
    from latentjax.directions import Directions
    from latentjax.directions.discover import write_walks

    G = lj.load_generator(args.generator)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_checkpoint(p, name="checkpoint"):
        p.add_argument(name, help="checkpoint: NVIDIA .pkl, .pt (+ .json), rosinality .pt, PGGAN .pth, BigGAN directory or latentjax directory")
        p.add_argument("--no-ema", action="store_true", help="use the training copy (G / g / netG) instead of the EMA one")

    p = sub.add_parser("generate", help="sample a grid of images from a generator")
    add_checkpoint(p)
    p.add_argument("--out", default="out/samples.png", help="PNG file to write")
    p.add_argument("--num", type=int, default=16, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation-psi", type=float, default=1.0)
    p.add_argument("--truncation-cutoff", type=int, default=None, help="truncate only the first N ws")
    p.add_argument("--class-index", type=int, default=None, help="class label (conditional models; default random)")
    p.add_argument("--noise-mode", choices=("const", "random", "none"), default="const")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--cols", type=int, default=None, help="grid columns (default: about sqrt(num))")
    p.set_defaults(func=_generate)

    p = sub.add_parser("convert", help="convert a checkpoint to the latentjax format")
    add_checkpoint(p, "source")
    p.add_argument("out_dir", help="output directory (config.json + params/)")
    p.set_defaults(func=_convert)

    p = sub.add_parser("info", help="print a generator's architecture and provenance")
    add_checkpoint(p)
    p.set_defaults(func=_info)

    p = sub.add_parser("discover", help="find latent directions and draw them (directions.npz, grids, GIFs, "
                                        "report.html)",
                       description="latentjax discover --config configs/sefa.py[:smoke] --config.generator=PATH "
                                   "[--config.<field>=VALUE ...] --workdir DIR")
    p.set_defaults(func=_discover, takes_config_flags=True)

    from latentjax.inversion.batch import add_invert_arguments

    p = sub.add_parser("invert", help="invert a directory of PNG images into latents (resumable)")
    add_checkpoint(p)
    add_invert_arguments(p)
    p.set_defaults(func=_invert)

    p = sub.add_parser("train", help="train a learned method; rerunning on the same work dir resumes",
                       description="latentjax train --config configs/x.py[:smoke] [--config.<field>=VALUE ...] "
                                   "--workdir DIR [--coordinator_address HOST:PORT --num_processes N --process_id I]")
    p.set_defaults(func=_train, takes_config_flags=True)

    p = sub.add_parser("walk", help="render walks along saved directions for given seeds")
    p.add_argument("directions", help="a directions .npz (from discover)")
    p.add_argument("--generator", required=True, help="the generator the directions belong to")
    p.add_argument("--workdir", required=True, help="output directory")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--indices", type=int, nargs="+", default=None, help="directions to draw (default: all)")
    p.add_argument("--kind", choices=("linear", "iso_density"), default="linear")
    p.add_argument("--num-steps", type=int, default=7, help="odd: the centre column is the original")
    p.add_argument("--distance", type=float, default=3.0, help="steps run over [-distance, distance]")
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=_walk)
    return parser


def main(argv=None) -> int:
    jax.config.update("jax_threefry_partitionable", True)
    parser = build_parser()
    # Commands that read ml_collections config flags (--config.x=...) get the arguments argparse leaves.
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "takes_config_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.flags = rest
    try:
        return args.func(args)
    except ValueError as e:   # CheckpointError and bad arguments found by the library: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
