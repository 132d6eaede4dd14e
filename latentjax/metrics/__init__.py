"""Measurements: image similarity (PSNR, SSIM, LPIPS, identity), the VGG16 trunk of perceptual losses, and the shapes world's factor read-out,
generator quality and ground-truth direction scores (import those submodules directly)."""

from latentjax.metrics.image import identity_similarity, image_metrics, psnr, ssim
from latentjax.metrics.lpips import LPIPS, load_lpips
from latentjax.metrics.vgg import VGG16, load_vgg16

__all__ = ["LPIPS", "VGG16", "identity_similarity", "image_metrics", "load_lpips", "load_vgg16", "psnr", "ssim"]
