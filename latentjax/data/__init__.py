"""Procedural datasets with known factors of variation (ground truth for latent-direction metrics)."""

from latentjax.data import shapes

__all__ = ["shapes"]
