"""SeFa (Shen & Zhou, CVPR 2021): closed-form directions from the weights that first act on a latent.

With A the stacked weights that map the latent to the generator's first activations, the
directions are the leading eigenvectors of AᵀA. As in genforce/sefa, each output unit's weight
vector (a row of A) is first normalised to unit length.

- StyleGAN2: A stacks the affine (style) layers of the chosen w+ layers, indexed by the w each one
  reads: the conv layers and the final toRGB (genforce/sefa's choice). Directions live in `w+`,
  editing those layers. rosinality's `closed_form_factorization.py` is `normalize=False,
  torgb="first"`: unnormalised weights, and the first toRGB (`to_rgb1`) instead of the last.
- BigGAN / PGGAN: A = `G.input_weight(params)`, the first layer's weight on z.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from latentjax.config import ConfigMixin, configure
from latentjax.directions.base import Directions, top_eigenvectors
from latentjax.latent import as_space, layer_mask, parse_layers


@dataclasses.dataclass(frozen=True)
class SefaConfig(ConfigMixin):
    k: int = 10  # number of directions
    layers: str | tuple[int, ...] = "all"  # StyleGAN2 w+ layers: 'all', 'i-j', 'i,j' or indices
    normalize: bool = True  # unit-length weight vector per output unit (genforce/sefa; rosinality: False)
    torgb: str = "last"  # style-based: the toRGB whose affine joins the convs' (genforce/sefa; rosinality: 'first')


def sefa(source, config: SefaConfig | dict | None = None, key=None, progress: bool = True,
         **overrides) -> Directions:
    """Directions [k, latent dim] of a generator or LatentSpace; `key` and `progress` are unused
    (closed form, well under a second) and kept for the common method signature.

    `lj.directions.sefa(G, k=10)`: keyword overrides apply on top of `config`.
    """
    config = configure(SefaConfig, config, overrides)
    space = as_space(source)
    G = space.generator
    if space.name.removesuffix("+") != G.input_space:
        raise ValueError(f"SeFa acts on the space the generator's first layers read, {G.input_space!r}"
                         f"{' (or w+)' if G.style_based else ''}, not {space.name!r}")
    if G.style_based:
        weight = G.input_weight(G.params, parse_layers(config.layers, G.num_ws), torgb=config.torgb)
    else:
        weight = G.input_weight(G.params)
    weight = np.asarray(weight, np.float64)
    if weight.shape[1] != space.direction_dim:
        raise ValueError(f"G.input_weight has shape {weight.shape}; expected [out_features, {space.direction_dim}]")
    if config.normalize:
        weight = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    scores, vectors = top_eigenvectors(weight.T @ weight, config.k)
    return Directions(vectors, scores, space.spec, "sefa", config.to_dict(),
                      layer_mask(space, config.layers, config.k))
