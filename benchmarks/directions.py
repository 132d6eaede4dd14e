"""Wall time of direction discovery, and forward- against reverse-mode Jacobians, per generator.

    python benchmarks/directions.py                                  # fixtures + a 256x256 random-weight model
    python benchmarks/directions.py --models fixture-ada32 --ganspace-samples 1000000

Methods: SeFa (closed form), GANSpace (PCA of `--ganspace-samples` w samples, streamed), and
the Jacobian directions (`--jacobian-samples` latents, forward mode, `mode='averaged'`: one
eigendecomposition, so the time is the Jacobians'; `benchmarks/lowrank_modes.py` times both modes). Times are end to end, as a
user calls the method, compilation included.

Jacobian of the image (channels averaged) w.r.t. w, per latent: forward mode (`forward_jacobian`:
`jax.linearize` + vmapped JVPs over chunks of tangents, one per latent dimension D) against
reverse mode (`jax.jacrev`: one VJP per pixel P), in the same run, after a warm-up, median of
repeats. Where a full Jacobian would take too long (more than `--max-columns` tangents or
`--max-rows` pixels) the time of that many columns or rows is measured and scaled by D or P;
such rows say "scaled". Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import latentjax as lj
from latentjax.directions import forward_jacobian, ganspace, jacobian, sefa
from latentjax.latent import latent_space
from timing import describe_environment, median_seconds, write_record
import zoo

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures" / "stylegan2"
MODELS = {"fixture-ada32": FIXTURES / "ada_s32.pt", "fixture-gray16": FIXTURES / "ada_gray_s16.pt",
          "config-f-256": None}


def load(name: str):
    if MODELS[name] is None:
        G = zoo.init("stylegan2-256")
    else:
        G = lj.load_generator(MODELS[name])
    jax.block_until_ready(G.params)  # initialisation is asynchronous: keep it out of the first method's time
    return G


def _seconds(run) -> float:
    start = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start


def jacobian_times(G, space, chunk: int, max_columns: int, max_rows: int, repeats: int,
                   budget_s: float | None = None) -> dict:
    """Seconds per latent for the forward- and reverse-mode Jacobian of the channel-mean image."""
    w = space.sample(jax.random.key(0), 1)[0]
    dim = space.direction_dim
    pixels = G.img_resolution ** 2
    columns, rows = min(dim, max_columns), min(pixels, max_rows)

    def image(params, w, v):  # the image as a function of the first `columns` direction coordinates
        v = jnp.zeros((dim,)).at[: v.shape[0]].set(v)
        return jnp.mean(space.decode(params, (w + space.embed(v))[None])[0], axis=-1)

    # params and w are arguments, not constants, so that XLA cannot fold the work away
    forward = jax.jit(lambda p, w: forward_jacobian(lambda v: image(p, w, v), jnp.zeros((columns,)), chunk))
    reverse = jax.jit(lambda p, w: jax.jacrev(lambda v: image(p, w, v).reshape(-1)[:rows])(jnp.zeros((dim,))))
    fwd = median_seconds(lambda: forward(G.params, w), repeats, budget_s) * dim / columns
    rev = median_seconds(lambda: reverse(G.params, w), repeats, budget_s) * pixels / rows
    return {"dim": dim, "pixels": pixels, "forward_s": fwd, "reverse_s": rev, "reverse_over_forward": rev / fwd,
            "forward_columns_measured": columns, "reverse_rows_measured": rows,
            "scaled": columns < dim or rows < pixels}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ganspace-samples", type=int, default=100_000)
    parser.add_argument("--jacobian-samples", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=16, help="tangents per vmapped JVP")
    parser.add_argument("--max-columns", type=int, default=64, help="forward mode: tangents timed (then scaled)")
    parser.add_argument("--max-rows", type=int, default=1024, help="reverse mode: pixels timed (then scaled)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/directions.json")
    args = parser.parse_args(argv)
    jax.config.update("jax_threefry_partitionable", True)

    print(describe_environment())
    methods, jacobians = [], []
    for name in args.models:
        G = load(name)
        space = latent_space(G, "w+")
        small = G.img_resolution ** 2 <= args.max_rows and G.w_dim <= args.max_columns
        runs = {"sefa": lambda: sefa(space, k=10),
                "ganspace": lambda: ganspace(space, k=10, num_samples=args.ganspace_samples, batch_size=1000,
                                             progress=False)}
        if small:  # the whole method end to end where a full Jacobian is affordable here
            runs["jacobian"] = lambda: jacobian(space, k=10, num_samples=args.jacobian_samples, mode="averaged",
                                                chunk_size=args.chunk, progress=False)
        for method, run in runs.items():
            seconds = _seconds(lambda: run().vectors)
            settings = {"ganspace": {"num_samples": args.ganspace_samples},
                        "jacobian": {"num_samples": args.jacobian_samples, "mode": "averaged"}}.get(method, {})
            methods.append({"model": name, "method": method, "seconds": seconds, **settings})
            print(f"{name:<15} {method:<9} {seconds:9.2f} s  {settings or ''}", flush=True)
        times = jacobian_times(G, space, args.chunk, args.max_columns, args.max_rows, args.repeats)
        jacobians.append({"model": name, **times})

    print(f"\n{'model':<15} {'D':>4} {'pixels':>7} {'forward s':>10} {'jacrev s':>10} {'jacrev/fwd':>10}")
    for row in jacobians:
        note = "  (scaled from {forward_columns_measured} columns / {reverse_rows_measured} rows)".format(**row)
        print(f"{row['model']:<15} {row['dim']:4d} {row['pixels']:7d} {row['forward_s']:10.3f} "
              f"{row['reverse_s']:10.3f} {row['reverse_over_forward']:9.1f}x{note if row['scaled'] else ''}")
    write_record(args.out, "directions", repeats=args.repeats, chunk=args.chunk, methods=methods,
                 jacobian_modes=jacobians)


if __name__ == "__main__":
    main()
