"""Images/s of `G.generate` (jit, after warm-up, median of repeats) per size, batch and precision.

    python benchmarks/generator_throughput.py                       # our generators only
    python benchmarks/generator_throughput.py --reference-repo DIR  # + stylegan2-ada-pytorch, same run
    python benchmarks/generator_throughput.py --models stylegan3-t-256 stylegan3-r-256 --stylegan3-repo DIR

StyleGAN2 models: the 32x32 test-fixture architecture and a realistic 256x256 config-f generator
(z = w = 512, 8 mapping layers, channel_base 32768, channel_max 512), both with random
weights. `--reference-repo` points at a stylegan2-ada-pytorch checkout; when torch and that
code import, the reference is timed on the same machine in the same run (float32; its
bfloat16 is not comparable) and the ratio printed.

StyleGAN3 models: the T and R configs of NVIDIA's 256x256 FFHQ-U snapshots (z = w = 512, 2 mapping
layers, 14 layers; T: channel_base 32768, channel_max 512, 3x3 convs; R: 65536 / 1024, 1x1 convs,
radial filters), random weights, truncation 0.7. `--stylegan3-repo` points at an NVlabs/stylegan3
checkout; on CPU the reference runs its `ref` ops (its CUDA plugins need a GPU), in float32.

BigGAN-deep models: the 128x128 test-fixture layout (channel_width 8) and biggan-deep-128
(the reference's default config, 50.4M parameters), with random weights (`BigGAN.init`),
truncation 0.4. When the `pytorch-pretrained-biggan` package imports (it is optional), it is
timed in the same run with its own random weights in eval mode. Prints a table and writes JSON.
Each bfloat16 row also gives the PSNR of its images against the float32 images of the same
weights and latents (images in [-1, 1], peak-to-peak 2).
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.models import StyleGAN3, StyleGAN3Config
from latentjax.models.biggan import BigGAN, BigGANConfig, class_vector
from timing import describe_environment, import_reference, median_seconds, write_record

MODELS = {
    # name -> (z_dim, w_dim, mapping layers, img_resolution, channel_base, channel_max)
    "fixture-32": (64, 64, 8, 32, 512, 64),
    "config-f-256": (512, 512, 8, 256, 32768, 512),
}
STYLEGAN3_MODELS = {
    # name -> StyleGAN3Config fields besides z = w = 512 at 256x256 RGB (the reference's defaults otherwise)
    "stylegan3-t-256": {"channel_base": 32768, "channel_max": 512},
    "stylegan3-r-256": {"channel_base": 65536, "channel_max": 1024, "conv_kernel": 1, "use_radial_filters": True},
}
STYLEGAN3_TRUNCATION = 0.7
BIGGAN_MODELS = {
    # name -> BigGANConfig fields that differ from the reference's default (biggan-deep-128)
    "biggan-fixture-128": {"z_dim": 16, "class_embed_dim": 16, "channel_width": 8, "num_classes": 10},
    "biggan-deep-128": {},
}
BIGGAN_TRUNCATION = 0.4
PRECISIONS = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def make_config(name: str) -> StyleGAN2Config:
    z_dim, w_dim, layers, res, base, cmax = MODELS[name]
    resolutions = [4 * 2 ** i for i in range(int(np.log2(res)) - 1)]
    return StyleGAN2Config(z_dim=z_dim, w_dim=w_dim, img_resolution=res, img_channels=3, mapping_layers=layers,
                           channels=tuple(min(base // r, cmax) for r in resolutions), conv_clamp=256.0)


def time_ours(config: StyleGAN2Config, batch: int, precision: str, repeats: int) -> tuple[float, jax.Array]:
    G = StyleGAN2.init(config, jax.random.key(0))
    z = jax.random.normal(jax.random.key(1), (batch, config.z_dim))
    generate = jax.jit(lambda p, z: G.generate(p, z, truncation_psi=0.7, compute_dtype=PRECISIONS[precision]))
    return batch / median_seconds(lambda: generate(G.params, z).block_until_ready(), repeats), generate(G.params, z)


def stylegan3_config(name: str) -> StyleGAN3Config:
    return StyleGAN3Config(z_dim=512, w_dim=512, img_resolution=256, img_channels=3, **STYLEGAN3_MODELS[name])


def time_ours_stylegan3(config: StyleGAN3Config, batch: int, precision: str, repeats: int) -> tuple[float, jax.Array]:
    G = StyleGAN3.init(config, jax.random.key(0))
    z = jax.random.normal(jax.random.key(1), (batch, config.z_dim))
    generate = jax.jit(lambda p, z: G.generate(p, z, truncation_psi=STYLEGAN3_TRUNCATION,
                                               compute_dtype=PRECISIONS[precision]))
    return batch / median_seconds(lambda: generate(G.params, z).block_until_ready(), repeats), generate(G.params, z)


def load_stylegan3_reference(repo: str | None):
    """NVIDIA's StyleGAN3 Generator class, or None (with the reason printed) when it cannot run here.
    Its `training` package shadows stylegan2-ada-pytorch's, so any imported one is dropped first."""
    def load():
        for name in [m for m in sys.modules if m.split(".")[0] in ("training", "torch_utils", "dnnlib")]:
            del sys.modules[name]
        from training.networks_stylegan3 import Generator
        return Generator

    return import_reference(repo, "stylegan3", load)


def time_reference_stylegan3(Generator, config: StyleGAN3Config, batch: int, repeats: int) -> float:
    import torch

    torch.manual_seed(0)
    G = Generator(z_dim=config.z_dim, c_dim=0, w_dim=config.w_dim, img_resolution=config.img_resolution,
                  img_channels=config.img_channels, mapping_kwargs={"num_layers": config.mapping_layers},
                  channel_base=config.channel_base, channel_max=config.channel_max, conv_kernel=config.conv_kernel,
                  use_radial_filters=config.use_radial_filters, num_fp16_res=0).eval().requires_grad_(False)
    z = torch.randn([batch, config.z_dim])

    def run():
        with torch.no_grad():
            G(z, None, truncation_psi=STYLEGAN3_TRUNCATION)

    return batch / median_seconds(run, repeats)


def time_ours_biggan(config: BigGANConfig, batch: int, precision: str, repeats: int) -> tuple[float, jax.Array]:
    G = BigGAN.init(config, jax.random.key(0))
    z = G.sample_z(jax.random.key(1), batch, BIGGAN_TRUNCATION)
    c = class_vector(jax.random.randint(jax.random.key(2), (batch,), 0, config.num_classes), config.num_classes)
    generate = jax.jit(lambda p, z, c: G.generate(p, z, c, truncation_psi=BIGGAN_TRUNCATION,
                                                  compute_dtype=PRECISIONS[precision]))
    return batch / median_seconds(lambda: generate(G.params, z, c).block_until_ready(), repeats), generate(G.params, z, c)


def load_biggan_reference():
    """The `pytorch_pretrained_biggan` module, or None (with the reason printed) when it cannot run here."""
    try:
        import pytorch_pretrained_biggan
        import torch
    except Exception as e:  # the reference is optional: report why it is skipped and go on
        print(f"BigGAN reference not timed: cannot import pytorch_pretrained_biggan ({e!r})")
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return pytorch_pretrained_biggan


def time_reference_biggan(module, config: BigGANConfig, batch: int, repeats: int) -> float:
    import torch

    torch.manual_seed(0)
    model = module.BigGAN(module.BigGANConfig(**config.to_dict())).eval()
    z = torch.from_numpy(module.truncated_noise_sample(batch, config.z_dim, BIGGAN_TRUNCATION, seed=1))
    c = torch.from_numpy(np.eye(config.num_classes, dtype=np.float32)[np.arange(batch) % config.num_classes])

    def run():
        with torch.no_grad():
            model(z, c, BIGGAN_TRUNCATION)

    return batch / median_seconds(run, repeats)


def load_reference(repo: str | None):
    """The reference Generator class, or None (with the reason printed) when it cannot run here."""
    def load():
        from training.networks import Generator
        return Generator

    return import_reference(repo, "stylegan2-ada-pytorch", load)


def time_reference(Generator, name: str, batch: int, repeats: int) -> float:
    import torch

    z_dim, w_dim, layers, res, base, cmax = MODELS[name]
    G = Generator(z_dim=z_dim, c_dim=0, w_dim=w_dim, img_resolution=res, img_channels=3,
                  mapping_kwargs={"num_layers": layers},
                  synthesis_kwargs={"channel_base": base, "channel_max": cmax, "num_fp16_res": 0,
                                    "conv_clamp": 256}).eval().requires_grad_(False)
    z = torch.randn([batch, z_dim])

    def run():
        with torch.no_grad():
            G(z, None, truncation_psi=0.7, noise_mode="const")

    return batch / median_seconds(run, repeats)


def psnr_db(images, reference) -> float:
    """PSNR of `images` against `reference`, both in [-1, 1] (peak-to-peak 2)."""
    mse = float(jnp.mean(jnp.square(images.astype(jnp.float32) - reference.astype(jnp.float32))))
    return float("inf") if mse == 0 else 10 * float(np.log10(4.0 / mse))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    everything = [*MODELS, *STYLEGAN3_MODELS, *BIGGAN_MODELS]
    parser.add_argument("--models", nargs="+", default=everything, choices=everything)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repo", default=None, help="stylegan2-ada-pytorch checkout to time beside ours")
    parser.add_argument("--stylegan3-repo", default=None, help="NVlabs/stylegan3 checkout to time beside ours")
    parser.add_argument("--out", default="benchmarks/results/generator_throughput.json")
    args = parser.parse_args(argv)

    Generator = load_reference(args.reference_repo)
    biggan_module = load_biggan_reference() if any(name in BIGGAN_MODELS for name in args.models) else None
    sg3_reference = load_stylegan3_reference(args.stylegan3_repo)
    references = {  # family -> (name, config, batch, repeats) -> reference img/s, or None when not importable
        "stylegan2": Generator and (lambda name, config, b, r: time_reference(Generator, name, b, r)),
        "stylegan3": sg3_reference and (lambda name, config, b, r: time_reference_stylegan3(sg3_reference, config, b, r)),
        "biggan": biggan_module and (lambda name, config, b, r: time_reference_biggan(biggan_module, config, b, r)),
    }
    rows = []
    header = (f"{'model':<18} {'batch':>5} {'precision':<9} {'ours img/s':>11} {'ref img/s':>10} {'ratio':>6} "
              f"{'PSNR vs f32':>11}")
    print(f"{describe_environment()}\n{header}")
    for name in args.models:
        family = "biggan" if name in BIGGAN_MODELS else "stylegan3" if name in STYLEGAN3_MODELS else "stylegan2"
        config = {"biggan": lambda: BigGANConfig(**BIGGAN_MODELS[name]), "stylegan3": lambda: stylegan3_config(name),
                  "stylegan2": lambda: make_config(name)}[family]()
        time = {"biggan": time_ours_biggan, "stylegan3": time_ours_stylegan3, "stylegan2": time_ours}[family]
        for batch in args.batches:
            float32_images = None
            for precision in sorted(args.precisions, key=lambda p: p != "float32"):  # float32 first: the PSNR base
                ours, images = time(config, batch, precision, args.repeats)
                if precision == "float32":
                    float32_images = images
                psnr = None if precision == "float32" or float32_images is None else psnr_db(images, float32_images)
                reference = references[family] if precision == "float32" else None  # timed in float32 only
                ref = reference(name, config, batch, args.repeats) if reference else None
                rows.append({"model": name, "batch": batch, "precision": precision, "ours_img_per_s": ours,
                             "reference_img_per_s": ref, "ratio": ours / ref if ref else None,
                             "psnr_vs_float32_db": psnr})
                ref_text = f"{ref:10.2f} {ours / ref:6.2f}" if ref else f"{'-':>10} {'-':>6}"
                psnr_text = f"{psnr:11.1f}" if psnr is not None else f"{'-':>11}"
                print(f"{name:<18} {batch:5d} {precision:<9} {ours:11.2f} {ref_text} {psnr_text}", flush=True)
    write_record(args.out, "generator_throughput", repeats=args.repeats, rows=rows)


if __name__ == "__main__":
    main()
