"""Pictures: image grids as PNG."""

from latentjax.viz.grid import image_grid, save_png, to_uint8

__all__ = ["image_grid", "save_png", "to_uint8"]
