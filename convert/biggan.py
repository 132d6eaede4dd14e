"""Convert a pytorch-pretrained-BigGAN directory to the latentjax format:
python convert/biggan.py SRC_DIR OUT_DIR.

SRC_DIR holds `config.json` and `pytorch_model.bin` (for example biggan-deep-128, -256, -512).
Runs on CPU; reads nothing but tensors from SRC_DIR.
"""

import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import latentjax as lj  # noqa: E402
from latentjax.models.biggan_convert import load_biggan_dir  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="directory with config.json + pytorch_model.bin")
    parser.add_argument("out_dir", help="output directory (config.json + params/)")
    args = parser.parse_args(argv)
    try:
        G = load_biggan_dir(args.source)
    except lj.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = lj.save_generator(G, args.out_dir)
    print(f"{G}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
