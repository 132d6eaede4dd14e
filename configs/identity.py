r"""An identity mapper into a frozen generator (`latentjax.tasks.identity`; Nitzan et al. 2020).

    latentjax train --config configs/identity.py --workdir runs/identity            # the shapes world
    latentjax train --config configs/identity.py:face --workdir runs/face \
        --config.generator=ffhq-256.pkl --config.identity_encoder=vggface2:vggface2_resnet50.pt \
        --config.attribute_encoder=inception:inception_v3_google-0cc3c7bd.pth     # the reference's recipe
    latentjax train --config configs/identity.py:smoke --workdir out/smoke \
        --config.generator=G --config.identity_encoder=resnet:A.pt --config.attribute_encoder=resnet:B.pt

The default maps into the built-in shapes generator. Identity is what an object is (shape and
hue): what `builtin:shapes_identity` says of it (its shape probabilities and hue angle, with the
hue also in turns, cut at red where the generator cuts it, so that the mapper need not jump there).
Attributes are where and how it is shown (x, y, scale, rotation, background):
`builtin:shapes_pose`, fine-tuned, whose factor estimates are also the landmarks of the pose loss. The mapper learns from true renders of fresh factors (`data`),
the images it is asked to swap; 'generator' trains on the generator's own samples, as the
reference does at face scale. The result is `WORKDIR/identity_mapper/`
(`lj.identity.load(path)`). Measured departures from the reference's weights (README, identity
section): pose weighs 10 against identity's 1, rotation is compared as a direction only where both
images have one (`pose_angles`, weight 0.03), and the discriminator's real w are untruncated, since
the training images cover the world's full factor ranges.

`face` is the reference's recipe at face scale: a VGGFace2 ResNet-50 identity network
(`vggface2:PATH`, with that network's input convention), an Inception v3 attribute encoder
(`inception:PATH`, torchvision's weights file; any `resnet:PATH` also plugs in),
the mapping 2048-1024-512, Adam 5e-5, batch 6, truncation 0.7, no landmark network (give one as
`pose_encoder` where there is one). Users bring every file; nothing is downloaded.
`smoke` shrinks either to seconds (the tests run it on fixtures).
"""

from latentjax.config import parse_arg
from latentjax.train.trainer import harness_config


def get_config(arg=None):
    arg = parse_arg(arg, world=("shapes", "face"))
    config = harness_config("latentjax.tasks.identity", total_steps=12_000, batch_size=16, eval_every=2000,
                            ckpt_every=1000, keep_ckpts=2, sample_every=2000)
    config.generator = "builtin:shapes"
    # shape probabilities, hue angle (cos, sin) and hue in turns, cut at red like builtin:shapes lays it
    config.identity_encoder = "recognizer_turns:builtin:shapes_identity"
    config.attribute_encoder = "recognizer:builtin:shapes_pose"
    config.pose_encoder = "recognizer_values:builtin:shapes_pose"  # '' for none
    config.pose_heads = ()  # the pose encoder's value heads the pose loss compares; () for all
    # (cos, sin) head pairs compared as directions where both images have the angle (a circle has no rotation)
    config.pose_angles = (("rotation_cos", "rotation_sin"),)
    config.pose_angle_weight = 0.03  # of the angle pairs' terms against the other heads'
    config.hidden = (256, 256, 128)  # the mapping MLP's hidden widths; its output is the generator's w
    config.class_index = None
    config.data = "shapes"  # training images: 'shapes' (true renders of fresh factors) or 'generator' (its samples)
    config.truncation_psi = 1.0  # of the generator's samples: the discriminator's real w here, the data at face scale
    config.cross_every = 3  # every third step pairs different identity and attribute images
    config.identity_weight = 1.0
    config.pose_weight = 10.0  # factor estimates in [0, 1]: the reference's 0.001 is for landmarks in pixels
    config.pixel_weight = 0.02
    config.adversarial_weight = 1.0
    config.r1_gamma = 10.0
    config.lr = 2e-4
    config.eval_size = 256
    config.eval_seed = 12345
    if arg.world == "face":
        config.update(data="generator", identity_encoder="vggface2:vggface2_resnet50.pt",
                      attribute_encoder="inception:inception_v3_google-0cc3c7bd.pth", pose_encoder="", pose_angles=(),
                      hidden=(2048, 1024, 512), pose_weight=0.001, truncation_psi=0.7, lr=5e-5, batch_size=6, total_steps=500_000, eval_every=10_000, sample_every=10_000,
                      ckpt_every=5000)
    if arg.smoke:
        config.update(total_steps=4, batch_size=4, eval_every=2, ckpt_every=2, sample_every=2, eval_size=4,
                      hidden=(16,))
    return config
