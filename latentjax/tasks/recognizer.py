"""Training a recognition network on the shapes world, a harness `Task`:
`latentjax train --config configs/train_recognizer.py`.

The network (`latentjax.nn.recognizer`) classifies true renders of the world: one softmax
cross-entropy head per label in `config.heads` (`latentjax.shapes.recognition`: 'shape', or a
factor's bin), summed, minimised with AdamW (`config.lr`, `config.weight_decay`: the
regularisation the disentanglement study varies). Images: `config.num_train` > 0 draws each batch
from one fixed set of that many factor vectors (data amount; drawn with `config.data_seed`), 0 a
fresh draw every step; factors in `config.train_ranges` (e.g. {'scale': (0.0, 0.6)}). Evaluation
reports accuracy per head on fresh renders from the training ranges and from `config.shifted_ranges`
(the held-out part of the world). `export` writes the network to `WORKDIR/recognizer/`.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from latentjax.nn.recognizer import Recognizer, RecognizerConfig, save_recognizer
from latentjax.shapes.recognition import factor_labels, head_classes
from latentjax.shapes.world import check_ranges, render, sample_factors
from latentjax.train.task import Task

EXPORT_DIR = "recognizer"


def recognizer_config(config) -> RecognizerConfig:
    heads = tuple(config.heads)
    return RecognizerConfig(img_resolution=int(config.resolution), img_channels=3, head_names=heads,
                            head_classes=head_classes(heads, int(config.bins)), width=int(config.width),
                            depth=int(config.depth))


def _ranges(config, field: str) -> dict:
    try:
        return check_ranges(config.get(field).to_dict() if config.get(field) is not None else None)
    except ValueError as e:
        raise ValueError(f"config.{field}: {e}") from None


def make_task(config) -> Task:
    """The recognizer task for `config` (see `configs/train_recognizer.py` for the fields)."""
    net_config = recognizer_config(config)
    net = Recognizer(net_config, None)
    heads, bins, resolution = net_config.head_names, int(config.bins), net_config.img_resolution
    batch_size, num_train, eval_size = int(config.batch_size), int(config.num_train), int(config.eval_size)
    if num_train < 0 or eval_size < 1:
        raise ValueError(f"config.num_train must be >= 0 (0: a fresh draw each step) and config.eval_size >= 1, got "
                         f"{num_train}, {eval_size}")
    train_ranges, shifted_ranges = _ranges(config, "train_ranges"), _ranges(config, "shifted_ranges")
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
        return render(factors, resolution).images, factor_labels(factors, heads, bins)

    def losses(params, images, labels):
        logits = net.logits(params, images)
        loss = {h: optax.softmax_cross_entropy_with_integer_labels(logits[h], labels[h]).mean() for h in heads}
        correct = {h: jnp.mean(jnp.argmax(logits[h], axis=-1) == labels[h]) for h in heads}
        return sum(loss.values()), (loss, correct)

    def step(state, batch, key, step):
        images, labels = batch
        (total, (loss, correct)), grads = jax.value_and_grad(losses, has_aux=True)(state["params"], images, labels)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        metrics = {"loss": total, **{f"loss/{h}": v for h, v in loss.items()},
                   **{f"train_accuracy/{h}": v for h, v in correct.items()}}
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, metrics

    def evaluate(state, key):
        out = {}
        for name, ranges in (("accuracy", train_ranges), ("shifted_accuracy", shifted_ranges)):
            factors = sample_factors(key, eval_size, ranges)
            _, (_, correct) = losses(state["params"], render(factors, resolution).images,
                                     factor_labels(factors, heads, bins))
            out.update({f"{name}/{h}": v for h, v in correct.items()})
        return out

    def export(state, workdir: Path, step: int):
        recognizer = Recognizer(net_config, state["params"],
                                {"step": int(step), "trained_on": "shapes world", "heads": list(heads), "bins": bins,
                                 "train_ranges": train_ranges, "num_train": num_train})
        save_recognizer(recognizer, Path(workdir) / EXPORT_DIR)

    def result(train_state):
        return Recognizer(net_config, train_state["state"]["params"])

    return Task(init=init, step=step, batch=batch, evaluate=evaluate, export=export, result=result)
