"""`latentjax generate`: sample a grid of images from a generator."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.latent import class_vectors, num_classes, sample_classes
from latentjax.load import load_generator
from latentjax.programs.outputs import output_file, write
from latentjax.sharding import batched_map
from latentjax.viz import encode_png, image_grid, to_uint8


def _generate_options(G, args) -> dict:
    """The keyword arguments of `G.generate` that this family takes, bound as Python values.

    Truncation stays a Python float: BigGAN selects its batch-norm statistics from it exactly
    as the reference does, and ProgressiveGAN refuses any value but 1.
    """
    if G.style_based:
        return {"truncation_psi": args.truncation_psi, "truncation_cutoff": args.truncation_cutoff,
                "noise_mode": args.noise_mode}
    return {"truncation_psi": args.truncation_psi}


def main(args) -> int:
    """`latentjax generate`: a grid of samples."""
    out = output_file(args.out, "--out", (".png",))
    G = load_generator(args.checkpoint, ema=not args.no_ema)
    key = jax.random.key(args.seed)
    k_z, k_c, k_noise = jax.random.split(key, 3)
    z = G.sample_z(k_z, args.num, args.truncation_psi)  # BigGAN: truncation also bounds z
    c = None
    if G.c_dim:   # class indices as the latent spaces count them (PGGAN: combinations of attribute values)
        if args.class_index is not None and not 0 <= args.class_index < num_classes(G):
            raise SystemExit(f"error: --class-index must be in [0, {num_classes(G)}) for {args.checkpoint}")
        c = (class_vectors(G, jnp.full((args.num,), args.class_index)) if args.class_index is not None
             else sample_classes(G, k_c, args.num))
    elif args.class_index is not None:
        raise SystemExit(f"error: {args.checkpoint} is unconditional; --class-index does not apply")
    options = _generate_options(G, args)
    noise_key = G.style_based and args.noise_mode == "random"

    @jax.jit
    def generate(params, batch):  # a batch's noise from fold_in(k_noise, index of its first sample)
        extra = {"key": jax.random.fold_in(k_noise, batch["index"][0])} if noise_key else {}
        return G.generate(params, batch["z"], batch.get("c"), **options, **extra)

    batches = {"z": z, "index": np.arange(args.num), **({} if c is None else {"c": c})}
    start = time.perf_counter()
    images = batched_map(functools.partial(generate, G.params), batches, args.batch_size)
    seconds = time.perf_counter() - start
    grid = image_grid(to_uint8(images), cols=args.cols)
    write(out, encode_png(grid))
    print(f"{G}\nwrote {args.num} samples to {out} ({seconds:.1f} s, seed {args.seed}, "
          f"truncation_psi {args.truncation_psi})")
    return 0
