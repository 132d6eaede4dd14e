"""Convert a pytorch_GAN_zoo ProgressiveGAN checkpoint to the latentjax format.

    python convert/pggan.py SRC OUT_DIR [--no-ema]

SRC: a `.pth` written by the reference's `ProgressiveGAN.save()` (e.g. the torch.hub `PGAN`
models). The averaged generator `avgG` is converted unless `--no-ema` selects `netG`. Runs on
CPU; reads nothing but tensors and plain config fields from SRC.
"""

import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from latentjax import CheckpointError, save_generator  # noqa: E402
from latentjax.models.pggan_convert import load_pggan  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="pytorch_GAN_zoo checkpoint (.pth)")
    parser.add_argument("out_dir", help="output directory (config.json + params/)")
    parser.add_argument("--no-ema", action="store_true", help="convert netG instead of the averaged avgG")
    args = parser.parse_args(argv)
    try:
        G = load_pggan(args.source, ema=not args.no_ema)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{G}\nwrote {save_generator(G, args.out_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
