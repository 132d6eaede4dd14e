"""Pictures: image grids (PNG), walk grids and GIFs, MP4s (through an installed ffmpeg), heatmaps and
self-contained HTML reports (arrays in, bytes or text out; the programs write them)."""

from latentjax.viz.grid import encode_png, image_grid, to_uint8
from latentjax.viz.heatmap import heatmap
from latentjax.viz.report import Section, Table, markdown_table, report
from latentjax.viz.video import encode_mp4, find_ffmpeg
from latentjax.viz.walk import encode_gif, walk_grid

__all__ = ["Section", "Table", "encode_gif", "encode_mp4", "encode_png", "find_ffmpeg", "heatmap", "image_grid",
           "markdown_table", "report", "to_uint8", "walk_grid"]
