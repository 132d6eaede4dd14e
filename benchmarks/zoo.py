"""The generators the benchmarks time, by name: the published architectures with random weights
(speed does not depend on the values, and nothing is downloaded) and tiny ones for smoke runs.

StyleGAN2 config-f (z = w = 512, 8 mapping layers, widths min(32768 / res, 512), conv_clamp 256)
at 256 and 1024; the StyleGAN3 T and R configs of NVIDIA's 256x256 FFHQ-U snapshots; BigGAN-deep
at 128 (the reference's default config), 256 and 512 (channel multipliers 16, 16, 8, 8, 4, 2[, 1],
attention at 64x64, as in the paper's architecture table); ProgressiveGAN at 256 (z 512, widths
512, 512, 512, 512, 256, 128, 64, the CelebA-HQ schedule). `stylegan2-32` is the 32 px test
fixture's layout; `*-tiny` are the smoke run's models.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.models import StyleGAN3, StyleGAN3Config
from latentjax.models.biggan import DEEP_128_LAYERS, BigGAN, BigGANConfig, class_vector
from latentjax.models.pggan import PGGAN, PGGANConfig

TRUNCATION = {"stylegan2": 0.7, "stylegan3": 0.7, "biggan": 0.4, "pggan": 1.0}
PRECISIONS = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def stylegan2_config(resolution: int, dim: int = 512, mapping_layers: int = 8, channel_base: int = 32768,
                     channel_max: int = 512) -> StyleGAN2Config:
    resolutions = [4 * 2 ** i for i in range(int(np.log2(resolution)) - 1)]
    return StyleGAN2Config(z_dim=dim, w_dim=dim, img_resolution=resolution, img_channels=3,
                           mapping_layers=mapping_layers, conv_clamp=256.0,
                           channels=tuple(min(channel_base // r, channel_max) for r in resolutions))


def biggan_deep_layers(multipliers: tuple[int, ...]) -> tuple[tuple[bool, int, int], ...]:
    """BigGAN-deep's blocks: per resolution a block that keeps the width, then one that upsamples to the next."""
    return tuple(layer for a, b in zip(multipliers, multipliers[1:]) for layer in ((False, a, a), (True, a, b)))


CONFIGS = {
    "stylegan2-256": ("stylegan2", lambda: stylegan2_config(256)),
    "stylegan2-1024": ("stylegan2", lambda: stylegan2_config(1024)),
    "stylegan2-32": ("stylegan2", lambda: stylegan2_config(32, 64, 8, 512, 64)),
    "stylegan2-tiny": ("stylegan2", lambda: stylegan2_config(16, 32, 2, 256, 32)),
    "stylegan3-t-256": ("stylegan3", lambda: StyleGAN3Config(z_dim=512, w_dim=512, img_resolution=256)),
    "stylegan3-r-256": ("stylegan3", lambda: StyleGAN3Config(z_dim=512, w_dim=512, img_resolution=256,
                                                             channel_base=65536, channel_max=1024, conv_kernel=1,
                                                             use_radial_filters=True)),
    "stylegan3-tiny": ("stylegan3", lambda: StyleGAN3Config(z_dim=16, w_dim=16, img_resolution=16, channel_base=256,
                                                            channel_max=16, num_layers=4, num_critical=1,
                                                            margin_size=4)),
    "biggan-deep-128": ("biggan", lambda: BigGANConfig()),
    "biggan-deep-256": ("biggan", lambda: BigGANConfig(output_dim=256,
                                                       layers=biggan_deep_layers((16, 16, 8, 8, 4, 2, 1)))),
    "biggan-deep-512": ("biggan", lambda: BigGANConfig(output_dim=512,
                                                       layers=biggan_deep_layers((16, 16, 8, 8, 4, 2, 1, 1)))),
    "biggan-tiny": ("biggan", lambda: BigGANConfig(output_dim=16, z_dim=8, class_embed_dim=8, channel_width=4,
                                                   num_classes=4, layers=((True, 16, 8), (False, 8, 4), (True, 4, 2), (False, 2, 1)),
                                                   attention_layer_position=2)),
    "pggan-256": ("pggan", lambda: PGGANConfig(z_dim=512, channels=(512, 512, 512, 512, 256, 128, 64))),
    "pggan-tiny": ("pggan", lambda: PGGANConfig(z_dim=16, channels=(16, 16, 8))),
}
FAMILIES = {"stylegan2": StyleGAN2, "stylegan3": StyleGAN3, "biggan": BigGAN, "pggan": PGGAN}
assert DEEP_128_LAYERS == biggan_deep_layers((16, 16, 8, 4, 2, 1)), "BigGAN-deep's block rule"


def family(name: str) -> str:
    return CONFIGS[name][0]


def config(name: str):
    return CONFIGS[name][1]()


def init(name: str):
    """The generator `name` with random weights (initialised before this returns)."""
    G = FAMILIES[family(name)].init(config(name), jax.random.key(0))
    jax.block_until_ready(G.params)
    return G


def generate_program(G, batch: int, precision: str):
    """(jitted f(params, *inputs) -> images, inputs): the generator's whole forward pass at the
    family's truncation, constant noise, in `precision`."""
    dtype = PRECISIONS[precision]
    psi = TRUNCATION[G.family]
    if G.family == "biggan":
        inputs = (G.sample_z(jax.random.key(1), batch, psi),
                  class_vector(jnp.arange(batch) % G.c_dim, G.c_dim))
        return jax.jit(lambda p, z, c: G.generate(p, z, c, truncation_psi=psi, compute_dtype=dtype)), inputs
    z = jax.random.normal(jax.random.key(1), (batch, G.z_dim))
    return jax.jit(lambda p, z: G.generate(p, z, truncation_psi=psi, compute_dtype=dtype)), (z,)
