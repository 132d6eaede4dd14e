"""Plots (numpy + pillow) on labelled axes: scatter plots, for relations across a family of runs, and
line plots, for curves such as a score against an edit's strength."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_INK, _GRID, _POINT = (0, 0, 0), (225, 225, 225), (33, 110, 170)
_PALETTE = ((33, 110, 170), (214, 96, 39), (44, 150, 60), (190, 40, 50), (130, 90, 180), (140, 86, 75),
            (220, 110, 180), (120, 120, 120))


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
    image, draw, px, py = _axes(x, y, xlabel, ylabel, title, width, height, "scatter")
    font = ImageFont.load_default()
    for i, (a, b) in enumerate(zip(x, y)):
        draw.ellipse([px(a) - 4, py(b) - 4, px(a) + 4, py(b) + 4], fill=_POINT)
        if labels is not None:
            draw.text((px(a) + 6, py(b) - 6), str(labels[i]), fill=_INK, font=font)
    return np.asarray(image)


def line_plot(x, series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str, title: str = "",
              width: int = 420, height: int = 320) -> np.ndarray:
    """uint8 RGB image of one polyline per named series over the shared x, each in its own colour,
    with a legend (e.g. GANalyze's mean score against alpha, one line per attribute)."""
    x = np.asarray(x, np.float64)
    ys = {name: np.asarray(y, np.float64) for name, y in series.items()}
    if x.ndim != 1 or x.size < 2 or not ys or any(y.shape != x.shape for y in ys.values()):
        raise ValueError(f"line_plot needs x with >= 2 points and series of its length, got x {x.shape} and "
                         f"{ {name: y.shape for name, y in ys.items()} }")
    image, draw, px, py = _axes(x, np.concatenate(list(ys.values())), xlabel, ylabel, title, width, height,
                                "line_plot")
    font = ImageFont.load_default()
    for i, (name, y) in enumerate(ys.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        points = [(px(a), py(b)) for a, b in zip(x, y)]
        draw.line(points, fill=colour, width=2)
        for a, b in points:
            draw.ellipse([a - 3, b - 3, a + 3, b + 3], fill=colour)
        draw.text((width - 100, 40 + 12 * i), name, fill=colour, font=font)
    return np.asarray(image)


def _axes(x: np.ndarray, y: np.ndarray, xlabel: str, ylabel: str, title: str, width: int, height: int, what: str):
    """A white canvas with framed, gridded axes over the range of x and y: (image, draw, px, py), where
    px / py map data values to pixel coordinates."""
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError(f"{what} x and y must be finite")
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
    if title:
        draw.text((4, 4), title, fill=_INK, font=font)
    draw.text((left, height - 16), f"x: {xlabel}", fill=_INK, font=font)
    draw.text((left, top - 14), f"y: {ylabel}", fill=_INK, font=font)
    return image, draw, px, py
