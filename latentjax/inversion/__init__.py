"""GAN inversion: latents (and noise maps) whose generated images match target images.

- `invert` / `Inverter`: optimisation in z / w / w+ (+ noise), the NVIDIA projector's recipe;
- `invert_in_domain`: in-domain inversion, an encoder's code refined under a domain regulariser
  (the encoder, `latentjax.nn.encoder`, is trained with `latentjax train --config configs/train_encoder.py`);
- `invert_multicode`: mGANprior, N codes composed at a layer with per-code channel importance.
"""

from latentjax.inversion.indomain import InDomainInverter, invert_in_domain
from latentjax.inversion.multicode import (MultiCodeConfig, MultiCodeInverter, MultiCodeResult, decode_multicode,
                                           invert_multicode)
from latentjax.inversion.optim import (add_noise_regularization, latent_noise_schedule, noise_regularization,
                                       projector_lr_schedule, projector_optimizer, renormalize_noise)
from latentjax.inversion.project import (SPACES, InversionConfig, InversionResult, Inverter, decode, invert,
                                         latent_statistics, noise_maps, with_noise)

__all__ = ["SPACES", "InDomainInverter", "InversionConfig", "InversionResult", "Inverter",
           "MultiCodeConfig", "MultiCodeInverter", "MultiCodeResult", "add_noise_regularization", "decode",
           "decode_multicode", "invert", "invert_in_domain", "invert_multicode",
           "latent_noise_schedule", "latent_statistics", "noise_maps", "noise_regularization",
           "projector_lr_schedule", "projector_optimizer", "renormalize_noise", "with_noise"]
