"""latentjax: explore, edit and invert the latent spaces of pretrained GANs in JAX.

    import latentjax as lj
    G = lj.load_generator("ffhq.pkl")
    img = G.generate(G.params, z, truncation_psi=0.7)   # NHWC
"""

from latentjax import directions, identity, inversion, latent, metrics, shapes, viz, walks
from latentjax.directions import Directions
from latentjax.errors import CheckpointError, ConversionError
from latentjax.inversion import invert
from latentjax.latent import LatentSpace, latent_space
from latentjax.load import load_generator, save_generator
from latentjax.models import BigGAN, BigGANConfig, PGGAN, PGGANConfig, StyleGAN2, StyleGAN2Config
from latentjax.models.biggan import class_vector

__version__ = "0.1.0"
__all__ = ["BigGAN", "BigGANConfig", "CheckpointError", "ConversionError", "Directions", "LatentSpace", "PGGAN",
           "PGGANConfig", "StyleGAN2", "StyleGAN2Config", "class_vector", "directions", "identity", "invert", "inversion",
           "latent", "latent_space", "load_generator", "metrics", "save_generator", "shapes", "viz", "walks"]
