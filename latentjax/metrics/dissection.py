"""Unit dissection: how well each unit of a layer detects each concept (Network Dissection).

NetDissect-Lite (Bau et al. 2017) thresholds each unit at the top-`quantile` (0.005) value of its
activations over every pixel of the probe set, and scores the binary map `activation > threshold`
against each concept mask by IoU accumulated over the dataset, both / (unit + label - both + 1e-10);
a unit is a detector of its best concept above IoU 0.04. `unit_iou` computes this exactly for
arrays in memory at the masks' resolution. `dissect` streams a probe set of any size in constant
memory, as the reference does: the threshold from per-unit histograms (three passes over the
probe: each unit's range, a histogram of `bins` bins over it, then the tallies; the threshold falls
within one bin, (max - min) / bins, of the two values numpy's quantile interpolates between), and
activations upsampled bilinearly to the masks' resolution before thresholding (the reference
reads its threshold from a quantile sketch).
"""

from __future__ import annotations

import functools

from typing import Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.progress import Progress

DETECTOR_IOU = 0.04  # NetDissect-Lite's SEG_THRESHOLD / SCORE_THRESHOLD


def _check(activations, masks) -> tuple[np.ndarray, np.ndarray]:
    activations, masks = np.asarray(activations), np.asarray(masks)
    if activations.ndim != 4:
        raise ValueError(f"activations must be [N, H, W, units] (NHWC), got shape {activations.shape}")
    if masks.ndim != 4 or masks.shape[:3] != activations.shape[:3]:
        raise ValueError(f"masks must be [N, H, W, concepts] at the activations' resolution {activations.shape[:3]}, "
                         f"got shape {masks.shape}")
    if masks.dtype != bool and not np.all((masks == 0) | (masks == 1)):
        raise ValueError("masks must be binary (bool or 0/1)")
    if not np.all(np.isfinite(activations)):
        raise ValueError("activations must be finite")
    return activations, masks.astype(bool)


def unit_thresholds(activations, quantile: float = 0.005) -> np.ndarray:
    """Per unit [U], the value that the top `quantile` of its activations over all pixels exceed:
    numpy's (linear) quantile at 1 - quantile."""
    activations = np.asarray(activations)
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    return np.quantile(activations.reshape(-1, activations.shape[-1]), 1.0 - quantile, axis=0)


def unit_iou(activations, masks, quantile: float = 0.005) -> np.ndarray:
    """IoU [U, C] of each unit's map `activations > threshold` (`unit_thresholds`) with each concept
    mask, over the whole set: activations [N, H, W, U], masks [N, H, W, C] (bool)."""
    activations, masks = _check(activations, masks)
    on = (activations > unit_thresholds(activations, quantile)).reshape(-1, activations.shape[-1])
    labels = masks.reshape(-1, masks.shape[-1])
    both = on.T.astype(np.float64) @ labels.astype(np.float64)
    return both / (on.sum(axis=0)[:, None] + labels.sum(axis=0)[None, :] - both + 1e-10)


def best_concepts(iou, threshold: float = DETECTOR_IOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best concept index [U], its IoU [U], detector flag [U]: best IoU above `threshold`) of an IoU matrix [U, C]."""
    iou = np.asarray(iou)
    best = np.argmax(iou, axis=1)
    score = iou[np.arange(len(iou)), best]
    return best, score, score > threshold


class Dissection(NamedTuple):
    """A streamed dissection: IoU [U, C], per-unit thresholds [U], the pixel count at the activations'
    resolution the thresholds were taken over, and the samples kept out of those seen."""

    iou: np.ndarray
    thresholds: np.ndarray
    pixels: int
    samples: int
    seen: int
    present: np.ndarray  # [U] each unit's mean activation where it exceeds its threshold (GAN Dissection's insert value)


def _pixel_keep(keep, shape):
    """The per-sample flags [n] broadcast to one per pixel [n * h * w, 1]."""
    return jnp.broadcast_to(keep[:, None, None], shape[:3]).reshape(-1, 1)


@jax.jit
def _range(activations, keep):
    flat = activations.reshape(-1, activations.shape[-1])
    kept = _pixel_keep(keep, activations.shape)
    return jnp.min(jnp.where(kept, flat, jnp.inf), axis=0), jnp.max(jnp.where(kept, flat, -jnp.inf), axis=0)


@functools.partial(jax.jit, static_argnames="bins")
def _histogram(activations, keep, lo, hi, bins: int):
    flat = activations.reshape(-1, activations.shape[-1])
    width = jnp.where(hi > lo, hi - lo, 1.0)
    index = jnp.clip(jnp.floor((flat - lo) / width * bins).astype(jnp.int32), 0, bins - 1)
    flat_index = index + bins * jnp.arange(flat.shape[-1], dtype=jnp.int32)
    weights = jnp.broadcast_to(_pixel_keep(keep, activations.shape), flat.shape).astype(jnp.int32)
    counts = jnp.bincount(flat_index.reshape(-1), weights.reshape(-1), length=flat.shape[-1] * bins)
    return counts.reshape(flat.shape[-1], bins)


@jax.jit
def _tally(activations, masks, keep, thresholds):
    n, h, w, _ = masks.shape
    if activations.shape[1:3] != (h, w):
        activations = jax.image.resize(activations, (n, h, w, activations.shape[-1]), "bilinear")
    kept = _pixel_keep(keep, masks.shape).astype(jnp.float32)
    flat = activations.reshape(-1, activations.shape[-1])
    on = (flat > thresholds).astype(jnp.float32) * kept
    labels = masks.reshape(-1, masks.shape[-1]).astype(jnp.float32) * kept
    return on.sum(axis=0), labels.sum(axis=0), on.T @ labels, jnp.sum(on * flat, axis=0)


def _histogram_quantile(counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float) -> np.ndarray:
    """Per unit, the value at `level` of numpy's linear quantile, read from its histogram (uniform within a bin)."""
    total = counts.sum(axis=1)
    rank = level * (total - 1) + 0.5  # the (0-based) rank, as a position on the cumulative count
    cumulative = np.cumsum(counts, axis=1)
    b = np.argmax(cumulative >= rank[:, None], axis=1)
    before = np.where(b > 0, cumulative[np.arange(len(b)), b - 1], 0)
    inside = (rank - before) / np.maximum(counts[np.arange(len(b)), b], 1)
    width = (hi - lo) / counts.shape[1]
    return lo + (b + inside) * width


def dissect(batches: Callable[[], Iterable], *, quantile: float = 0.005, bins: int = 4096,
            num_batches: int | None = None, progress: bool = True) -> Dissection:
    """Network Dissection over a streamed probe set. `batches()` returns a fresh iterable of
    (activations [n, h, w, U], masks [n, H, W, C]) pairs, or triples with keep [n] (bool: the samples
    that count, e.g. generated images that read back validly), the same each call (it is read three
    times); activations are upsampled bilinearly to (H, W) for the tallies."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")

    def passes(desc):
        with Progress(num_batches, desc, "batches", enabled=None if progress else False) as bar:
            for i, batch in enumerate(batches()):
                if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
                    raise ValueError(f"batch {i}: expected a pair (activations, masks) or a triple (activations, "
                                     f"masks, keep), got {type(batch).__name__}")
                yield _check_batch(*batch, index=i)
                bar.update()

    lo = hi = None
    samples = seen = 0
    for activations, _, keep in passes("dissection: ranges"):
        samples, seen = samples + int(np.sum(keep)), seen + len(keep)
        a, b = (np.asarray(v) for v in _range(activations, keep))
        lo, hi = (a, b) if lo is None else (np.minimum(lo, a), np.maximum(hi, b))
    if lo is None:
        raise ValueError("batches() gave no batches")
    if not np.all(np.isfinite(lo)):
        raise ValueError("the batches keep no sample (every keep flag is False)")
    counts = None
    for activations, _, keep in passes("dissection: histograms"):
        c = np.asarray(_histogram(activations, keep, lo, hi, int(bins)), np.int64)
        counts = c if counts is None else counts + c
    thresholds = _histogram_quantile(counts, lo, hi, 1.0 - quantile).astype(np.float32)
    on = labels = both = total = 0.0
    for activations, masks, keep in passes("dissection: tallies"):
        u, l, b, t = (np.asarray(v, np.float64) for v in _tally(activations, masks, keep, thresholds))
        on, labels, both, total = on + u, labels + l, both + b, total + t
    iou = both / (on[:, None] + labels[None, :] - both + 1e-10)
    present = np.where(on > 0, total / np.maximum(on, 1), thresholds).astype(np.float32)
    return Dissection(iou=iou, thresholds=thresholds, pixels=int(counts[0].sum()), samples=samples, seen=seen,
                      present=present)


def _check_batch(activations, masks, keep=None, *, index: int):
    if getattr(activations, "ndim", None) != 4:
        raise ValueError(f"batch {index}: activations must be [n, h, w, units] (NHWC), got shape "
                         f"{getattr(activations, 'shape', None)}")
    if getattr(masks, "ndim", None) != 4 or masks.shape[0] != activations.shape[0]:
        raise ValueError(f"batch {index}: masks must be [n, H, W, concepts] with the activations' n "
                         f"{activations.shape[0]}, got shape {getattr(masks, 'shape', None)}")
    if keep is None:
        keep = np.ones(activations.shape[0], bool)
    if getattr(keep, "shape", None) != (activations.shape[0],):
        raise ValueError(f"batch {index}: keep must be [n] = [{activations.shape[0]}] flags, got shape "
                         f"{getattr(keep, 'shape', None)}")
    return jnp.asarray(activations, jnp.float32), jnp.asarray(masks, jnp.bool_), jnp.asarray(keep, jnp.bool_)
