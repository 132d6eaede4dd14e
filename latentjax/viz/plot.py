"""Scatter plots (numpy + pillow): points on labelled axes, for relations across a family of runs."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_INK, _GRID, _POINT = (0, 0, 0), (225, 225, 225), (33, 110, 170)


def _ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    return np.linspace(lo, hi, count)


def _padded_range(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(lo) * 0.1, 0.05)
    return lo - pad, hi + pad


def scatter(x, y, *, xlabel: str, ylabel: str, title: str = "", labels: Sequence[str] | None = None,
            width: int = 420, height: int = 320) -> np.ndarray:
    """uint8 RGB image of the points (x[i], y[i]), axes with 5 ticks each, optional point labels."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"scatter needs x and y of the same length >= 1, got shapes {x.shape} and {y.shape}")
    if labels is not None and len(labels) != len(x):
        raise ValueError(f"scatter labels: {len(labels)} given for {len(x)} points")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("scatter x and y must be finite")
    font = ImageFont.load_default()
    left, right, top, bottom = 58, 12, 36 if title else 22, 40
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    (x0, x1), (y0, y1) = _padded_range(x), _padded_range(y)
    px = lambda v: left + (v - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    py = lambda v: height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    for v in _ticks(x0, x1):
        draw.line([(px(v), top), (px(v), height - bottom)], fill=_GRID)
        draw.text((px(v) - 14, height - bottom + 4), f"{v:.3g}", fill=_INK, font=font)
    for v in _ticks(y0, y1):
        draw.line([(left, py(v)), (width - right, py(v))], fill=_GRID)
        draw.text((4, py(v) - 6), f"{v:.3g}", fill=_INK, font=font)
    draw.rectangle([left, top, width - right, height - bottom], outline=_INK)
    for i, (a, b) in enumerate(zip(x, y)):
        draw.ellipse([px(a) - 4, py(b) - 4, px(a) + 4, py(b) + 4], fill=_POINT)
        if labels is not None:
            draw.text((px(a) + 6, py(b) - 6), str(labels[i]), fill=_INK, font=font)
    if title:
        draw.text((4, 4), title, fill=_INK, font=font)
    draw.text((left, height - 16), f"x: {xlabel}", fill=_INK, font=font)
    draw.text((left, top - 14), f"y: {ylabel}", fill=_INK, font=font)
    return np.asarray(image)
