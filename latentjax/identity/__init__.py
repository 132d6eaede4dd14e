"""Identity / attribute disentanglement through a frozen generator (Nitzan et al. 2020): encoders, the
mapper into w, and `load` for trained mappers (`lj.identity.load("builtin:shapes")`)."""

from latentjax.identity.encoders import Encoder, load_encoder
from latentjax.identity.mapper import IdentityMapper, MapperConfig, load, save_mapper

__all__ = ["Encoder", "IdentityMapper", "MapperConfig", "load", "load_encoder", "save_mapper"]
