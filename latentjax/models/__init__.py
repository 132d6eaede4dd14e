"""Generator families. Each module holds the Flax modules, the config and the source key maps."""

from latentjax.models.biggan import BigGAN, BigGANConfig
from latentjax.models.pggan import PGGAN, PGGANConfig
from latentjax.models.stylegan2 import StyleGAN2, StyleGAN2Config
from latentjax.models.stylegan3 import StyleGAN3, StyleGAN3Config

# family name (as written in the native config.json) -> (generator class, config class)
FAMILIES = {"stylegan2": (StyleGAN2, StyleGAN2Config), "stylegan3": (StyleGAN3, StyleGAN3Config),
            "biggan": (BigGAN, BigGANConfig), "pggan": (PGGAN, PGGANConfig)}

__all__ = ["FAMILIES", "BigGAN", "BigGANConfig", "PGGAN", "PGGANConfig", "StyleGAN2", "StyleGAN2Config",
           "StyleGAN3", "StyleGAN3Config"]
