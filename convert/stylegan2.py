"""Convert a StyleGAN2 checkpoint to the latentjax format: python convert/stylegan2.py SRC OUT_DIR [--no-ema].

SRC: an NVIDIA network snapshot (.pkl), an NVIDIA state dict (.pt with a .json of the same stem
holding init_kwargs) or a rosinality .pt. Runs on CPU; reads nothing but tensors from SRC.
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from latentjax.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
