"""The reference implementations, timed beside ours. Each is optional: a user's checkout (or an
installed package) imported at run time with torch installed beside latentjax, never a
dependency. Every function raises `Unavailable` with the reason when its reference cannot run
here, so that a benchmark can say why a figure is missing.

Checkouts: NVlabs/stylegan2-ada-pytorch (generator, projector), NVlabs/stylegan3 (generator),
facebookresearch/pytorch_GAN_zoo (PGGAN), anvoynov/GANLatentDiscovery (Voynov & Babenko's step);
the `pytorch-pretrained-biggan` package (BigGAN-deep). References run in float32 on `device`
('cuda' where torch sees a GPU and one was asked for, else 'cpu'; on CPU NVIDIA's code runs its
reference ops, its CUDA plugins needing a GPU).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import os
import sys
from pathlib import Path

import numpy as np

from timing import median_seconds

# Top-level names the checkouts share (stylegan2-ada-pytorch and stylegan3 both ship `training`,
# `torch_utils` and `dnnlib`; pytorch_GAN_zoo and GANLatentDiscovery both ship `models`).
SHARED_NAMES = ("training", "torch_utils", "dnnlib", "legacy", "projector", "models", "utils")
VGG16_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class Unavailable(RuntimeError):
    """A reference that cannot run here; the message says why."""


def torch_module():
    try:
        import torch
    except ImportError as e:
        raise Unavailable(f"torch is not installed ({e})") from None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def torch_device(device: str) -> str:
    """'cuda' when a GPU run was asked for and torch sees one, else 'cpu'."""
    torch = torch_module()
    return "cuda" if device == "gpu" and torch.cuda.is_available() else "cpu"


def import_from(repo: str | None, name: str, *modules: str):
    """The modules `modules` imported from the checkout `repo` (one reference's names replacing
    another's in `sys.modules`), or Unavailable."""
    if not repo:
        raise Unavailable(f"no {name} checkout given")
    root = str(Path(repo).absolute())
    if not Path(root).is_dir():
        raise Unavailable(f"the {name} checkout {Path(repo).name!r} is not a directory")
    torch_module()
    for loaded in [m for m in sys.modules if m.split(".")[0] in SHARED_NAMES]:
        del sys.modules[loaded]
    sys.path.insert(0, root)
    try:
        return [importlib.import_module(m) for m in modules]
    except Exception as e:  # any import failure of a third-party checkout: say why and go on
        raise Unavailable(f"cannot import {', '.join(modules)} from the {name} checkout ({e!r})") from None
    finally:
        sys.path.remove(root)


def seconds_per_call(run, repeats: int, device: str, budget_s: float | None = None) -> float:
    """Median seconds of `run()` (`timing.median_seconds`), waiting for the GPU where it runs there."""
    torch = torch_module()

    def synchronised():
        out = run()
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return median_seconds(synchronised, repeats, budget_s)


# --- generators ------------------------------------------------------------------------------------
def stylegan2(repo: str | None, config, device: str):
    """NVIDIA's stylegan2-ada-pytorch Generator with `config`'s architecture (random weights), in eval mode."""
    (networks,) = import_from(repo, "stylegan2-ada-pytorch", "training.networks")
    torch = torch_module()
    torch.manual_seed(0)
    base, cmax = stylegan2_channel_base(config)
    return networks.Generator(
        z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim, img_resolution=config.img_resolution,
        img_channels=config.img_channels, mapping_kwargs={"num_layers": config.mapping_layers},
        synthesis_kwargs={"channel_base": base, "channel_max": cmax, "num_fp16_res": 0,
                          "conv_clamp": config.conv_clamp}).eval().requires_grad_(False).to(device)


def stylegan2_channel_base(config) -> tuple[int, int]:
    """(channel_base, channel_max) that give `config.channels` (widths min(base // res, max))."""
    resolutions = [4 * 2 ** i for i in range(len(config.channels))]
    cmax = max(config.channels)
    for base in (2 ** k for k in range(20)):
        if tuple(min(base // r, cmax) for r in resolutions) == tuple(config.channels):
            return base, cmax
    raise Unavailable(f"channels {config.channels} are not min(channel_base // res, channel_max) for any base")


def stylegan3(repo: str | None, config, device: str):
    """NVIDIA's StyleGAN3 Generator with `config`'s architecture (random weights), in eval mode."""
    (networks,) = import_from(repo, "stylegan3", "training.networks_stylegan3")
    torch = torch_module()
    torch.manual_seed(0)
    return networks.Generator(
        z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim, img_resolution=config.img_resolution,
        img_channels=config.img_channels, mapping_kwargs={"num_layers": config.mapping_layers},
        channel_base=config.channel_base, channel_max=config.channel_max, conv_kernel=config.conv_kernel,
        use_radial_filters=config.use_radial_filters, num_fp16_res=0).eval().requires_grad_(False).to(device)


def biggan(config, device: str):
    """The `pytorch_pretrained_biggan` BigGAN with `config` (random weights), in eval mode."""
    torch = torch_module()
    try:
        module = importlib.import_module("pytorch_pretrained_biggan")
    except Exception as e:  # an optional package: say why it is missing
        raise Unavailable(f"cannot import pytorch_pretrained_biggan ({e!r})") from None
    torch.manual_seed(0)
    fields = config.to_dict()
    fields["layers"] = [tuple(layer) for layer in fields["layers"]]
    return module.BigGAN(module.BigGANConfig(**fields)).eval().to(device)


def pggan(repo: str | None, config, device: str):
    """pytorch_GAN_zoo's ProgressiveGAN generator (`GNet`) with `config`'s widths (random weights)."""
    (networks,) = import_from(repo, "pytorch_GAN_zoo", "models.networks.progressive_conv_net")
    torch = torch_module()
    torch.manual_seed(0)
    G = networks.GNet(config.z_dim, config.channels[0], leakyReluLeak=config.leaky_relu_slope,
                      normalization=config.pixel_norm, dimOutput=config.img_channels, equalizedlR=config.equalized_lr)
    for width in config.channels[1:]:
        G.addScale(width)
    return G.eval().requires_grad_(False).to(device)


def time_generator(family: str, G, batch: int, repeats: int, device: str, truncation: float,
                   num_classes: int = 0, budget_s: float | None = None) -> float:
    """Images/s of a reference generator of `family` ('stylegan2', 'stylegan3', 'biggan', 'pggan')."""
    torch = torch_module()
    generator = torch.Generator(device="cpu").manual_seed(1)
    if family == "biggan":
        z = torch.from_numpy(np.random.default_rng(1).standard_normal((batch, G.config.z_dim)).clip(-2, 2)
                             .astype(np.float32) * truncation).to(device)
        c = torch.from_numpy(np.eye(num_classes, dtype=np.float32)[np.arange(batch) % num_classes]).to(device)
        call = lambda: G(z, c, truncation)
    elif family == "pggan":
        z = torch.randn([batch, G.dimLatent], generator=generator).to(device)
        call = lambda: G(z)
    else:
        z = torch.randn([batch, G.z_dim], generator=generator).to(device)
        kwargs = {"noise_mode": "const"} if family == "stylegan2" else {}
        call = lambda: G(z, None, truncation_psi=truncation, **kwargs)

    def run():
        with torch.no_grad():
            return call()

    return batch / seconds_per_call(run, repeats, device, budget_s)


# --- NVIDIA's projector ----------------------------------------------------------------------------
def stand_in_vgg16(torch):
    """A VGG16 trunk of the real widths (He-normal random weights) with the call signature of NVIDIA's
    `vgg16.pt` (images in [0, 255] -> LPIPS features [N, F]), for timing the projector offline: the
    published file is a download, and its cost is that of these convolutions."""
    nn = torch.nn

    class VGG16Features(nn.Module):
        def __init__(self):
            super().__init__()
            stages, c_in = [], 3
            for widths in VGG16_WIDTHS:
                layers = []
                for width in widths:
                    layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU()]
                    c_in = width
                stages.append(nn.Sequential(*layers))
            self.stages = nn.ModuleList(stages)

        def forward(self, images, resize_images=False, return_lpips=False):
            x, features = images / 127.5 - 1, []
            for i, stage in enumerate(self.stages):
                x = stage(x if i == 0 else nn.functional.max_pool2d(x, 2))
                unit = x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
                features.append(unit.flatten(1) / math.sqrt(unit[0, 0].numel()))
            return torch.cat(features, dim=1)

    return VGG16Features().requires_grad_(False)  # a fixed feature network, as the published file is


def projector_seconds(repo: str | None, G, steps: int, device: str, w_avg_samples: int = 10_000) -> float:
    """Seconds for NVIDIA's `projector.project` to invert one image of `G` (a reference Generator) in
    `steps` steps (its recipe: w, noise maps, VGG16 LPIPS features; `stand_in_vgg16` for the network)."""
    (projector,) = import_from(repo, "stylegan2-ada-pytorch", "projector")
    torch = torch_module()
    vgg16 = stand_in_vgg16(torch).to(device)
    original = projector.torch.jit.load
    projector.torch.jit.load = lambda f: vgg16
    opened = projector.dnnlib.util.open_url
    projector.dnnlib.util.open_url = lambda url, **kwargs: contextlib.nullcontext(io.BytesIO())
    try:
        with torch.no_grad():
            z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(2)).to(device)
            image = G(z, None, truncation_psi=0.5, noise_mode="const")[0]
        target = ((image.clamp(-1, 1) + 1) * 127.5).to(device)
        run = lambda: projector.project(G, target, num_steps=steps, w_avg_samples=w_avg_samples, device=torch.device(device))
        return seconds_per_call(run, 1, device)
    finally:
        projector.torch.jit.load = original
        projector.dnnlib.util.open_url = opened


# --- Voynov & Babenko's step (GANLatentDiscovery) --------------------------------------------------
def voynov_step_rate(repo: str | None, generate, dim: int, reconstructor: str, batch: int, repeats: int,
                     device: str, budget_s: float | None = None) -> float:
    """Steps/s of GANLatentDiscovery's train step as its `trainer.py` runs it (shifts, `linear`
    deformator, G(z) and G(z + A(eps e_k)), reconstructor `reconstructor` ('lenet' or 'resnet'), CE +
    0.25 L1, backward, both Adam steps), K = `dim`, on `generate(latents) -> NCHW images`."""
    if not hasattr(np, "product"):  # numpy 2 removed this alias, which GANLatentDiscovery's modules call
        np.product = np.prod
    deformator_module, predictor_module = import_from(repo, "GANLatentDiscovery", "latent_deformator",
                                                      "latent_shift_predictor")
    torch = torch_module()
    functional = torch.nn.functional
    torch.manual_seed(0)
    deformator = deformator_module.LatentDeformator(shift_dim=dim, input_dim=dim, out_dim=dim,
                                                    type=deformator_module.DeformatorType.LINEAR).train().to(device)
    predictor = (predictor_module.LeNetShiftPredictor(dim, 3) if reconstructor == "lenet"
                 else predictor_module.LatentShiftPredictor(dim)).train().to(device)
    deformator_opt = torch.optim.Adam(deformator.parameters(), lr=1e-4)
    predictor_opt = torch.optim.Adam(predictor.parameters(), lr=1e-4)

    def step():
        deformator.zero_grad()
        predictor.zero_grad()
        z = torch.randn([batch, dim], device=device)
        indices = torch.randint(0, dim, [batch], device=device)
        shifts = 6.0 * (2.0 * torch.rand([batch], device=device) - 1.0)
        shifts[(shifts < 0.5) & (shifts > 0)] = 0.5
        shifts[(shifts > -0.5) & (shifts < 0)] = -0.5
        basis = torch.zeros([batch, dim], device=device)
        basis[torch.arange(batch, device=device), indices] = shifts
        logits, predicted = predictor(generate(z), generate(z + deformator(basis)))
        loss = functional.cross_entropy(logits, indices) + 0.25 * torch.mean(torch.abs(predicted - shifts))
        loss.backward()
        deformator_opt.step()
        predictor_opt.step()

    return 1.0 / seconds_per_call(step, repeats, device, budget_s)


def stylegan2_w_decoder(G):
    """`generate` for `voynov_step_rate` on a reference StyleGAN2 in w: w broadcast to every layer."""
    return lambda w: G.synthesis(w.unsqueeze(1).repeat(1, G.num_ws, 1), noise_mode="const")


# --- LowRankGAN's Jacobian -------------------------------------------------------------------------
def backward_pass_seconds(G, device: str, passes: int = 4) -> float:
    """Seconds of one backward pass of one pixel of the (RGB-averaged) image w.r.t. w, through a
    reference StyleGAN2 (LowRankGAN's `compute_jacobian` makes one per pixel: H x W per sample)."""
    torch = torch_module()
    w = G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(3)).to(device), None)[:, :1]
    w = w.detach().requires_grad_(True)
    image = G.synthesis(w.repeat(1, G.num_ws, 1), noise_mode="const").mean(dim=1)[0]
    h, width = image.shape
    pixels = np.random.default_rng(0).integers(0, h * width, passes)

    def run():
        for p in pixels:
            torch.autograd.grad(image.view(-1)[int(p)], w, retain_graph=True)

    return seconds_per_call(run, 1, device) / passes
