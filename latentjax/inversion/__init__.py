"""GAN inversion: latents (and noise maps) whose generated images match target images."""

from latentjax.inversion.batch import invert_directory
from latentjax.inversion.optim import (add_noise_regularization, latent_noise_schedule, noise_regularization,
                                       projector_lr_schedule, projector_optimizer, renormalize_noise)
from latentjax.inversion.project import (SPACES, InversionConfig, InversionResult, Inverter, decode, invert,
                                         latent_statistics, noise_maps, with_noise)

__all__ = ["SPACES", "InversionConfig", "InversionResult", "Inverter", "add_noise_regularization", "decode",
           "invert", "invert_directory", "latent_noise_schedule", "latent_statistics", "noise_maps",
           "noise_regularization", "projector_lr_schedule", "projector_optimizer", "renormalize_noise",
           "with_noise"]
