"""Convert a pytorch-pretrained-BigGAN directory (config.json + pytorch_model.bin) to the latentjax
format: python convert/biggan.py SRC_DIR OUT_DIR. Runs on CPU; reads nothing but tensors from SRC_DIR.
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from latentjax.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
