"""Images/s of `G.generate` (jit, after warm-up, median of repeats) per size, batch and precision.

    python benchmarks/generator_throughput.py                       # our generators only
    python benchmarks/generator_throughput.py --reference-repo DIR  # + stylegan2-ada-pytorch, same run

StyleGAN2 models: the 32x32 test-fixture architecture and a realistic 256x256 config-f generator
(z = w = 512, 8 mapping layers, channel_base 32768, channel_max 512), both with random
weights. `--reference-repo` points at a stylegan2-ada-pytorch checkout; when torch and that
code import, the reference is timed on the same machine in the same run (float32; its
bfloat16 is not comparable) and the ratio printed.

BigGAN-deep models: the 128x128 test-fixture layout (channel_width 8) and biggan-deep-128
(the reference's default config, 50.4M parameters), with random weights (`BigGAN.init`),
truncation 0.4. When the `pytorch-pretrained-biggan` package imports (it is optional), it is
timed in the same run with its own random weights in eval mode. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from latentjax import StyleGAN2, StyleGAN2Config
from latentjax.models.biggan import BigGAN, BigGANConfig, class_vector
from timing import describe_environment, import_reference, median_seconds, write_record

MODELS = {
    # name -> (z_dim, w_dim, mapping layers, img_resolution, channel_base, channel_max)
    "fixture-32": (64, 64, 8, 32, 512, 64),
    "config-f-256": (512, 512, 8, 256, 32768, 512),
}
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


def time_ours(config: StyleGAN2Config, batch: int, precision: str, repeats: int) -> float:
    G = StyleGAN2.init(config, jax.random.key(0))
    z = jax.random.normal(jax.random.key(1), (batch, config.z_dim))
    generate = jax.jit(lambda p, z: G.generate(p, z, truncation_psi=0.7, compute_dtype=PRECISIONS[precision]))
    return batch / median_seconds(lambda: generate(G.params, z).block_until_ready(), repeats)


def time_ours_biggan(config: BigGANConfig, batch: int, precision: str, repeats: int) -> float:
    G = BigGAN.init(config, jax.random.key(0))
    z = G.sample_z(jax.random.key(1), batch, BIGGAN_TRUNCATION)
    c = class_vector(jax.random.randint(jax.random.key(2), (batch,), 0, config.num_classes), config.num_classes)
    generate = jax.jit(lambda p, z, c: G.generate(p, z, c, truncation_psi=BIGGAN_TRUNCATION,
                                                  compute_dtype=PRECISIONS[precision]))
    return batch / median_seconds(lambda: generate(G.params, z, c).block_until_ready(), repeats)


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[*MODELS, *BIGGAN_MODELS], choices=[*MODELS, *BIGGAN_MODELS])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repo", default=None, help="stylegan2-ada-pytorch checkout to time beside ours")
    parser.add_argument("--out", default="benchmarks/results/generator_throughput.json")
    args = parser.parse_args(argv)

    Generator = load_reference(args.reference_repo)
    biggan_module = load_biggan_reference() if any(name in BIGGAN_MODELS for name in args.models) else None
    rows = []
    header = f"{'model':<18} {'batch':>5} {'precision':<9} {'ours img/s':>11} {'ref img/s':>10} {'ratio':>6}"
    print(f"{describe_environment()}\n{header}")
    for name in args.models:
        biggan = name in BIGGAN_MODELS
        config = BigGANConfig(**BIGGAN_MODELS[name]) if biggan else make_config(name)
        for batch in args.batches:
            for precision in args.precisions:
                ours = (time_ours_biggan if biggan else time_ours)(config, batch, precision, args.repeats)
                ref = None
                if biggan and biggan_module is not None and precision == "float32":
                    ref = time_reference_biggan(biggan_module, config, batch, args.repeats)
                elif not biggan and Generator is not None and precision == "float32":
                    ref = time_reference(Generator, name, batch, args.repeats)
                rows.append({"model": name, "batch": batch, "precision": precision, "ours_img_per_s": ours,
                             "reference_img_per_s": ref, "ratio": ours / ref if ref else None})
                ref_text = f"{ref:10.2f} {ours / ref:6.2f}" if ref else f"{'-':>10} {'-':>6}"
                print(f"{name:<18} {batch:5d} {precision:<9} {ours:11.2f} {ref_text}", flush=True)
    write_record(args.out, "generator_throughput", repeats=args.repeats, rows=rows)


if __name__ == "__main__":
    main()
