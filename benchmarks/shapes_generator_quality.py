"""Quality of a shapes generator, measured with the analytic factor read-out.

    python benchmarks/shapes_generator_quality.py                        # the built-in generator
    python benchmarks/shapes_generator_quality.py --generator runs/shapes_gan/generator

Prints the valid fraction (at the read-out's tolerance 0.01 and looser ones), percentiles of the
rerender error and, per factor, the distance between the generated and the true
distribution (`latentjax.shapes.quality`: total variation for shape, W1 for the rest),
next to the same numbers for true renders (the noise floor for that sample count), and writes
JSON to benchmarks/results/shapes_generator_quality.json. A generator that comes from the supervised
warm start (`latentjax.tasks.distill`, its metadata or its warm start's names the seeding decoder) also
gets its agreement with that decoder's factors (`quality.factor_agreement` of each image with its
latent's decoded factors): how much of the seeded latent organisation it kept, the mean signed
error by tenths of each factor's decoded value (`quality.factor_bias`: whether it draws a range
narrower than asked; `--bias-tol` counts samples at a looser tolerance), and its valid share
by the latents' distance from the decoder's shape boundaries (`seeding.shape_margin`); `--boundary-scan N` walks N latents straight across a boundary
and reports the valid share and how far w has moved along the way. `--refit-steps N` asks, per
shape class, whether the images are off or only their read-out: the valid share and median error
again after fitting each sample's factors to its image (`quality.refitted_errors`, the first `--refit-samples` samples).
`--wrap-samples N` asks whether w joins the ends of the periodic factors (hue, rotation:
`quality.wrap_paths`): the share of straight paths between samples on either side of 0 that go
the long way round, against paths across 0.5. `--sharpen WIDTH BAND` measures the same samples
moved off the seeding decoder's shape boundaries (`seeding.sharpen_boundaries`): the valid share
this generator would have if it switched shapes BAND / WIDTH times faster. `--stretch K` measures
the same samples with the decoder's coordinates of `--stretch-factors` (rotation, background) scaled
by K: asked a wider range, does it draw one, and at what cost in validity? `--invert-ends N` asks
whether the synthesis network can draw the ends of those factors at all: N samples from each
factor's outer 7% at each end and N from the middle, each w optimised (`--invert-steps` Adam steps)
towards the render of its decoded factors, valid share and factor error before and after.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import latentjax as lj
from latentjax import shapes
from latentjax.ops.layers import normalize_2nd_moment
from latentjax.shapes import quality as shapes_quality
from latentjax.shapes import seeding
from latentjax.viz.report import markdown_table
from timing import write_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="builtin:shapes")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refit-steps", type=int, default=0, help="> 0: also refit factors this many Adam steps")
    parser.add_argument("--refit-samples", type=int, default=500)
    parser.add_argument("--boundary-scan", type=int, default=0,
                        help="> 0: walk this many latents straight across a shape boundary (seeded generators)")
    parser.add_argument("--wrap-samples", type=int, default=0,
                        help="> 0: from this many w samples, walk straight across the ends of hue and rotation")
    parser.add_argument("--sharpen", type=float, nargs=2, metavar=("WIDTH", "BAND"),
                        help="also read the samples moved off the shape boundaries (seeded generators)")
    parser.add_argument("--bias-tol", type=float, default=shapes.reading.VALID_TOL,
                        help="rerender tolerance of the samples the signed-error table counts")
    parser.add_argument("--stretch", type=float, metavar="K",
                        help="also read the samples with the decoder's coordinates of --stretch-factors scaled by K")
    parser.add_argument("--stretch-factors", nargs="+", default=["rotation", "background"],
                        choices=shapes.FACTOR_NAMES[1:])
    parser.add_argument("--invert-ends", type=int, default=0, metavar="N",
                        help="> 0: fit w to the renders of N samples at the ends of each of --stretch-factors")
    parser.add_argument("--invert-steps", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/shapes_generator_quality.json")
    args = parser.parse_args()

    G = lj.load_generator(args.generator)
    key = jax.random.key(args.seed)
    start = time.perf_counter()
    batches = list(shapes_quality.generated_batches(G, key, args.num_samples, args.batch_size))  # read once, used by every table
    generated = shapes_quality.summarize(images for _, images in batches)
    seconds = time.perf_counter() - start
    floor = shapes_quality.true_render_quality(key, G.img_resolution, args.num_samples, args.batch_size)

    names = [f"valid at rerender error < {tol}" for tol in generated["valid_fraction_at"]]
    names += [f"rerender error p{p} (one object)" for p in generated["rerender_error_percentiles"]]
    names += [f"{name} distance" for name in shapes.FACTOR_NAMES]
    names += [f"{name} distance (one object)" for name in shapes.FACTOR_NAMES]
    rows = [(generated[group][k], floor[group][k]) for group in ("valid_fraction_at", "rerender_error_percentiles")
            for k in generated[group]]
    rows += [(generated[group][name], floor[group][name]) for group in ("distances", "distances_one_object")
             for name in shapes.FACTOR_NAMES]
    print(f"{args.generator}: {args.num_samples} samples, seed {args.seed}, {seconds:.1f} s\n")
    print("| measure | generator | true renders |\n|---|---:|---:|")
    for name, (ours, truth) in zip(names, rows):
        print(f"| {name} | {ours:.4f} | {truth:.4f} |")

    print("\nvalid samples by tenths of each factor's range (rotation: non-circles):")
    for name, counts in generated["histograms"].items():
        print(f"| {name} | " + " ".join(f"{c:>4}" for c in counts) + " |")

    agreement, bias, valid_by, margins, sharpened, seed = None, None, None, None, None, seeding.spec_of(G.metadata)
    stretched, inverted = None, None
    if seed is not None:
        decoder = seeding.decoder_from(seed, G.z_dim)
        pairs = [(images, seeding.decode_factors(decoder, z)) for z, images in batches]  # each image, its asked factors
        agreement = shapes_quality.factor_agreement(pairs)
        print(f"\nagreement with the seeding decoder {seed} over {agreement['num_valid']} valid samples:")
        print("| " + " | ".join(k for k in agreement if k != "num_valid") + " |")
        print("| " + " | ".join(f"{v:.4f}" for k, v in agreement.items() if k != "num_valid") + " |")
        bias = shapes_quality.factor_bias(pairs, tol=args.bias_tol)
        print(f"\nmean signed error (read-out - decoder) of the samples valid at {args.bias_tol} by tenths of the"
              " decoder's value:")
        for name, means in bias.items():
            print(f"| {name} | " + " ".join(f"{m:+.3f}" for m in means) + " |")
        valid_by = shapes_quality.valid_by_factor(pairs)
        print("\nvalid share by tenths of the decoder's value:")
        for name, shares in valid_by.items():
            print(f"| {name} | " + " ".join(f"{v:.2f}" for v in shares) + " |")
        margins = {"bands": margin_table(decoder, batches),
                   "scan": boundary_scan(G, decoder, key, args.boundary_scan) if args.boundary_scan else None}
        if args.sharpen:
            sharpened = sharpened_quality(G, decoder, batches, *args.sharpen)
        if args.stretch:
            stretched = stretched_quality(G, decoder, seed, batches, args.stretch, args.stretch_factors)
        if args.invert_ends > 0:
            inverted = ends_inversion(G, decoder, key, args.invert_ends, args.invert_steps, args.stretch_factors)

    refit = refit_table(G, key, args.refit_samples, args.refit_steps) if args.refit_steps > 0 else None
    wrap = wrap_table(G, key, args.wrap_samples) if args.wrap_samples > 0 else None
    write_record(args.out, "shapes_generator_quality", generator=args.generator, seed=args.seed, seconds=seconds,
                 generated=generated, true_renders=floor, seed_agreement=agreement, seed_bias=bias,
                 bias_tol=args.bias_tol, seed_valid_by_factor=valid_by, seeding=seed, refit=refit,
                 shape_margin=margins, wrap=wrap, sharpened=sharpened, stretched=stretched, inverted_ends=inverted)


def wrap_table(G, key, num_samples: int) -> dict:
    """`shapes_quality.wrap_paths` for each periodic factor in w: does the latent space join 1 to 0?"""
    wrap = {f: shapes_quality.wrap_paths(G, key, f, num_samples=num_samples) for f in shapes.world.PERIODIC_FACTORS}
    print(f"\nstraight paths in w between valid samples of {num_samples} draws, across the ends (0 | 1) and "
          "across 0.5:\n| factor | pairs across the ends | long way round | pairs across 0.5 | long way round |\n"
          "|---|---:|---:|---:|---:|")
    for f, row in wrap.items():
        print(f"| {f} | {row['wrap']['pairs']} | {row['wrap']['long_way']:.2f} | {row['control']['pairs']} | "
              f"{row['control']['long_way']:.2f} |")
    return wrap


def sharpened_quality(G, decoder, batches, width: float, band: float) -> dict:
    """`shapes_quality.summarize` of the same latents moved off the decoder's shape boundaries
    (`seeding.sharpen_boundaries`, margins below `width` stretched to below `band`), every other factor
    kept. Each z is first scaled to the norm StyleGAN2's mapping scales it to, so the shape the
    decoder reads is the one the generator reads."""
    decode = jax.jit(lambda z: jnp.clip(lj.latent_space(G, "z").decode(G.params, z), -1.0, 1.0))
    moved = (seeding.sharpen_boundaries(decoder, normalize_2nd_moment(z), width, band) for z, _ in batches)
    result = shapes_quality.summarize(decode(z) for z in moved)
    print(f"\nthe same latents moved off the shape boundaries (margins below {width} stretched to below {band}): "
          f"valid {result['valid_fraction']:.4f}; distances " +
          ", ".join(f"{name} {value:.3f}" for name, value in result["distances"].items()))
    return {"width": width, "band": band, **result}


def stretched_quality(G, decoder, seed: dict, batches, scale: float, factors) -> dict:
    """`shapes_quality.summarize` of the same latents with the seeding decoder's coordinates of `factors`
    scaled by `scale` (`seeding.with_coordinates`; every other coordinate kept), with the signed error
    and valid share by tenths of the stretched values: a generator that draws a factor narrower than
    asked, asked wider, draws it wider only if its synthesis network can draw the ends."""
    periodic = seed.get("periodic", "line")
    if periodic != "line" and set(factors) & set(shapes.world.PERIODIC_FACTORS):
        periodic_factors = shapes.world.PERIODIC_FACTORS
        raise ValueError(f"--stretch scales a factor's coordinate, but this decoder lays {periodic_factors} on a "
                         f"{periodic}: stretch only {sorted(set(factors) - set(periodic_factors))}")
    index = [shapes.FACTOR_NAMES.index(name) for name in factors]
    decode = jax.jit(lambda z: jnp.clip(lj.latent_space(G, "z").decode(G.params, z), -1.0, 1.0))

    def stretch(z):
        z = normalize_2nd_moment(z)
        u = seeding.mixed_coordinates(decoder, z)
        return seeding.with_coordinates(decoder, z, [scale * c if i in index else c for i, c in enumerate(u)])

    pairs = [(decode(z), seeding.decode_factors(decoder, z)) for z in (stretch(z) for z, _ in batches)]
    result = shapes_quality.summarize(images for images, _ in pairs)
    bias, valid_by = shapes_quality.factor_bias(pairs), shapes_quality.valid_by_factor(pairs)
    print(f"\nthe same latents with the decoder's {', '.join(factors)} coordinates scaled by {scale}: valid "
          f"{result['valid_fraction']:.4f}; distances " +
          ", ".join(f"{name} {value:.3f}" for name, value in result["distances"].items()))
    for name in factors:
        print(f"| {name} signed error | " + " ".join(f"{m:+.3f}" for m in bias[name]) + " |")
        print(f"| {name} valid share | " + " ".join(f"{v:.2f}" for v in valid_by[name]) + " |")
    return {"scale": scale, "factors": list(factors), **result, "bias": bias, "valid_by_factor": valid_by}


def ends_inversion(G, decoder, key, num_samples: int, steps: int, factors, end: float = 0.07) -> dict:
    """Per group (each of `factors` within `end` of 0 or 1; the middle: all of them within 0.2-0.8) of
    `num_samples` prior draws: valid share and median error of each factor before and after fitting
    one w per sample (Adam, lr 0.01, from the sample's own w) to the render of its decoded factors
    (rotation's error: non-circles).
    Fitting frees the drawing from the mapping: what stays invalid, the synthesis cannot draw."""
    z = normalize_2nd_moment(jax.random.normal(key, (200 * num_samples, G.z_dim)))
    asked = {name: np.asarray(v) for name, v in seeding.decode_factors(decoder, z).items()}
    groups = {f"{name} ends": (asked[name] < end) | (asked[name] > 1 - end) for name in factors}
    groups["middle"] = np.all([np.abs(asked[name] - 0.5) < 0.3 for name in factors], axis=0)
    space = lj.latent_space(G, "w")
    decode = jax.jit(lambda w: space.decode(G.params, w))
    tx = optax.adam(0.01)

    @jax.jit
    def step(w, state, target):
        grad = jax.grad(lambda w: jnp.mean(jnp.square(decode(w) - target)))(w)
        updates, state = tx.update(grad, state)
        return optax.apply_updates(w, updates), state

    def fit(w, target):  # a Python loop: XLA on CPU runs these convolutions ~5x slower inside lax.scan
        state = tx.init(w)
        for _ in range(steps):
            w, state = step(w, state, target)
        return w

    def measure(w, factors_of):
        out = shapes.reading.readout(jnp.clip(decode(w), -1.0, 1.0))
        errors = shapes.reading.factor_errors(out, factors_of)  # rotation: NaN on circles
        return {"valid": float(np.mean(np.asarray(out["valid"]))),
                "median_error": {name: float(np.nanmedian(np.asarray(errors[name]))) for name in factors}}

    table = {}
    for group, mask in groups.items():
        chosen = z[np.flatnonzero(mask)[:num_samples]]
        factors_of = seeding.decode_factors(decoder, chosen)
        w = G.mapping(G.params, chosen)[:, 0]
        target = shapes.world.render(factors_of, G.img_resolution).images
        table[group] = {"samples": int(chosen.shape[0]), "mapping": measure(w, factors_of),
                        "fitted": measure(fit(w, target), factors_of)}
    print(f"\nw fitted ({steps} Adam steps) to the renders of the decoded factors:\n" + markdown_table(
        ["group", "samples", "valid (mapping)", "valid (fitted)"] + [f"{n} error (fitted)" for n in factors],
        [[group, row["samples"], f"{row['mapping']['valid']:.2f}", f"{row['fitted']['valid']:.2f}"]
         + [f"{row['fitted']['median_error'][n]:.3f}" for n in factors] for group, row in table.items()]))
    return table


MARGIN_EDGES = (0.0, 0.05, 0.1, 0.2, 0.4, np.inf)


def margin_table(decoder, batches) -> list[dict]:
    """Valid share of (z, images) batches by the latents' distance from the seeding decoder's shape boundaries
    (`seeding.shape_margin`, standard-normal units): where a generator switches shapes too slowly,
    its samples near a boundary are morphs that no clean render matches."""
    margin, valid = [], []
    for z, images in batches:
        margin.append(np.asarray(seeding.shape_margin(decoder, z)))
        valid.append(np.asarray(shapes.reading.readout(images)["valid"]))
    margin, valid = np.concatenate(margin), np.concatenate(valid)
    table = []
    for low, high in zip(MARGIN_EDGES[:-1], MARGIN_EDGES[1:]):
        band = (margin >= low) & (margin < high)
        table.append({"margin": f"{low}-{high}", "share": float(band.mean()),
                      "valid": float(valid[band].mean()) if band.any() else float("nan")})
    print("\nvalid share by distance of the latent from a shape boundary of the seeding decoder:\n" + markdown_table(
        ["shape margin", "share of samples", "valid"],
        [[row["margin"], f"{row['share']:.3f}", f"{row['valid']:.3f}"] for row in table]))
    return table


def refit_table(G, key, num_samples: int, steps: int) -> dict:
    """Per shape class of one-object samples: valid share and median error, read-out vs refitted factors."""
    images = next(shapes_quality.generated_batches(G, key, num_samples, num_samples))[1]
    errors = {k: np.asarray(v) for k, v in shapes_quality.refitted_errors(images, steps).items()}
    tol, table = shapes.reading.VALID_TOL, {}
    for k, name in [*enumerate(shapes.SHAPES), (None, "all")]:
        mask = errors["one_object"] & ((errors["shape"] == k) if k is not None else True)
        if not mask.any():
            continue
        table[name] = {"samples": int(mask.sum()), **{
            f"{stat} ({which})": float(f(errors[which][mask])) for which in ("readout", "refitted")
            for stat, f in (("valid", lambda e: np.mean(e < tol)), ("p50", np.median))}}
    print(f"\nrefitted factors ({steps} Adam steps, first {num_samples} samples; one-object samples, "
          f"valid below {tol}):\n" + markdown_table(
              ["shape", "samples", "valid (read-out)", "valid (refitted)", "p50 (read-out)", "p50 (refitted)"],
              [[name, row["samples"], f"{row['valid (readout)']:.3f}", f"{row['valid (refitted)']:.3f}",
                f"{row['p50 (readout)']:.4f}", f"{row['p50 (refitted)']:.4f}"] for name, row in table.items()]))
    return table


def boundary_scan(G, decoder, key, num_latents: int, offsets=np.linspace(-0.3, 0.3, 13)) -> list[dict]:
    """Latents moved onto a shape boundary, then walked straight across it (along the gradient of the
    shape coordinate, scaled so that the coordinate moves by the offset): per offset the valid share
    and the median fraction of the walk's w displacement covered so far. A linear rise of that fraction
    means the mapping does not switch at the boundary; a step, that it does."""
    shape_coordinate = lambda z: seeding.mixed_coordinates(decoder, z[None])[0][0]  # noqa: E731
    gradient = jax.vmap(jax.grad(shape_coordinate))
    z = seeding.boundary_latents(decoder, key, num_latents, G.z_dim, 16)
    boundaries = np.asarray(seeding.shape_boundaries())
    for _ in range(5):  # Newton steps onto the nearest boundary
        u = jax.vmap(shape_coordinate)(z)
        target = boundaries[np.argmin(np.abs(np.asarray(u)[:, None] - boundaries), axis=1)]
        g = gradient(z)
        z = z + ((target - u) / np.sum(g * g, axis=1))[:, None] * g
    g = gradient(z)
    direction = g / np.sum(g * g, axis=1, keepdims=True)
    generate = jax.jit(lambda z: jnp.clip(G.generate(G.params, z), -1.0, 1.0))
    ws = np.stack([np.asarray(G.mapping(G.params, z + t * direction)[:, 0]) for t in offsets])
    span = ws[-1] - ws[0]
    covered = np.median(np.einsum("tnw,nw->tn", ws - ws[0], span) / np.sum(span * span, axis=-1), axis=1)
    table = [{"offset": float(t), "valid": float(np.mean(np.asarray(
        shapes.reading.readout(generate(z + t * direction))["valid"]))), "w_covered": float(c)}
        for t, c in zip(offsets, covered)]
    print(f"\n{num_latents} latents walked across a shape boundary:\n" + markdown_table(
        ["offset", "valid", "w displacement covered"],
        [[f"{row['offset']:+.2f}", f"{row['valid']:.3f}", f"{row['w_covered']:.2f}"] for row in table]))
    return table


if __name__ == "__main__":
    main()
