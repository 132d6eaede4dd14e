"""`IdentityMapper`: an identity and an attribute image mapped to one w of a frozen generator (Nitzan et al.).

The identity encoder (frozen, L2-normalised) and the attribute encoder (fine-tuned) embed their
images; the concatenated embeddings go through an MLP (`latentjax.nn.mlp`) to a w of the
generator's `w` space, which the generator decodes (w broadcast to every layer). `swap(identity,
attributes)` is the whole pipeline; `encode_identity`, `encode_attributes`, `to_w` its pieces;
`generate(params, ...)` the same as a pure function of the trainable params {"mapping",
"attributes"}, for training and `grad`.

A mapper is saved as a native directory (`config.json` + orbax `params/`): the generator's path,
the encoders' specs and the MLP config in the config, the trainable params beside them. The
generator and the identity encoder are loaded again from their paths when the mapper is loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp

from latentjax import builtin
from latentjax.config import ConfigMixin
from latentjax.errors import CheckpointError
from latentjax.identity.encoders import Encoder, load_encoder
from latentjax.io.native import read_directory_config, restore_directory_params, write_directory
from latentjax.latent import LatentSpace, latent_space
from latentjax.load import load_generator
from latentjax.nn.mlp import MLP, MLPConfig

FORMAT = "latentjax.identity_mapper"
BUILTIN_SUFFIX = "_identity_mapper"  # "builtin:shapes" names the shipped latentjax/builtin/shapes_identity_mapper


@dataclasses.dataclass(frozen=True)
class MapperConfig(ConfigMixin):
    """What a mapper is made of: the generator (a `load_generator` path), its `w` space options, the
    encoders' specs (`latentjax.identity.encoders`) and the mapping MLP's hidden widths."""

    generator: str
    identity_encoder: str
    attribute_encoder: str
    hidden: tuple[int, ...] = (2048, 1024, 512)  # the reference's 2560 -> 2048 -> 1024 -> 512 -> w_dim
    truncation_psi: float = 1.0  # of the `w` space the mapper's outputs are decoded in (decoding ignores it)
    class_index: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))


class IdentityMapper:
    """A trained (or fresh) identity mapper: config, loaded networks, trainable params."""

    def __init__(self, config: MapperConfig, space: LatentSpace, identity: Encoder, attributes: Encoder, mapping: MLP,
                 params: dict, metadata: dict | None = None):
        self.config, self.space, self.identity, self.attributes, self.mapping = (config, space, identity, attributes,
                                                                                   mapping)
        self.params = params  # {"mapping": MLP params, "attributes": the attribute encoder's params}
        self.metadata = dict(metadata or {})
        self._swap = jax.jit(self.generate)

    def __repr__(self):
        return (f"IdentityMapper({self.identity.spec} ({self.identity.dim}) + {self.attributes.spec} "
                f"({self.attributes.dim}) -> {self.mapping!r} -> w of {self.config.generator})")

    @classmethod
    def build(cls, config: MapperConfig, key) -> "IdentityMapper":
        """A fresh mapper: networks loaded from the config, the MLP initialised from `key`."""
        generator = load_generator(config.generator)
        space = latent_space(generator, "w", truncation_psi=config.truncation_psi, class_index=config.class_index)
        identity = load_encoder(config.identity_encoder, normalize=True)
        attributes = load_encoder(config.attribute_encoder)
        mlp_config = MLPConfig(identity.dim + attributes.dim, config.hidden + (generator.w_dim,), scaled_layers=2)
        mapping = MLP.init(mlp_config, key)
        return cls(config, space, identity, attributes, mapping, {"mapping": mapping.params,
                                                                  "attributes": attributes.params})

    # --- the pipeline --------------------------------------------------------------------------
    def encode_identity(self, images):
        """Unit identity embeddings [N, identity.dim] (the frozen encoder)."""
        return self.identity.embed(self.identity.params, images)

    def encode_attributes(self, images, params=None):
        """Attribute embeddings [N, attributes.dim] with the (fine-tuned) attribute encoder's params."""
        params = self.params if params is None else params
        return self.attributes.embed(params["attributes"], images)

    def to_w(self, params, identity_embedding, attribute_embedding):
        """w [N, w_dim] of the concatenated embeddings."""
        return self.mapping.apply(params["mapping"], jnp.concatenate([identity_embedding, attribute_embedding], -1))

    def decode(self, generator_params, w):
        """The frozen generator's images of w [N, w_dim] (broadcast to every layer)."""
        return self.space.decode(generator_params, w)

    def generate(self, params, identity_images, attribute_images, generator_params=None):
        """Images with the identity of `identity_images` and the attributes of `attribute_images` (pure)."""
        if identity_images.shape[0] != attribute_images.shape[0]:
            raise ValueError(f"swap needs as many identity as attribute images, got {identity_images.shape[0]} and "
                             f"{attribute_images.shape[0]}")
        w = self.to_w(params, self.encode_identity(identity_images), self.encode_attributes(attribute_images, params))
        return self.decode(self.space.generator.params if generator_params is None else generator_params, w)

    def swap(self, identity_images, attribute_images):
        """`generate` with this mapper's params, compiled once per shape: NHWC images in [-1, 1]."""
        return self._swap(self.params, jnp.asarray(identity_images, jnp.float32),
                          jnp.asarray(attribute_images, jnp.float32))


def save_mapper(mapper: IdentityMapper, out_dir) -> Path:
    """Write `mapper` to `out_dir` (config + trainable params)."""
    return write_directory(out_dir, FORMAT, {"config": mapper.config.to_dict(), "metadata": mapper.metadata},
                           mapper.params)


def load(path) -> IdentityMapper:
    """A mapper written by `save_mapper` (e.g. `WORKDIR/identity_mapper` of a training run), or a
    shipped one: 'builtin:shapes'."""
    if str(path).startswith(builtin.SCHEME):
        path = builtin.path(str(path)[len(builtin.SCHEME):] + BUILTIN_SUFFIX)
    meta, config_file = read_directory_config(path, FORMAT, "identity mapper")
    try:
        config = MapperConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{config_file}: invalid identity mapper config ({e})") from None
    fresh = IdentityMapper.build(config, jax.random.key(0))
    abstract = jax.eval_shape(lambda: fresh.params)
    params = restore_directory_params(path, abstract, config_file)
    return IdentityMapper(config, fresh.space, fresh.identity, fresh.attributes, fresh.mapping, params,
                          meta.get("metadata"))
