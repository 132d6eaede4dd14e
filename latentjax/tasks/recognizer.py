"""Training a recognition network on the shapes world, a harness `Task`:
`latentjax train --config configs/train_recognizer.py`.

The network (`latentjax.nn.recognizer`) classifies true renders of the world: one softmax
cross-entropy head per label in `config.heads` (`latentjax.shapes.recognition`: 'shape', or a
factor's bin), and regresses them with one squared-error head per `config.value_heads` entry
('x', 'hue_cos', ...: the assessor of `configs/train_assessor.py`), summed, minimised with AdamW (`config.lr`, `config.weight_decay`: the
regularisation the disentanglement study varies). Images: `config.num_train` > 0 draws each batch
from one fixed set of that many factor vectors (data amount; drawn with `config.data_seed`), 0 a
fresh draw every step; factors in `config.train_ranges` (e.g. {'scale': (0.0, 0.6)}). Evaluation
reports accuracy per class head and mean absolute error per value head on fresh renders from the
training ranges and from `config.shifted_ranges` (the held-out part of the world), if any. `export` writes
the network to `WORKDIR/recognizer/`.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from latentjax.nn.recognizer import Recognizer, RecognizerConfig, save_recognizer
from latentjax.shapes.recognition import check_value_heads, factor_labels, head_classes, value_targets
from latentjax.shapes.world import check_ranges, render, sample_factors
from latentjax.train.task import Task

EXPORT_DIR = "recognizer"


def recognizer_config(config) -> RecognizerConfig:
    heads, values = tuple(config.heads), check_value_heads(config.get("value_heads", ()))
    if not heads and not values:
        raise ValueError("config.heads and config.value_heads are both empty: name at least one head")
    return RecognizerConfig(img_resolution=int(config.resolution), img_channels=3, head_names=heads + values,
                            head_classes=(head_classes(heads, int(config.bins)) if heads else ()) + (1,) * len(values),
                            width=int(config.width), depth=int(config.depth))


def _ranges(config, field: str) -> dict:
    try:
        return check_ranges(config.get(field).to_dict() if config.get(field) is not None else None)
    except ValueError as e:
        raise ValueError(f"config.{field}: {e}") from None


def make_task(config) -> Task:
    """The recognizer task for `config` (see `configs/train_recognizer.py` for the fields)."""
    net_config = recognizer_config(config)
    net = Recognizer(net_config, None)
    values, bins, resolution = net_config.value_heads, int(config.bins), net_config.img_resolution
    heads = tuple(h for h in net_config.head_names if h not in values)
    batch_size, num_train, eval_size = int(config.batch_size), int(config.num_train), int(config.eval_size)
    if num_train < 0 or eval_size < 1:
        raise ValueError(f"config.num_train must be >= 0 (0: a fresh draw each step) and config.eval_size >= 1, got "
                         f"{num_train}, {eval_size}")
    train_ranges, shifted_ranges = _ranges(config, "train_ranges"), _ranges(config, "shifted_ranges")
    evaluated = (("", train_ranges),) + ((("shifted_", shifted_ranges),) if config.get("shifted_ranges") else ())
    tx = optax.adamw(float(config.lr), weight_decay=float(config.weight_decay))
    data_key = jax.random.key(int(config.data_seed))

    def init(key):
        params = Recognizer.init(net_config, key).params
        return {"params": params, "opt": tx.init(params)}

    def batch(key):
        if num_train:
            pool = sample_factors(data_key, num_train, train_ranges)
            index = jax.random.randint(key, (batch_size,), 0, num_train)
            factors = jax.tree.map(lambda v: v[index], pool)
        else:
            factors = sample_factors(key, batch_size, train_ranges)
        return render(factors, resolution).images, targets(factors)

    def targets(factors):
        return {**(factor_labels(factors, heads, bins) if heads else {}), **value_targets(factors, values)}

    def losses(params, images, targets):
        """Summed loss, ({head: loss}, {head: accuracy (class heads) or mean absolute error (value heads)})."""
        outputs = net.logits(params, images)
        loss = {h: optax.softmax_cross_entropy_with_integer_labels(outputs[h], targets[h]).mean() for h in heads}
        loss.update({h: jnp.mean((outputs[h][:, 0] - targets[h]) ** 2) for h in values})
        quality = {f"accuracy/{h}": jnp.mean(jnp.argmax(outputs[h], axis=-1) == targets[h]) for h in heads}
        quality.update({f"error/{h}": jnp.mean(jnp.abs(outputs[h][:, 0] - targets[h])) for h in values})
        return sum(loss.values()), (loss, quality)

    def step(state, batch, key, step):
        images, targets = batch
        (total, (loss, quality)), grads = jax.value_and_grad(losses, has_aux=True)(state["params"], images, targets)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        metrics = {"loss": total, **{f"loss/{h}": v for h, v in loss.items()},
                   **{f"train_{name}": v for name, v in quality.items()}}
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, metrics

    def evaluate(state, key):
        out = {}
        for prefix, ranges in evaluated:
            factors = sample_factors(key, eval_size, ranges)
            _, (_, quality) = losses(state["params"], render(factors, resolution).images, targets(factors))
            out.update({f"{prefix}{name}": v for name, v in quality.items()})
        return out

    def export(state, workdir: Path, step: int):
        recognizer = Recognizer(net_config, state["params"],
                                {"step": int(step), "trained_on": "shapes world", "heads": list(heads),
                                 "value_heads": list(values), "bins": bins,
                                 "train_ranges": train_ranges, "num_train": num_train})
        save_recognizer(recognizer, Path(workdir) / EXPORT_DIR)

    def result(train_state):
        return Recognizer(net_config, train_state["state"]["params"])

    return Task(init=init, step=step, batch=batch, evaluate=evaluate, export=export, result=result)
