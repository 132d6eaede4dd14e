"""Measurements: image similarity (PSNR, SSIM, LPIPS, identity), the VGG16 trunk of perceptual losses,
disentanglement of codes (MIG, SAP, DCI, linear separability), perceptual path length, unit
dissection (NetDissect's IoU, GAN Dissection's IQR), and the shapes world's factor read-out, generator quality and ground-truth direction
scores (import those submodules directly)."""

from latentjax.metrics.disentanglement import dci, linear_separability, mig, sap
from latentjax.metrics.dissection import dissect, unit_iou, unit_iqr
from latentjax.metrics.image import identity_similarity, image_metrics, psnr, ssim
from latentjax.metrics.lpips import LPIPS, load_lpips
from latentjax.metrics.ppl import ppl
from latentjax.metrics.vgg import VGG16, load_vgg16

__all__ = ["LPIPS", "VGG16", "dci", "dissect", "identity_similarity", "image_metrics", "linear_separability", "load_lpips",
           "load_vgg16", "mig", "ppl", "psnr", "sap", "ssim", "unit_iou", "unit_iqr"]
