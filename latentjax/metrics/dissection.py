"""Unit dissection: how well each unit of a layer detects each concept (Network Dissection).

NetDissect-Lite (Bau et al. 2017) thresholds each unit at the top-`quantile` (0.005) value of its
activations over the probe set and scores `activation > threshold` against each concept mask by IoU
over the dataset; a unit is a detector of its best concept above IoU 0.04. `unit_iou` is exact for
arrays in memory; `dissect` streams a probe set of any size in constant memory, as the reference
does (the threshold from per-unit histograms, within one bin of numpy's quantile). GAN Dissection
(Bau et al. 2019) chooses each unit's threshold by the information quality ratio instead
(`threshold='iqr'`, `unit_iqr`).
Details: docs/methods.md#latentjaxmetricsdissection
"""

from __future__ import annotations

import functools

from typing import Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from latentjax.progress import Progress
from latentjax.sharding import DATA_AXIS, data_mesh

DETECTOR_IOU = 0.04  # NetDissect-Lite's SEG_THRESHOLD / SCORE_THRESHOLD
IQR_FRACTIONS = np.logspace(-3, 0, 100)  # gandissect's threshold search: quantiles 1 - these of each unit
IQR_AGREEMENT = 0.8  # only levels where unit and concept agree on more than this fraction of pixels
IQR_MIN_LABEL = 1e-3  # concepts on fewer pixels get MI 0 (too few samples to trust)
IQR_DETECTOR = 0.01  # gandissect's iqr_threshold
IQR_DETECTOR_IOU = 0.05  # gandissect's iou_threshold


def _check_arrays(activations, masks) -> tuple[np.ndarray, np.ndarray]:
    """In-memory (activations, masks) at one resolution: binary masks, finite activations."""
    if np.ndim(masks) == 4 and np.asarray(masks).dtype != bool and not np.all(np.isin(np.asarray(masks), (0, 1))):
        raise ValueError("masks must be binary (bool or 0/1)")
    activations, masks = (np.asarray(v) for v in _check_batch(activations, masks, same_resolution=True)[:2])
    if not np.all(np.isfinite(activations)):
        raise ValueError("activations must be finite")
    return activations, masks


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
    activations, masks = _check_arrays(activations, masks)
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


class IQRSearch(NamedTuple):
    """GAN Dissection's threshold search, per unit and concept [U, C]: the best IQR, its threshold
    level, the quantile fraction of that level (the unit is on above it on this share of pixels),
    the IoU and the agreement there."""

    iqr: np.ndarray
    levels: np.ndarray
    fractions: np.ndarray
    iou: np.ndarray
    agreement: np.ndarray

    @property
    def thresholds(self) -> np.ndarray:
        """[U] each unit's level for its best concept by IQR."""
        return self.levels[np.arange(len(self.levels)), np.argmax(self.iqr, axis=1)]


class Dissection(NamedTuple):
    """A streamed dissection: IoU [U, C], per-unit thresholds [U], the pixel count the thresholds were
    taken over, the samples kept out of those seen, and with `threshold='iqr'` the IQR search."""

    iou: np.ndarray
    thresholds: np.ndarray
    pixels: int
    samples: int
    seen: int
    present: np.ndarray  # [U] each unit's mean activation where it exceeds its threshold (GAN Dissection's insert value)
    search: IQRSearch | None = None

    def best_concepts(self, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(best concept [U], its IoU [U], detector flag [U]). Quantile thresholds: NetDissect's rule
        (`best_concepts`; IoU `threshold`, default 0.04). IQR thresholds: gandissect's (the concept of
        the best IQR; a detector above IQR 0.01 and IoU `threshold`, default 0.05)."""
        if self.search is None:
            return best_concepts(self.iou, DETECTOR_IOU if threshold is None else threshold)
        units = np.arange(len(self.iou))
        best = np.argmax(self.search.iqr, axis=1)
        score = self.iou[units, best]
        limit = IQR_DETECTOR_IOU if threshold is None else threshold
        return best, score, (self.search.iqr[units, best] > IQR_DETECTOR) & (score > limit)


def _information_quality_ratio(isects, preds, truth):
    """(IQR, agreement) of 2x2 tables given by pixel fractions: both on, unit on, concept present
    (broadcasting arrays); MI and joint entropy in nats, 0 log 0 = 0, 0 / 0 = 0."""
    table = np.clip(np.stack([np.stack([isects, preds - isects]),
                              np.stack([truth - isects, 1.0 - (truth + preds - isects)])]), 0.0, 1.0)
    rows, cols = table.sum(axis=1, keepdims=True), table.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = np.nan_to_num(table * np.log(table / (rows * cols)), nan=0.0, posinf=0.0, neginf=0.0).sum(axis=(0, 1))
        je = -np.nan_to_num(table * np.log(table), nan=0.0).sum(axis=(0, 1))
        return np.maximum(mi, 0.0), np.maximum(je, 0.0), table[0, 0] + table[1, 1]


def _iqr_search(isects, preds, truth, levels) -> IQRSearch:
    """The search over levels from pixel fractions: isects [U, C, L], preds [U, L], truth [C],
    levels [U, L] (at the quantiles 1 - IQR_FRACTIONS)."""
    preds, truth, lv = preds[:, None, :], truth[None, :, None], levels[:, None, :]
    mi, je, agreement = _information_quality_ratio(isects, preds, truth)
    mi[..., -1] = 0.0  # the last level is the minimum: no information
    mi[:, truth[0, :, 0] < IQR_MIN_LABEL, :] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        iqr = np.nan_to_num(mi / je, nan=0.0)
        iou = np.nan_to_num(isects / (truth + preds - isects), nan=0.0)
    iqr[(agreement <= IQR_AGREEMENT) | np.broadcast_to(lv <= 0, iqr.shape)] = 0.0
    best = np.argmax(iqr, axis=2)[..., None]
    pick = lambda a: np.take_along_axis(np.broadcast_to(a, iqr.shape), best, axis=2)[..., 0]  # noqa: E731
    return IQRSearch(iqr=pick(iqr), levels=pick(lv), fractions=pick(IQR_FRACTIONS[None, None, :]), iou=pick(iou),
                     agreement=pick(agreement))


def unit_iqr(activations, masks) -> IQRSearch:
    """GAN Dissection's IQR threshold search (module docstring) for arrays in memory at the masks'
    resolution: activations [N, H, W, U], masks [N, H, W, C]; levels are numpy's exact quantiles."""
    activations, masks = _check_arrays(activations, masks)
    flat = activations.reshape(-1, activations.shape[-1]).astype(np.float64)
    labels = masks.reshape(-1, masks.shape[-1]).astype(np.float64)
    levels = np.quantile(flat, 1.0 - IQR_FRACTIONS, axis=0).T  # [U, L]
    on = flat[:, :, None] > levels[None]  # [P, U, L]
    isects = np.einsum("pul,pc->ucl", on, labels) / len(flat)
    return _iqr_search(isects, on.mean(axis=0), labels.mean(axis=0), levels)


def _pixel_keep(keep, shape):
    """The per-sample flags [n] broadcast to one per pixel [n * h * w, 1]."""
    return jnp.broadcast_to(keep[:, None, None], shape[:3]).reshape(-1, 1)


def _upsampled(activations, size):
    """Activations bilinearly resized to `size` (h, w) (None: as they are)."""
    if size is None or activations.shape[1:3] == tuple(size):
        return activations
    return jax.image.resize(activations, (activations.shape[0], *size, activations.shape[-1]), "bilinear")


@functools.partial(jax.jit, static_argnames="size")
def _range(activations, keep, size=None):
    activations = _upsampled(activations, size)
    flat = activations.reshape(-1, activations.shape[-1])
    kept = _pixel_keep(keep, activations.shape)
    return jnp.min(jnp.where(kept, flat, jnp.inf), axis=0), jnp.max(jnp.where(kept, flat, -jnp.inf), axis=0)


@functools.partial(jax.jit, static_argnames=("bins", "size"))
def _histogram(activations, keep, lo, hi, bins: int, size=None):
    activations = _upsampled(activations, size)
    flat = activations.reshape(-1, activations.shape[-1])
    width = jnp.where(hi > lo, hi - lo, 1.0)
    index = jnp.clip(jnp.floor((flat - lo) / width * bins).astype(jnp.int32), 0, bins - 1)
    flat_index = index + bins * jnp.arange(flat.shape[-1], dtype=jnp.int32)
    weights = jnp.broadcast_to(_pixel_keep(keep, activations.shape), flat.shape).astype(jnp.int32)
    counts = jnp.bincount(flat_index.reshape(-1), weights.reshape(-1), length=flat.shape[-1] * bins)
    return counts.reshape(flat.shape[-1], bins)


@jax.jit
def _tally(activations, masks, keep, thresholds):
    activations = _upsampled(activations, masks.shape[1:3])
    kept = _pixel_keep(keep, masks.shape).astype(jnp.float32)
    flat = activations.reshape(-1, activations.shape[-1])
    on = (flat > thresholds).astype(jnp.float32) * kept
    labels = masks.reshape(-1, masks.shape[-1]).astype(jnp.float32) * kept
    return on.sum(axis=0), labels.sum(axis=0), on.T @ labels, jnp.sum(on * flat, axis=0)


@jax.jit
def _level_tally(activations, masks, keep, levels):
    """Per unit, pixel counts by how many of its levels [U, L] the (upsampled) activation exceeds
    (0..L): all kept pixels [U, L + 1] and those of each concept [U, C, L + 1]; and the concept counts [C]."""
    activations = _upsampled(activations, masks.shape[1:3])
    kept = _pixel_keep(keep, masks.shape)
    flat = activations.reshape(-1, activations.shape[-1])
    labels = (masks.reshape(-1, masks.shape[-1]) & kept).astype(jnp.float32)
    ascending = levels[:, ::-1]  # the levels fall with their index (quantiles 1 - fractions)
    above = jax.vmap(lambda a, lv: jnp.searchsorted(lv, a, side="left"), in_axes=(1, 0), out_axes=1)(
        flat, ascending)  # [P, U]: how many levels lie strictly below each activation
    num_levels = levels.shape[1] + 1

    def one_unit(above_u):
        return (jax.ops.segment_sum(kept[:, 0].astype(jnp.float32), above_u, num_segments=num_levels),
                jax.ops.segment_sum(labels, above_u, num_segments=num_levels).T)

    counts, joint = jax.lax.map(one_unit, above.T)
    return counts, joint, labels.sum(axis=0)


def _histogram_quantile(counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, level) -> np.ndarray:
    """Per unit, the value at `level` (a number, or [L] levels: then [U, L]) of numpy's linear
    quantile, read from its histogram [U, bins] (uniform within a bin)."""
    level = np.asarray(level, np.float64)
    total = counts.sum(axis=1)
    rank = level[..., None] * (total - 1) + 0.5  # the (0-based) rank, as a position on the cumulative count
    cumulative = np.cumsum(counts, axis=1)
    units = np.arange(len(counts))
    b = np.sum(cumulative[None] < rank.reshape(-1, len(counts))[..., None], axis=2)  # first bin reaching the rank
    before = np.where(b > 0, cumulative[units, np.maximum(b - 1, 0)], 0)
    inside = (rank.reshape(-1, len(counts)) - before) / np.maximum(counts[units, b], 1)
    width = (hi - lo) / counts.shape[1]
    value = lo + (b + inside) * width
    return value.reshape(level.shape + (len(counts),)).T if level.ndim else value[0]


THRESHOLDS = ("quantile", "iqr")


def _placed(activations, masks, keep, mesh: Mesh):
    """A batch split over the mesh's "data" axis; padded to a multiple of it with samples that do not
    count (keep False), so any batch size runs on any mesh."""
    pad = -len(keep) % mesh.shape[DATA_AXIS]
    if pad:
        activations, masks = (jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) for x in (activations, masks))
        keep = jnp.concatenate([keep, jnp.zeros(pad, jnp.bool_)])
    return jax.device_put((activations, masks, keep), NamedSharding(mesh, P(DATA_AXIS)))


def dissect(batches: Callable[[], Iterable], *, threshold: str = "quantile", quantile: float = 0.005,
            bins: int = 4096, num_batches: int | None = None, mesh: Mesh | None = None,
            progress: bool = True) -> Dissection:
    """Network Dissection over a streamed probe set. `batches()` returns a fresh iterable of
    (activations [n, h, w, U], masks [n, H, W, C]) pairs, or triples with keep [n] (bool: the samples
    that count, e.g. generated images that read back validly), the same each call (it is read three
    or four times); activations are upsampled bilinearly to (H, W) for the tallies.

    `threshold`: 'quantile' (NetDissect: each unit's top-`quantile` value over its activations at
    their own resolution) or 'iqr' (GAN Dissection's information-quality-ratio search over the
    upsampled activations; `Dissection.search` holds it). Quantiles come from `bins`-bin histograms.
    Each batch is split over `mesh`'s "data" axis (default: every device) and the tallies summed
    across it, so the result does not depend on the device count."""
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
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
                checked = _check_batch(*batch, where=f"batch {i}")
                yield (*_placed(*checked, mesh), len(checked[2]))
                bar.update()

    mesh = data_mesh() if mesh is None else mesh
    size = None  # the resolution quantiles are taken at: the activations' own (NetDissect) or the masks' (IQR)
    lo = hi = None
    samples = seen = 0
    for activations, masks, keep, count in passes("dissection: ranges"):
        size = tuple(masks.shape[1:3]) if threshold == "iqr" else None
        samples, seen = samples + int(np.sum(keep)), seen + count
        a, b = (np.asarray(v) for v in _range(activations, keep, size))
        lo, hi = (a, b) if lo is None else (np.minimum(lo, a), np.maximum(hi, b))
    if lo is None:
        raise ValueError("batches() gave no batches")
    if not np.all(np.isfinite(lo)):
        raise ValueError("the batches keep no sample (every keep flag is False)")
    counts = None
    for activations, _, keep, _ in passes("dissection: histograms"):
        c = np.asarray(_histogram(activations, keep, lo, hi, int(bins), size), np.int64)
        counts = c if counts is None else counts + c
    search = None
    if threshold == "iqr":
        levels = _histogram_quantile(counts, lo, hi, 1.0 - IQR_FRACTIONS).astype(np.float32)  # [U, L]
        above = joint = truth = 0.0
        for activations, masks, keep, _ in passes("dissection: IQR tallies"):
            a, j, t = (np.asarray(v, np.float64) for v in _level_tally(activations, masks, keep, levels))
            above, joint, truth = above + a, joint + j, truth + t
        # on at level l: the activation exceeds level l, i.e. more than the L - 1 - l levels below it
        total = above.sum(axis=1, keepdims=True)
        on = np.cumsum(above[:, ::-1], axis=1)[:, ::-1][:, 1:]  # [U, L + 1] -> exceeding at least k + 1 levels
        both = np.cumsum(joint[..., ::-1], axis=2)[..., ::-1][..., 1:]
        order = np.arange(len(IQR_FRACTIONS))[::-1]  # level l (descending) is exceeded by those above L - l levels
        search = _iqr_search(both[..., order] / total[:, :, None], on[:, order] / total, truth / total[0, 0], levels)
        thresholds = search.thresholds.astype(np.float32)
    else:
        thresholds = _histogram_quantile(counts, lo, hi, 1.0 - quantile).astype(np.float32)
    on = labels = both = total = 0.0
    for activations, masks, keep, _ in passes("dissection: tallies"):
        u, l, b, t = (np.asarray(v, np.float64) for v in _tally(activations, masks, keep, thresholds))
        on, labels, both, total = on + u, labels + l, both + b, total + t
    iou = both / (on[:, None] + labels[None, :] - both + 1e-10)
    present = np.where(on > 0, total / np.maximum(on, 1), thresholds).astype(np.float32)
    return Dissection(iou=iou, thresholds=thresholds, pixels=int(counts[0].sum()), samples=samples, seen=seen,
                      present=present, search=search)


def _check_batch(activations, masks, keep=None, *, where: str = "", same_resolution: bool = False):
    """(activations float32, masks bool, keep bool [n]) after checking their shapes; `where` prefixes errors."""
    prefix = f"{where}: " if where else ""
    if getattr(activations, "ndim", None) != 4:
        raise ValueError(f"{prefix}activations must be [n, h, w, units] (NHWC), got shape "
                         f"{getattr(activations, 'shape', None)}")
    expected = tuple(activations.shape[:3] if same_resolution else activations.shape[:1])
    if getattr(masks, "ndim", None) != 4 or tuple(masks.shape[:len(expected)]) != expected:
        raise ValueError(f"{prefix}masks must be [n, H, W, concepts] with the activations' "
                         f"{'resolution [n, h, w]' if same_resolution else 'n'} {expected}, got shape "
                         f"{getattr(masks, 'shape', None)}")
    if keep is None:
        keep = np.ones(activations.shape[0], bool)
    if getattr(keep, "shape", None) != (activations.shape[0],):
        raise ValueError(f"{prefix}keep must be [n] = [{activations.shape[0]}] flags, got shape "
                         f"{getattr(keep, 'shape', None)}")
    return jnp.asarray(activations, jnp.float32), jnp.asarray(masks, jnp.bool_), jnp.asarray(keep, jnp.bool_)
