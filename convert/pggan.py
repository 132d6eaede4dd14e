"""Convert a pytorch_GAN_zoo ProgressiveGAN checkpoint (.pth) to the latentjax format:
python convert/pggan.py SRC OUT_DIR [--no-ema] (`--no-ema` converts netG instead of the averaged avgG).
Runs on CPU; reads nothing but tensors and plain config fields from SRC.
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from latentjax.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
