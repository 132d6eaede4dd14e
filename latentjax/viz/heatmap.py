"""Heatmaps (numpy + pillow): a labelled, colour-scaled grid of a matrix with a colour bar."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


# a perceptually ordered dark-blue -> teal -> yellow ramp (anchors interpolated linearly)
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)
_NAN = (200, 200, 200)


def colours(values, vmin: float, vmax: float) -> np.ndarray:
    """uint8 RGB [..., 3] of `values` scaled from [vmin, vmax] onto the ramp; NaN is grey."""
    values = np.asarray(values, np.float64)
    t = np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    position = np.nan_to_num(t) * (len(_RAMP) - 1)
    lo = np.minimum(np.floor(position).astype(int), len(_RAMP) - 2)
    frac = (position - lo)[..., None]
    rgb = (1 - frac) * _RAMP[lo] + frac * _RAMP[lo + 1]
    rgb[np.isnan(values)] = _NAN
    return np.round(rgb).astype(np.uint8)


def heatmap(matrix, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "", cell: int = 36,
            vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """uint8 RGB image of `matrix` [R, C]: one coloured cell per entry with its value written in it,
    rows and columns labelled, and a colour bar from vmin to vmax (default: the finite range)."""
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"heatmap needs a [rows, cols] matrix matching {len(row_labels)} row and "
                         f"{len(col_labels)} column labels, got shape {matrix.shape}")
    finite = matrix[np.isfinite(matrix)]
    vmin = float(finite.min()) if vmin is None and finite.size else (0.0 if vmin is None else vmin)
    vmax = float(finite.max()) if vmax is None and finite.size else (1.0 if vmax is None else vmax)
    font = ImageFont.load_default()
    char_w, line_h = 7, 14
    left = 8 + char_w * max(len(s) for s in row_labels)
    top = 2 * line_h + 8 + (line_h if title else 0)
    rows, cols = matrix.shape
    bar_x = left + cols * cell + 16
    width, height = bar_x + 16 + 8 * char_w, max(top + rows * cell + 8, top + 120)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((4, 2), title, fill=(0, 0, 0), font=font)
    grid = colours(matrix, vmin, vmax)
    for j, label in enumerate(col_labels):  # column labels alternate between two lines so they do not overlap
        draw.text((left + j * cell + 2, top - 2 * line_h + (j % 2) * line_h - 4), label, fill=(0, 0, 0), font=font)
    for i, label in enumerate(row_labels):
        draw.text((4, top + i * cell + cell // 2 - line_h // 2), label, fill=(0, 0, 0), font=font)
        for j in range(cols):
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=tuple(int(c) for c in grid[i, j]))
            value = matrix[i, j]
            text = "-" if math.isnan(value) else f"{value:.2f}"
            ink = (0, 0, 0) if math.isnan(value) or (value - vmin) > 0.6 * (vmax - vmin) else (255, 255, 255)
            draw.text((x + 3, y + cell // 2 - line_h // 2), text, fill=ink, font=font)
    bar_h = max(rows * cell, 100)  # the legend: a vertical colour bar, vmax at the top
    ramp = colours(np.linspace(vmax, vmin, bar_h), vmin, vmax)
    image.paste(Image.fromarray(np.repeat(ramp[:, None], 12, axis=1)), (bar_x, top))
    draw.text((bar_x + 14, top - 4), f"{vmax:.2g}", fill=(0, 0, 0), font=font)
    draw.text((bar_x + 14, top + bar_h - line_h + 2), f"{vmin:.2g}", fill=(0, 0, 0), font=font)
    return np.asarray(image)

