r"""The in-domain inversion encoder (`latentjax.tasks.encoder`) for a frozen StyleGAN2.

    latentjax train --config configs/train_encoder.py --workdir runs/encoder_shapes
    latentjax train --config configs/train_encoder.py:stylegan2 --workdir runs/encoder_ada \
        --config.generator=ffhq.pkl --config.settings.vgg16=vgg16.pth
    latentjax train --config configs/train_encoder.py:smoke --workdir out/smoke       # seconds (CI)

Variants (combinable, e.g. `stylegan2,smoke`): the default trains on `builtin:shapes`; `stylegan2`
on an NVIDIA snapshot given as `--config.generator` (required), with D started from the snapshot's
own D as in the reference; `smoke` shrinks the run to a few steps. The result is `WORKDIR/encoder/`
(`latentjax.nn.encoder.load_encoder`). Fields: `generator`, `data` ('generator': its own samples;
'shapes': the shapes world; or a directory of images), `encoder` (`EncoderConfig`), `settings`
(`latentjax.tasks.encoder.TrainSettings`, reference defaults: feature weight 5e-5 on VGG16 relu4_3
of 256 px images, adversarial weight 0.08) and the harness's. `settings.vgg16` takes the reference's
caffe VGG16 (genforce/idinvert_pytorch's `vgg16.pth`) or a torchvision vgg16 state dict; without it
the feature term is off (the log says so). The learning rate is 10x the reference's 1e-4 (for batch
128 over 14M images): these runs see far fewer images.
"""

import ml_collections

from latentjax.config import parse_arg
from latentjax.train.trainer import harness_config


def get_config(arg=None):
    arg = parse_arg(arg, stylegan2=False)
    config = harness_config("latentjax.tasks.encoder", total_steps=20_000, batch_size=16, sample_every=1000,
                            eval_every=1000, keep_ckpts=2)
    config.generator = "builtin:shapes"
    config.data = "generator"

    config.encoder = ml_collections.ConfigDict(dict(channel_base=1024, channel_max=128, blocks_per_resolution=1,
                                                    norm="instance"))
    config.settings = ml_collections.ConfigDict(dict(
        lr=1e-3, d_lr=1e-3, betas=(0.9, 0.99), eps=1e-8, lr_decay_rate=0.8, lr_decay_steps=0,
        perceptual_weight=5e-5, feature_layer="relu4_3", feature_resolution=256, vgg16="", vgg16_convention="",
        adversarial_weight=0.08, r1_gamma=10.0, discriminator="fresh", mbstd_group_size=4,
        truncation_psi=1.0, grid_size=8, eval_size=64))

    if arg.stylegan2:
        config.generator = ""  # required: --config.generator=SNAPSHOT.pkl
        config.settings.discriminator = "snapshot"
    if arg.smoke:
        config.batch_size = 4
        config.total_steps = 3
        config.encoder = ml_collections.ConfigDict(dict(channel_base=64, channel_max=8, blocks_per_resolution=1,
                                                        norm="instance"))
        config.settings.grid_size = 2
        config.settings.eval_size = 4
        config.log_every = 1
        config.sample_every = 3
        config.eval_every = 3
        config.ckpt_every = 3
    return config
