"""Unit dissection: how well each unit of a layer detects each concept (Network Dissection).

NetDissect-Lite (Bau et al. 2017) thresholds each unit at the top-`quantile` (0.005) value of its
activations over every pixel of the probe set, and scores the binary map `activation > threshold`
against each concept mask by IoU accumulated over the dataset, both / (unit + label - both + 1e-10);
a unit is a detector of its best concept above IoU 0.04. `unit_iou` computes this exactly for
arrays in memory at the masks' resolution (the reference reads the threshold from a streaming
quantile sketch, and upsamples activations to the masks bilinearly first).
"""

from __future__ import annotations

import numpy as np

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
