"""Pictures: image grids (PNG), walk grids and GIFs, heatmaps and self-contained HTML reports (arrays in, bytes out)."""

from latentjax.viz.grid import encode_png, image_grid, save_png, to_uint8
from latentjax.viz.report import html_report, save_report
from latentjax.viz.walk import encode_gif, save_gif, walk_grid

__all__ = ["encode_gif", "encode_png", "html_report", "image_grid", "save_gif", "save_png", "save_report",
           "to_uint8", "walk_grid"]
