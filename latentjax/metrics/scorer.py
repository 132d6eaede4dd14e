"""Scorers: named measurements of images, the interface guided direction methods learn from.

A `Scorer` wraps a pure function `apply(params, images [N, H, W, C]) -> scores [N, A]` (images in
the generator's value range) with the names of its A attributes. Its parameters travel as an
argument, so one compiled program serves any weights. `differentiable` says whether gradients
through it mean anything (an assessor network: yes; an analytic read-out with thresholds: no).
A NaN score marks a sample the scorer cannot measure (e.g. an invalid render); methods drop it
and say how many they dropped.

`score_samples` draws latents of a space, decodes and scores them in one jitted, sharded program;
`scored_codes` gives the same table in direction coordinates, which InterFaceGAN and the linear
regression methods train on.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.latent import LatentSpace, as_space
from latentjax.progress import Progress
from latentjax.sharding import batched_map


@dataclasses.dataclass(frozen=True, eq=False)
class Scorer:
    """`apply(params, images) -> [N, A]` with attribute `names` (see the module docstring)."""

    apply: Callable
    names: tuple[str, ...]
    params: Any = None
    differentiable: bool = False

    def __post_init__(self):
        names = tuple(self.names)
        if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"a Scorer needs distinct, non-empty attribute names, got {self.names!r}")
        object.__setattr__(self, "names", names)

    def __call__(self, images) -> jax.Array:
        return self.score(self.params, images)

    def score(self, params, images) -> jax.Array:
        """`apply(params, images)`, checked to be [N, A] (params as an argument, for compiled programs)."""
        scores = self.apply(params, images)
        if scores.shape != (images.shape[0], len(self.names)):
            raise ValueError(f"scorer returned shape {scores.shape}, expected [N={images.shape[0]}, "
                             f"A={len(self.names)}] for attributes {self.names}")
        return scores

    def columns(self, attributes: Sequence[str] | None = None) -> list[int]:
        """Column indices of `attributes` (None: all), with an error naming the unknown ones."""
        if attributes is None or len(attributes) == 0:
            return list(range(len(self.names)))
        unknown = [a for a in attributes if a not in self.names]
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}: this scorer measures {list(self.names)}")
        return [self.names.index(a) for a in attributes]


def score_samples(source, scorer: Scorer, num_samples: int, *, batch_size: int = 256, key=None, start: int = 0,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(latents [N, *shape], scores [N, A]) of samples start .. start + N - 1 of a space (or of a
    generator's default space).

    Sample i is drawn with `fold_in(key, i)`, so the table does not depend on the batch size, the
    number of devices, or how it is split into calls (`start`); batches are split over all devices.
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an int >= 0, got {start!r}")
    space = as_space(source)
    key = jax.random.key(0) if key is None else key
    params = space.generator.params
    with Progress(num_samples, "score samples", unit="samples", enabled=None if progress else False) as bar:
        latents, scores = batched_map(lambda index: _score_batch(space, scorer, params, scorer.params, key, index),
                                      np.arange(start, start + num_samples), batch_size, progress=bar)
    return latents, scores


def attribute_names(scorer, attributes: Sequence[str] | None) -> list[str]:
    """The names of `attributes` (None or empty: all) of `scorer`, checked to be a Scorer that has them."""
    if not isinstance(scorer, Scorer):
        raise TypeError(f"scorer must be a latentjax.metrics.scorer.Scorer, got {type(scorer).__name__}")
    return [scorer.names[i] for i in scorer.columns(attributes)]


def scored_codes(source, scorer: Scorer, num_samples: int, *, batch_size: int = 256, key=None,
                 progress: bool = True) -> tuple[LatentSpace, np.ndarray, np.ndarray]:
    """(space, codes [N, direction_dim], scores [N, A]): `score_samples`' table with each latent
    pooled to its direction coordinates (`space.pool`: itself in z / w / s, the repeated w in w+),
    the table guided direction methods learn from."""
    space = as_space(source)
    latents, scores = score_samples(space, scorer, num_samples, batch_size=batch_size, key=key, progress=progress)
    return space, np.asarray(space.pool(latents)), scores


@functools.partial(jax.jit, static_argnums=(0, 1))
def _score_batch(space, scorer, params, scorer_params, key, index):
    """Latents and scores of the samples with these indices (one program per space and scorer)."""
    latents = jax.vmap(lambda i: space.sample(jax.random.fold_in(key, i), 1, params)[0])(index)
    return latents, scorer.score(scorer_params, space.decode(params, latents)).astype(jnp.float32)
