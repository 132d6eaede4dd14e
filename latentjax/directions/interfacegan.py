"""InterFaceGAN (Shen et al., CVPR 2020): the normal of a linear SVM separating high- from low-scoring latents.

Follows genforce/interfacegan `utils/manipulator.py`: `train_boundary` / `fit_boundary` (the top and
bottom `chosen_num` samples by score, a linear SVM with C = 1 by libsvm's solver, coef / |coef|),
`project_boundary` (a boundary made orthogonal to conditions), and `latentjax.walks.boundary` for
the edits. `interfacegan` runs the whole recipe on a generator: score samples with a `Scorer`, train
one boundary per attribute, optionally condition each on the others' boundaries. Departures, all
explicit: non-finite scores are dropped and counted, `invalid_value` filters rows, and a `seed`
replaces NumPy's global state for the shuffle (the `interfacegan` method always gives one).
Details: docs/methods.md#latentjaxdirectionsinterfacegan
"""

from __future__ import annotations

import dataclasses

import numpy as np

from latentjax.config import ConfigMixin, configure
from latentjax.directions.base import Directions
from latentjax.directions.svm import LinearSVM, linear_svm
from latentjax.metrics.scorer import Scorer, attribute_names, scored_codes


@dataclasses.dataclass(frozen=True)
class BoundaryFit:
    """A trained boundary: its unit `normal` [d], the SVM behind it, and how well it separates."""

    normal: np.ndarray
    svm: LinearSVM
    train_num: int  # per side
    val_num: int  # per side
    val_accuracy: float  # NaN when val_num == 0
    remaining_num: int
    remaining_accuracy: float  # NaN when remaining_num == 0
    dropped: int  # samples dropped for invalid (non-finite or `invalid_value`) scores


def fit_boundary(latents, scores, chosen_num_or_ratio: float = 0.02, split_ratio: float = 0.7,
                 invalid_value=None, *, seed: int | None = None, C: float = 1.0, tol: float = 1e-3) -> BoundaryFit:
    """The boundary of the reference's `train_boundary`, with its diagnostics (see the module docstring)."""
    latents = np.asarray(latents)
    if latents.ndim != 2:
        raise ValueError(f"latents must be [N, d] codes (InterFaceGAN trains on z or w, not w+), got shape "
                         f"{latents.shape}")
    scores = np.asarray(scores, np.float64)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.shape != (latents.shape[0],):
        raise ValueError(f"scores must be [N] or [N, 1] with N = {latents.shape[0]} (the latents'), got shape "
                         f"{scores.shape}")
    if not isinstance(chosen_num_or_ratio, (int, float)) or not chosen_num_or_ratio > 0:
        raise ValueError(f"chosen_num_or_ratio must be positive, got {chosen_num_or_ratio!r}")
    if not isinstance(split_ratio, (int, float)) or not 0 < split_ratio <= 1:
        raise ValueError(f"split_ratio must be in (0, 1], got {split_ratio!r}")
    keep = np.isfinite(scores)
    if invalid_value is not None:
        keep &= scores != invalid_value
    if not np.all(np.isfinite(latents[keep])):
        raise ValueError("latents have NaN or infinite entries")
    dropped = int(np.sum(~keep))
    latents, scores = latents[keep], scores[keep]
    order = np.argsort(scores)[::-1]  # the reference's sort (ties included)
    latents, scores = latents[order], scores[order]
    n = latents.shape[0]
    chosen = int(n * chosen_num_or_ratio) if chosen_num_or_ratio <= 1 else int(chosen_num_or_ratio)
    chosen = min(chosen, n // 2)
    train_num = int(chosen * split_ratio)
    if train_num < 1:
        raise ValueError(f"no training samples: {n} valid samples ({dropped} dropped), chosen_num_or_ratio "
                         f"{chosen_num_or_ratio} and split_ratio {split_ratio} leave {train_num} per side")
    val_num = chosen - train_num
    positive, negative = np.arange(chosen), np.arange(chosen)
    shuffle = np.random.shuffle if seed is None else np.random.default_rng(seed).shuffle
    shuffle(positive)
    shuffle(negative)
    top, bottom = latents[:chosen], latents[n - chosen:]
    train = np.concatenate([top[positive[:train_num]], bottom[negative[:train_num]]])
    labels = np.concatenate([np.ones(train_num, np.int64), np.zeros(train_num, np.int64)])
    svm = linear_svm(train, labels, C=C, tol=tol)
    val_accuracy = np.nan
    if val_num:
        val = np.concatenate([top[positive[train_num:]], bottom[negative[train_num:]]])
        val_labels = np.concatenate([np.ones(val_num, np.int64), np.zeros(val_num, np.int64)])
        val_accuracy = float(np.mean(svm.predict(val) == val_labels))
    remaining = latents[chosen:n - chosen]
    remaining_accuracy = np.nan
    if len(remaining):
        midpoint = (scores[0] + scores[-1]) / 2
        remaining_labels = (scores[chosen:n - chosen] >= midpoint).astype(np.int64)
        remaining_accuracy = float(np.mean(svm.predict(remaining) == remaining_labels))
    normal = svm.coef / np.linalg.norm(svm.coef)
    return BoundaryFit(normal.astype(np.float32), svm, train_num, val_num, val_accuracy, len(remaining),
                       remaining_accuracy, dropped)


def train_boundary(latents, scores, chosen_num_or_ratio: float = 0.02, split_ratio: float = 0.7,
                   invalid_value=None, *, seed: int | None = None) -> np.ndarray:
    """The unit normal [d] of the boundary between high and low scores (the reference's `train_boundary`)."""
    return fit_boundary(latents, scores, chosen_num_or_ratio, split_ratio, invalid_value, seed=seed).normal


def project_boundary(normal, *conditions) -> np.ndarray:
    """`normal` made orthogonal to every condition boundary, renormalised (unit inputs, [d] or [1, d];
    the result has `normal`'s shape)."""
    shape = np.shape(normal)
    n = np.asarray(normal, np.float64).reshape(-1)
    cs = [np.asarray(c, np.float64).reshape(-1) for c in conditions]
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != 1):
        raise ValueError(f"the primal boundary must be [d] or [1, d], got shape {shape}")
    for i, c in enumerate(cs):
        if c.shape != n.shape or np.ndim(conditions[i]) not in (1, 2):
            raise ValueError(f"condition {i} must be [d] or [1, d] with d = {n.size}, got shape "
                             f"{np.shape(conditions[i])}")
    if not cs:
        return np.asarray(normal)
    if len(cs) == 1:
        new = n - (n @ cs[0]) * cs[0]
    elif len(cs) == 2:
        c1, c2 = cs
        n1, n2, c12 = n @ c1, n @ c2, c1 @ c2
        alpha = (n1 - n2 * c12) / (1 - c12 ** 2 + 1e-8)
        beta = (n2 - n1 * c12) / (1 - c12 ** 2 + 1e-8)
        new = n - alpha * c1 - beta * c2
    else:
        C = np.stack(cs)
        new = n - np.linalg.solve(C @ C.T, C @ n) @ C
    norm = np.linalg.norm(new)
    if not norm > 1e-12:
        raise ValueError("the primal boundary lies in the span of the conditions: nothing is left after projection")
    return (new / norm).astype(np.float32).reshape(shape)


@dataclasses.dataclass(frozen=True)
class InterFaceGANConfig(ConfigMixin):
    attributes: tuple[str, ...] = ()  # the scorer's attributes to find boundaries for; empty: all
    num_samples: int = 50_000  # scored samples (the maintainers recommend >= 500K)
    chosen_num_or_ratio: float = 0.02
    split_ratio: float = 0.7
    conditions: tuple[str, ...] = ()  # each boundary made orthogonal to these attributes' boundaries
    C: float = 1.0
    tol: float = 1e-3
    batch_size: int = 256
    seed: int = 0  # the train/validation shuffle


def interfacegan(source, scorer: Scorer, config: InterFaceGANConfig | dict | None = None, key=None,
                 progress: bool = True, **overrides) -> Directions:
    """One boundary normal per attribute of `scorer`, trained on the space's direction coordinates
    (`space.pool`): the codes themselves in `z` / `w`; in `w+`, whose samples repeat one w on every
    layer, that w, so each direction is a w boundary applied to all layers (the reference's w+ use).
    Directions come in attribute order. Scores are the boundaries' validation accuracies;
    `settings` holds the attribute of each direction, the accuracies on the remaining samples and
    the counts. A condition's own boundary is not projected against itself.
    """
    config = configure(InterFaceGANConfig, config, overrides)
    attributes = attribute_names(scorer, config.attributes)
    conditions = attribute_names(scorer, config.conditions) if config.conditions else []
    space, latents, scores = scored_codes(source, scorer, config.num_samples, batch_size=config.batch_size, key=key,
                                          progress=progress)
    fits = {}
    for name in dict.fromkeys(attributes + conditions):
        column = scores[:, scorer.names.index(name)]
        fits[name] = fit_boundary(latents, column, config.chosen_num_or_ratio, config.split_ratio, seed=config.seed,
                                  C=config.C, tol=config.tol)
    vectors = []
    for name in attributes:
        vectors.append(project_boundary(fits[name].normal, *(fits[c].normal for c in conditions if c != name)))
    settings = {**config.to_dict(), "scorer": list(scorer.names), "directions": attributes,
                "remaining_accuracy": [fits[a].remaining_accuracy for a in attributes],
                "train_num": [fits[a].train_num for a in attributes], "val_num": [fits[a].val_num for a in attributes],
                "dropped": [fits[a].dropped for a in attributes]}
    return Directions(np.stack(vectors), np.asarray([fits[a].val_accuracy for a in attributes]), space.spec,
                      "interfacegan", settings)
