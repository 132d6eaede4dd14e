"""Measurements: image similarity (PSNR, SSIM, LPIPS, identity), and the shapes world's factor read-out,
generator quality and ground-truth direction scores (import those submodules directly)."""

from latentjax.metrics.image import identity_similarity, image_metrics, psnr, ssim
from latentjax.metrics.lpips import LPIPS, load_lpips

__all__ = ["LPIPS", "identity_similarity", "image_metrics", "load_lpips", "psnr", "ssim"]
