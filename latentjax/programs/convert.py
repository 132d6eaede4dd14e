"""`latentjax convert` and `latentjax info`: checkpoints in, a latentjax directory or a description out."""

from __future__ import annotations

import json

import jax
import numpy as np

from latentjax.load import load_generator, save_generator
from latentjax.programs.outputs import output_dir


def convert(args) -> int:
    """`latentjax convert`: any supported checkpoint to a latentjax directory."""
    output_dir(args.out_dir, "out_dir")
    G = load_generator(args.source, ema=not args.no_ema)
    out = save_generator(G, args.out_dir)
    print(f"{G}\nwrote {out}")
    return 0


def info(args) -> int:
    """`latentjax info`: a generator's architecture and provenance as JSON."""
    G = load_generator(args.checkpoint, ema=not args.no_ema)
    count = sum(int(np.size(x)) for x in jax.tree.leaves(G.params))
    print(json.dumps({"family": G.family, "parameters": count, "num_ws": getattr(G, "num_ws", None), "layers": list(G.layer_names),
                      "config": G.config.to_dict(), "metadata": G.metadata}, indent=1))
    return 0
