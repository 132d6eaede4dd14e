"""Latent spaces: one object per space of a generator, with sampling, decoding, features and a density.

`latent_space(G, name, **options)` is the one entry point. Every direction method, walk and
inversion takes a `LatentSpace`, so none of them needs to know a model family. The densities
(`density`), streaming statistics (`stats`) and class vectors (`classes`) live beside it.
"""

from latentjax.latent.base import LatentSpace, compiled_decode, layer_mask, parse_layers
from latentjax.latent.classes import category_blocks, class_indices, class_vectors, num_classes, sample_classes
from latentjax.latent.density import Gaussian, standard_normal
from latentjax.latent.spaces import (SPACES, BigGANSpace, PGGANSpace, StyleSpace, as_space, default_space,
                                     latent_space, space_from_spec, space_option_names)
from latentjax.latent.stats import (PCA, Moments, PCAState, fit_gaussian, moments_init, moments_update, pca_init,
                                    pca_update, stream, streaming_pca)

__all__ = ["PCA", "PCAState", "SPACES", "BigGANSpace", "Gaussian", "LatentSpace", "Moments",
           "PGGANSpace", "StyleSpace", "as_space", "default_space", "category_blocks", "compiled_decode", "class_indices", "class_vectors",
           "fit_gaussian", "latent_space", "layer_mask", "moments_init", "moments_update", "num_classes",
           "parse_layers", "pca_init", "pca_update", "sample_classes", "space_from_spec", "space_option_names",
           "standard_normal", "stream", "streaming_pca"]
