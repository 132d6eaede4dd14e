"""GAN inversion: latents (and noise maps) whose generated images match target images.

- `Program` (`program`): the compiled per-target optimisation every method below runs;
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
from latentjax.inversion.program import Program, check_targets, descend, program_mesh, target_keys
from latentjax.inversion.project import (INVERSION_SPACES, InversionConfig, InversionResult, Inverter,
                                         ProjectorProgram, decode, invert, inversion_space)

__all__ = ["INVERSION_SPACES", "InDomainInverter", "InversionConfig", "InversionResult", "Inverter",
           "MultiCodeConfig", "MultiCodeInverter", "MultiCodeResult", "Program", "ProjectorProgram",
           "add_noise_regularization", "check_targets", "decode", "decode_multicode", "descend", "invert",
           "invert_in_domain", "invert_multicode", "inversion_space", "latent_noise_schedule",
           "noise_regularization", "program_mesh", "projector_lr_schedule", "projector_optimizer",
           "renormalize_noise", "target_keys"]
