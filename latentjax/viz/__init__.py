"""Pictures: image grids (PNG), walk grids and GIFs, and self-contained HTML reports."""

from latentjax.viz.grid import encode_png, image_grid, save_png, to_uint8
from latentjax.viz.report import html_report, save_report
from latentjax.viz.walk import encode_gif, render, save_gif, walk_grid

__all__ = ["encode_gif", "encode_png", "html_report", "image_grid", "render", "save_gif", "save_png", "save_report",
           "to_uint8", "walk_grid"]
