"""Guided extrapolation as data augmentation (Zheng et al.'s claim), end to end on the shapes world.

    python benchmarks/guided_extrapolation.py          # builtin:shapes, x >= 0.65 made rare; about an hour on 2 cores

A downstream model (a small CNN regressing the object's x, `latentjax.nn.recognizer` with one value
head) is trained on generator samples labelled by the read-out, from an unbalanced set: samples with
x >= `--threshold` (the rare region) kept at `--rare` out of `--common`. Three remedies are compared,
each adding the same number of images:

- **none**: the unbalanced set alone;
- **oversampling**: the rare samples repeated;
- **guided extrapolation**: common samples just below the threshold pushed along the linear-encoded
  semantics direction of x (`lj.directions.linear_semantics`, the regression's coefficient sets the
  step for a target gain of U(0.1, 0.35) in x), beyond the data's range, labelled by the read-out;

beside **natural**: as many samples drawn without regard to x (the balance of the generator's own
distribution). Each model is scored on held-out samples: mean absolute error of x in the rare and
the common region, and their mean (balanced). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import latentjax as lj
from latentjax.directions import linear_semantics
from latentjax.metrics.scorer import score_samples
from latentjax.nn.recognizer import Recognizer, RecognizerConfig
from timing import describe_environment, write_record

RESULTS = Path(__file__).parent / "results"
REMEDIES = ("none", "oversampling", "guided extrapolation", "natural samples")


def train_regressor(images, labels, steps: int, seed: int, batch: int = 64):
    """A small CNN regressing x from images, Adam 2e-3, batches drawn with replacement."""
    config = RecognizerConfig(images.shape[1], images.shape[3], ("x",), (1,), width=16, depth=4)
    net = Recognizer.init(config, jax.random.key(seed))
    tx = optax.adam(2e-3)

    @jax.jit
    def run(params, images, labels, keys):  # the data as arguments, not as constants of the program
        def step(state, key):
            params, opt = state
            index = jax.random.randint(key, (batch,), 0, labels.shape[0])
            loss = lambda p: jnp.mean((net.logits(p, images[index])["x"][:, 0] - labels[index]) ** 2)  # noqa: E731
            updates, opt = tx.update(jax.grad(loss)(params), opt)
            return (optax.apply_updates(params, updates), opt), None

        return jax.lax.scan(step, (params, tx.init(params)), keys)[0][0]

    keys = jax.random.split(jax.random.key(seed + 1), steps)
    return net, run(net.params, jnp.asarray(images), jnp.asarray(labels, jnp.float32), keys)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generator", default="builtin:shapes")
    parser.add_argument("--pool", type=int, default=16_000, help="scored generator samples to draw sets from")
    parser.add_argument("--threshold", type=float, default=0.65, help="x at and above this is the rare region")
    parser.add_argument("--common", type=int, default=3000)
    parser.add_argument("--rare", type=int, default=30)
    parser.add_argument("--added", type=int, default=800, help="images each remedy adds")
    parser.add_argument("--steps", type=int, default=1500, help="training steps of each downstream model")
    parser.add_argument("--tol", type=float, default=lj.shapes.reading.VALID_TOL,
                        help="the read-out's validity tolerance")
    parser.add_argument("--seeds", type=int, default=2, help="downstream models per remedy (seeds)")
    parser.add_argument("--remedies", nargs="+", default=list(REMEDIES), choices=REMEDIES,
                        help="the rows to train (each takes one downstream model per seed)")
    parser.add_argument("--out", default=str(RESULTS / "guided_extrapolation.json"))
    args = parser.parse_args(argv)

    print(describe_environment())
    G = lj.load_generator(args.generator)
    space = lj.latent_space(G)
    scorer = lj.shapes.readout_scorer(args.tol)
    column = scorer.names.index("x")
    latents, scores = score_samples(space, scorer, args.pool, key=jax.random.key(0), batch_size=500)
    x = scores[:, column]
    valid = ~np.isnan(x)
    half = args.pool // 2
    train_pool, test_pool = np.arange(half)[valid[:half]], np.arange(half, args.pool)[valid[half:]]
    rng = np.random.default_rng(0)
    common = rng.permutation(train_pool[x[train_pool] < args.threshold])[: args.common]
    rare = rng.permutation(train_pool[x[train_pool] >= args.threshold])[: args.rare]
    if len(common) < args.common or len(rare) < args.rare:
        raise SystemExit(f"the pool holds {len(common)} common and {len(rare)} rare valid samples; raise --pool")
    decode = jax.jit(space.decode)
    images_of = lambda index: np.concatenate([np.asarray(decode(G.params, jnp.asarray(latents[c])))  # noqa: E731
                                              for c in np.array_split(index, max(1, len(index) // 500))])
    base = np.concatenate([common, rare])
    base_images, base_labels = images_of(base), x[base]

    # guided extrapolation: near-threshold common samples pushed along x's regression direction
    d = linear_semantics(space, scorer, attributes=("x",), num_samples=10_000, batch_size=500, key=jax.random.key(1),
                         progress=False)
    direction, gain = d.vectors[0], d.settings["coefficient_norm"][0]
    near = common[x[common] >= args.threshold - 0.15]
    sources = rng.choice(near, size=2 * args.added)
    steps = rng.uniform(0.1, 0.35, size=len(sources)) / gain
    pushed = jnp.asarray(latents[sources]) + jnp.asarray(steps, jnp.float32)[:, None, None] * space.embed(
        jnp.asarray(direction, jnp.float32))[None]
    pushed_images = np.concatenate([np.asarray(decode(G.params, p)) for p in jnp.array_split(pushed, 4)])
    pushed_x = np.asarray(scorer(jnp.asarray(pushed_images)))[:, column]
    kept = np.flatnonzero(~np.isnan(pushed_x))[: args.added]
    extrapolated_rare = float(np.mean(pushed_x[kept] >= args.threshold))

    natural = rng.permutation(np.setdiff1d(train_pool, base))[: args.added]
    repeated = rng.choice(rare, size=args.added)
    sets = {
        "none": (base_images, base_labels),
        "oversampling": (np.concatenate([base_images, images_of(repeated)]), np.concatenate([base_labels, x[repeated]])),
        "guided extrapolation": (np.concatenate([base_images, pushed_images[kept]]),
                                 np.concatenate([base_labels, pushed_x[kept]])),
        "natural samples": (np.concatenate([base_images, images_of(natural)]), np.concatenate([base_labels, x[natural]])),
    }
    test_rare, test_common = test_pool[x[test_pool] >= args.threshold], test_pool[x[test_pool] < args.threshold]
    test_images = {"rare": images_of(test_rare), "common": images_of(test_common)}
    rows = []
    for name, (images, labels) in sets.items():
        if name not in args.remedies:
            continue
        errors = {"rare": [], "common": []}
        for seed in range(args.seeds):
            net, params = train_regressor(images, labels, args.steps, seed)
            predict = jax.jit(lambda p, im: net.logits(p, im)["x"][:, 0])
            for region, index in (("rare", test_rare), ("common", test_common)):
                got = np.concatenate([np.asarray(predict(params, c)) for c in np.array_split(test_images[region], 8)])
                errors[region].append(float(np.mean(np.abs(got - x[index]))))
        rare_mae, common_mae = np.mean(errors["rare"]), np.mean(errors["common"])
        rows.append({"remedy": name, "images": len(labels), "rare_share": float(np.mean(labels >= args.threshold)),
                     "mae_rare": float(rare_mae), "mae_common": float(common_mae),
                     "mae_balanced": float((rare_mae + common_mae) / 2), "per_seed": errors})
        print(f"{name:<22} {len(labels):>6} images, rare share {rows[-1]['rare_share']:.3f}: MAE rare {rare_mae:.4f}, "
              f"common {common_mae:.4f}, balanced {rows[-1]['mae_balanced']:.4f}")
    print(f"\nx's direction: held-out R² {float(d.scores[0]):.3f}; {len(kept)} extrapolated images kept "
          f"(valid), {extrapolated_rare:.2f} of them in the rare region; test: {len(test_rare)} rare, "
          f"{len(test_common)} common")
    write_record(args.out, "guided_extrapolation", generator=args.generator, threshold=args.threshold,
                 common=args.common, rare=args.rare, added=args.added, steps=args.steps, seeds=args.seeds,
                 direction_r2=float(d.scores[0]), extrapolated_kept=int(len(kept)),
                 extrapolated_in_rare_region=extrapolated_rare, test_rare=int(len(test_rare)),
                 test_common=int(len(test_common)), rows=rows)


if __name__ == "__main__":
    main()
