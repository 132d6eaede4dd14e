"""latentjax: explore, edit and invert the latent spaces of pretrained GANs in JAX.

    import latentjax as lj
    G = lj.load_generator("ffhq.pkl")
    img = G.generate(G.params, z, truncation_psi=0.7)   # NHWC
"""

from latentjax import directions, latent, viz, walks
from latentjax.directions import Directions
from latentjax.io import CheckpointError, load_generator, save_generator
from latentjax.latent import LatentSpace, latent_space
from latentjax.models import BigGAN, BigGANConfig, PGGAN, PGGANConfig, StyleGAN2, StyleGAN2Config
from latentjax.models.biggan import class_vector
from latentjax.models.stylegan2_convert import ConversionError

__version__ = "0.1.0"
__all__ = ["BigGAN", "BigGANConfig", "CheckpointError", "ConversionError", "Directions", "LatentSpace", "directions", "latent", "latent_space",
           "viz", "walks", "PGGAN", "PGGANConfig", "StyleGAN2", "StyleGAN2Config", "load_generator",
           "class_vector", "save_generator"]
