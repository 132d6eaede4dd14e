"""The `latentjax` command (also `python -m latentjax`): argparse over `latentjax.programs`.

Programs are imported when their command runs, so that `latentjax --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import jax

from latentjax.programs.flags import finite_float, non_negative_int, positive_float, positive_int, seed


def _generate(args) -> int:
    from latentjax.programs import generate

    return generate.main(args)


def _convert(args) -> int:
    from latentjax.programs import convert

    return convert.convert(args)


def _info(args) -> int:
    from latentjax.programs import convert

    return convert.info(args)


def _invert(args) -> int:
    from latentjax.programs import invert

    return invert.main(args)


def _train(args) -> int:
    from latentjax.programs import train

    return train.main(args.flags)


def _discover(args) -> int:
    from latentjax.programs import discover

    return discover.main(args.flags)


def _dissect(args) -> int:
    from latentjax.programs import dissect

    return dissect.main(args.flags)


def _score(args) -> int:
    from latentjax.programs import score

    return score.main(args.flags)


def _walk(args) -> int:
    from latentjax.programs import walk

    return walk.main(args)


def _sequence(args) -> int:
    from latentjax.programs import sequence

    return sequence.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_checkpoint(p, name="checkpoint"):
        p.add_argument(name, help="checkpoint: NVIDIA .pkl, .pt (+ .json), rosinality .pt, PGGAN .pth, BigGAN directory or latentjax directory")
        p.add_argument("--no-ema", action="store_true", help="use the training copy (G / g / netG) instead of the EMA one")

    p = sub.add_parser("generate", help="sample a grid of images from a generator")
    add_checkpoint(p)
    p.add_argument("--out", default="out/samples.png", help="PNG file to write")
    p.add_argument("--num", type=positive_int, default=16, help="number of samples")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--truncation-psi", type=finite_float, default=1.0)
    p.add_argument("--truncation-cutoff", type=non_negative_int, default=None, help="truncate only the first N ws")
    p.add_argument("--class-index", type=non_negative_int, default=None,
                   help="class label (conditional models; default random)")
    p.add_argument("--noise-mode", choices=("const", "random", "none"), default="const")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--cols", type=positive_int, default=None, help="grid columns (default: about sqrt(num))")
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

    p = sub.add_parser("dissect", help="which units of a shapes generator's layers detect which concepts (tables, "
                                       "heatmaps, report.html)",
                       description="latentjax dissect --config configs/dissect.py[:smoke] [--config.<field>=VALUE ...] "
                                   "--workdir DIR")
    p.set_defaults(func=_dissect, takes_config_flags=True)

    p = sub.add_parser("score", help="a table of sampled latents and their scores, in resumable shards",
                       description="latentjax score --config configs/score.py[:smoke] [--config.<field>=VALUE ...] "
                                   "--workdir DIR")
    p.set_defaults(func=_score, takes_config_flags=True)

    from latentjax.programs.invert import add_invert_arguments

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
    p.add_argument("--seeds", type=seed, nargs="+", default=[0])
    p.add_argument("--indices", type=int, nargs="+", default=None, help="directions to draw (default: all)")
    p.add_argument("--kind", choices=("linear", "iso_density"), default="linear")
    p.add_argument("--num-steps", type=positive_int, default=7, help="odd: the centre column is the original")
    p.add_argument("--distance", type=positive_float, default=3.0, help="steps run over [-distance, distance]")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.set_defaults(func=_walk)

    p = sub.add_parser("sequence", help="an identity-consistent image sequence from one identity image and a pose "
                                        "sequence (frames, GIF, metrics.json)")
    p.add_argument("--identity", required=True, help="the identity image (PNG / JPEG)")
    p.add_argument("--driver", required=True,
                   help="a directory of driver frames, or (shapes world) a JSON object of per-frame factor lists")
    p.add_argument("--mapper", default="builtin:shapes", help="an identity mapper directory, or builtin:shapes")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--batch-size", type=positive_int, default=64, help="frames per compiled call")
    p.add_argument("--frame-ms", type=positive_int, default=80, help="GIF frame duration")
    p.add_argument("--valid-tol", type=positive_float, default=0.01,
                   help="JSON drivers: the read-out's tolerance for frames it scores (0.01: clean renders only)")
    p.set_defaults(func=_sequence)
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
    except OSError as e:      # a file that cannot be read or written, found while working
        print(f"error: {e}", file=sys.stderr)
        return 2


def run() -> None:
    """The console entry point. A command that fails exits at once with its status: background threads
    (a checkpointer's, after a failed write) must not keep it alive. A successful one exits normally,
    so that pending writes finish."""
    try:
        code = main()
    except Exception:  # an unexpected error: its traceback, then exit even if threads are left
        traceback.print_exc()
        code = 1
    if code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(0)


if __name__ == "__main__":
    run()
