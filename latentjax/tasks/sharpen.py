"""Build a sharper shape switch into a seeded StyleGAN2's mapping network, as a harness `Task`.

A generator warm-started from a seeding decoder (`latentjax.tasks.distill`) must switch shapes where
the decoder's shape coordinate crosses a boundary. Trained by gradient descent through its pixels, it
switches slowly and draws morphs there; moving the latents off the boundaries
(`seeding.sharpen_boundaries`) shows what a faster switch would buy (README). Regressing a mapping
onto that map did not learn its narrow, sawtooth-shaped change, so this task builds it instead, as
plain StyleGAN2 mapping layers in front of and around the generator's own:

1. regressor layers: leaky-ReLU units of the decoder's projected coordinates, the only part trained
   (Adam on the squared error of the shape coordinate, `config.boundary_fraction` of each batch near a
   boundary), beside units that pass z through (as leaky-ReLU pairs, x = (a(x) - a(-x)) / ((1 + slope) gain));
2. the generator's mapping layers but the last, each beside a pair that passes the regressed
   coordinate on;
3. one layer that passes the last one's output on, beside a unit per kink of `seeding.boundary_shifts`:
   the shift is piecewise linear in the coordinate and zero beyond its kinks, so it is exactly a sum
   of those leaky-ReLU units;
4. the generator's last layer, its input before the activation moved, per boundary, by the shift
   times a direction: the least-squares fit of how that input moves when the exact sharpening moves
   the latent (`config.direction_samples` prior draws).

The synthesis network is the generator's, unchanged; the export is a StyleGAN2 of
`config.regressor_layers + teacher layers + 1` mapping layers.
Details: docs/shapes.md#latentjaxtaskssharpen
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latentjax.load import load_generator, save_generator
from latentjax.models.stylegan2 import StyleGAN2, mapping_weights, with_mapping
from latentjax.ops.bias_act import ACTIVATIONS, LRELU_SLOPE, bias_act
from latentjax.ops.layers import normalize_2nd_moment
from latentjax.shapes import reading, seeding
from latentjax.tasks.gan import EXPORT_DIR, fixed_latents
from latentjax.train.task import Task

GAIN = ACTIVATIONS["lrelu"].default_gain
W_AVG_SAMPLES = 10_000  # prior draws whose mean w the export stores as w_avg (truncation's centre)


def make_task(config) -> Task:
    """The sharpening task for `config` (`configs/sharpen_shapes.py`)."""
    teacher = load_generator(config.generator)
    if not isinstance(teacher, StyleGAN2) or teacher.config.mapping_activation != "lrelu" or teacher.config.c_dim:
        raise ValueError(f"config.generator {config.generator!r}: expected an unconditional StyleGAN2 with a "
                         f"leaky-ReLU mapping network, got {teacher!r}")
    seed = seeding.spec_of(teacher.metadata)
    if seed is None:
        raise ValueError(f"config.generator {config.generator!r}: its metadata names no seeding decoder "
                         "(a generator made by latentjax.tasks.distill, or warm-started from one, has one)")
    decoder = seeding.decoder_from(seed, teacher.z_dim)
    width, band = float(config.width), float(config.band)
    kinks = seeding.shift_kinks(width, band)  # also checks width and band
    fraction, oversample = float(config.boundary_fraction), config.boundary_oversample
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"config.boundary_fraction must be in [0, 1], got {fraction}")
    seeding.check_oversample(oversample, "config.boundary_oversample")
    batch_size, num_boundary = int(config.batch_size), round(int(config.batch_size) * fraction)
    teacher_layers = [tuple(jnp.asarray(a, jnp.float32) for a in layer) for layer in mapping_weights(teacher)]
    directions = shift_directions(teacher_layers, decoder, jax.random.key(config.seed), int(config.direction_samples),
                                  width, band)
    tx = optax.adam(optax.cosine_decay_schedule(float(config.lr), int(config.total_steps)))
    _, eval_z = fixed_latents(config, teacher.z_dim)
    eval_z = normalize_2nd_moment(jnp.asarray(eval_z))

    def layers(regressor):
        return sharpened_layers(teacher_layers, regressor, directions, jnp.asarray(decoder.projection), kinks, width,
                                band)

    def init(key):
        regressor = init_regressor(key, decoder.projection.shape[1], int(config.regressor_width),
                                   int(config.regressor_layers))
        return {"regressor": regressor, "opt": tx.init(regressor)}

    def batch(key):
        prior_key, boundary_key = jax.random.split(key)
        z = jax.random.normal(prior_key, (batch_size - num_boundary, teacher.z_dim))
        if num_boundary:
            z = jnp.concatenate([z, seeding.boundary_latents(decoder, boundary_key, num_boundary, teacher.z_dim,
                                                             oversample)])
        z = normalize_2nd_moment(z)  # the mapping reads z's direction only
        return {"z": z, "target": seeding.mixed_coordinates(decoder, z)[0]}

    def step(state, data, key, step):
        def loss_fn(regressor):
            return jnp.mean(jnp.square(regress(regressor, data["z"] @ decoder.projection) - data["target"]))

        loss, grads = jax.value_and_grad(loss_fn)(state["regressor"])
        updates, opt = tx.update(grads, state["opt"], state["regressor"])
        return {"regressor": optax.apply_updates(state["regressor"], updates), "opt": opt}, {"loss": loss}

    def images(state, z):
        w = apply_layers(layers(state["regressor"]), z)
        return teacher.synthesis(teacher.params, jnp.broadcast_to(w[:, None], (w.shape[0], teacher.num_ws, w.shape[1])))

    def sample(state):
        return images(state, eval_z[: int(config.grid_size)])

    def evaluate(state, key):
        target = seeding.mixed_coordinates(decoder, eval_z)[0]
        error = regress(state["regressor"], eval_z @ decoder.projection) - target
        out = reading.readout(jnp.clip(images(state, eval_z), -1.0, 1.0))
        return {"coordinate_rmse": jnp.sqrt(jnp.mean(jnp.square(error))),
                "valid_fraction": jnp.mean(out["valid"].astype(jnp.float32))}

    def export(state, workdir: Path, step: int):
        metadata = {"source_format": "latentjax.tasks.sharpen", "dataset": "shapes", "step": int(step),
                    "sharpening": {"width": width, "band": band}, "init_from": str(config.generator),
                    "init_metadata": dict(teacher.metadata)}
        built = layers(state["regressor"])
        w_avg = jnp.mean(apply_layers(built, normalize_2nd_moment(jax.random.normal(jax.random.key(0), (W_AVG_SAMPLES, teacher.z_dim)))), axis=0)
        save_generator(with_mapping(teacher, [tuple(np.asarray(a) for a in layer) for layer in built], metadata, w_avg),
                       Path(workdir) / EXPORT_DIR)

    return Task(init=init, step=step, batch=batch, sample=sample, evaluate=evaluate, export=export)


def activation(x):
    """The mapping network's activation, leaky ReLU times its gain."""
    return bias_act(x, act="lrelu")


def apply_layers(layers, x):
    """A mapping network's layers ((weight, bias) as `mapping_weights` gives them) on normalised z."""
    for weight, bias in layers:
        x = activation(x @ weight + bias)
    return x


def init_regressor(key, inputs: int, width: int, depth: int) -> dict:
    """A leaky-ReLU network of `depth` hidden layers of `width` from `inputs` coordinates to one value."""
    if depth < 1 or width < 1:
        raise ValueError(f"config.regressor_layers and config.regressor_width must be >= 1, got {depth}, {width}")
    keys = jax.random.split(key, depth)
    sizes = [inputs] + [width] * depth
    hidden = [{"weight": jax.random.normal(k, (n_in, n_out)) / np.sqrt(n_in),
               "bias": 0.3 * jax.random.normal(jax.random.fold_in(k, 1), (n_out,))}
              for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]
    return {"hidden": hidden, "readout": {"weight": jnp.zeros((width,)), "bias": jnp.zeros(())}}


def regress(regressor: dict, x):
    """The regressed shape coordinate [n] of projected coordinates x [n, inputs]."""
    x = apply_layers([(layer["weight"], layer["bias"]) for layer in regressor["hidden"]], x)
    return x @ regressor["readout"]["weight"] + regressor["readout"]["bias"]


def last_input(teacher_layers, z):
    """The teacher's last mapping layer's input before its activation, for normalised z."""
    weight, bias = teacher_layers[-1]
    return apply_layers(teacher_layers[:-1], z) @ weight + bias


def shift_directions(teacher_layers, decoder, key, num_samples: int, width: float, band: float) -> jax.Array:
    """[len(shape_boundaries()), w_dim] per boundary, the direction d minimising |change - shift d|^2 over
    prior latents it moves, where change is how `seeding.sharpen_boundaries` moves the teacher's last
    layer's input and shift how it moves the shape coordinate (`seeding.boundary_shifts`)."""
    z = normalize_2nd_moment(jax.random.normal(key, (num_samples, decoder.projection.shape[0])))
    change = last_input(teacher_layers, seeding.sharpen_boundaries(decoder, z, width, band)) \
        - last_input(teacher_layers, z)
    shifts = seeding.boundary_shifts(seeding.mixed_coordinates(decoder, z)[0], width, band)  # [n, boundaries]
    return (shifts.T @ change) / jnp.maximum(jnp.sum(jnp.square(shifts), axis=0), 1e-12)[:, None]


def kink_weights(kinks, width: float, band: float) -> jax.Array:
    """[boundaries, kinks] c such that `seeding.boundary_shifts`[:, b] = sum_k c[b, k] activation(u - kinks[b, k]):
    the changes of slope at each kink (the shift is zero beyond the outer ones, so the activation's
    leak cancels), over the activation's slope change and gain."""
    kinks = jnp.asarray(kinks)
    values = jnp.stack([seeding.boundary_shifts(row, width, band)[:, b] for b, row in enumerate(kinks)])
    slopes = jnp.diff(values, axis=1) / jnp.diff(kinks, axis=1)
    slopes = jnp.pad(slopes, ((0, 0), (1, 1)))
    return jnp.diff(slopes, axis=1) / ((1.0 - LRELU_SLOPE) * GAIN)


def sharpened_layers(teacher_layers, regressor: dict, directions, projection, kinks, width: float, band: float):
    """The sharpened mapping's layers ((weight, bias) as `mapping_weights` gives them; see the module
    docstring), from the teacher's, the regressor, the shift directions and the decoder's projection."""
    z_dim = projection.shape[0]
    pass_scale = 1.0 / ((1.0 + LRELU_SLOPE) * GAIN)  # x = pass_scale * (a(x) - a(-x))
    hidden = [layer["weight"].shape[1] for layer in regressor["hidden"]][0]
    teacher_width = teacher_layers[0][0].shape[1] if len(teacher_layers) > 1 else 0
    last_in = teacher_layers[-1][0].shape[0]
    num_kinks = kinks.size
    width_all = max(2 * z_dim + hidden, teacher_width + 2, 2 * last_in + num_kinks)
    layers = []

    def layer(blocks):
        """One layer from column blocks (weight [inputs, n], bias [n]), padded to the common width."""
        weight = jnp.concatenate([w for w, _ in blocks], axis=1)
        bias = jnp.concatenate([b for _, b in blocks])
        pad = width_all - weight.shape[1]
        layers.append((jnp.pad(weight, ((0, 0), (0, pad))), jnp.pad(bias, (0, pad))))

    def passed(read, offset: int, inputs: int):
        """A read-out (weight, bias) of the value that a pair block at `offset` passes on."""
        n = read[0].shape[1]
        weight = jnp.zeros((inputs, n)).at[offset:offset + n].set(pass_scale * jnp.eye(n))
        return weight.at[offset + n:offset + 2 * n].set(-pass_scale * jnp.eye(n)), jnp.zeros(n)

    def pair(read):
        return jnp.concatenate([read[0], -read[0]], axis=1), jnp.concatenate([read[1], -read[1]])

    # 1. regressor layers beside z passed on; reads are (weight, bias) of a value from the layer's input
    x_read, inputs = (jnp.eye(z_dim), jnp.zeros(z_dim)), z_dim
    r_read = (projection @ regressor["hidden"][0]["weight"], regressor["hidden"][0]["bias"])
    for nxt in regressor["hidden"][1:] + [None]:
        layer([pair(x_read), r_read])
        inputs = width_all
        x_read = passed(x_read, 0, inputs)
        r_cols = jnp.zeros((inputs, hidden)).at[2 * z_dim:2 * z_dim + hidden].set(jnp.eye(hidden))
        if nxt is not None:
            r_read = (r_cols @ nxt["weight"], nxt["bias"])
    u_read = (r_cols @ regressor["readout"]["weight"][:, None], regressor["readout"]["bias"][None])
    # 2. the teacher's layers but the last, beside the coordinate passed on
    for weight, bias in teacher_layers[:-1]:
        layer([(x_read[0] @ weight, x_read[1] @ weight + bias), pair(u_read)])
        n = weight.shape[1]
        x_read = (jnp.zeros((inputs, n)).at[:n].set(jnp.eye(n)), jnp.zeros(n))
        u_read = passed(u_read, n, inputs)
    # 3. the last layer's input passed on, beside one unit per kink
    flat_kinks = jnp.ravel(kinks)
    layer([pair(x_read), (jnp.repeat(u_read[0], num_kinks, axis=1), u_read[1] - flat_kinks)])
    x_read = passed(x_read, 0, inputs)
    shift_read = jnp.zeros((inputs, directions.shape[0]))
    coefficients = kink_weights(kinks, width, band)  # [boundaries, kinks per boundary]
    per = kinks.shape[1]
    for b in range(directions.shape[0]):
        rows = slice(2 * last_in + b * per, 2 * last_in + (b + 1) * per)
        shift_read = shift_read.at[rows, b].set(coefficients[b])
    # 4. the teacher's last layer, its input moved along each boundary's direction by that boundary's shift
    weight, bias = teacher_layers[-1]
    layers.append((x_read[0] @ weight + shift_read @ directions, x_read[1] @ weight + bias))
    return layers
