"""Pictures: image grids (PNG), walk grids and GIFs, heatmaps and self-contained HTML reports (arrays in, bytes
or text out; the programs write them)."""

from latentjax.viz.grid import encode_png, image_grid, to_uint8
from latentjax.viz.heatmap import heatmap
from latentjax.viz.report import Section, Table, markdown_table, report
from latentjax.viz.walk import encode_gif, walk_grid

__all__ = ["Section", "Table", "encode_gif", "encode_png", "heatmap", "image_grid", "markdown_table", "report",
           "to_uint8", "walk_grid"]
