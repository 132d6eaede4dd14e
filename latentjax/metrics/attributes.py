"""The face-attribute predictor the editing community uses, as a differentiable `Scorer`.

AnyCostGAN's attribute predictor (`attribute_predictor.pt`, the network
yuval-alaluf/stylegan3-editing scores its InterFaceGAN samples with) is a torchvision ResNet-50
whose head is `Linear(2048, 40 * 2)`: two logits for each of the 40 CelebA attributes. Its users
feed generator images in [-1, 1], average-pooled to 256x256 (`AdaptiveAvgPool2d`), and take
`softmax(logits.view(-1, 40, 2))[..., 1]`, the probability that the attribute is present:
`attribute_predictor(path)` scores exactly that. Users bring the file; nothing is downloaded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.metrics.scorer import Scorer
from latentjax.nn.resnet import ResNet, load_resnet

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young")
INPUT_SIZE = 256  # the users' AdaptiveAvgPool2d((256, 256))


def adaptive_avg_pool(images, size: int):
    """PyTorch's `AdaptiveAvgPool2d((size, size))` on NHWC images: output pixel i averages input rows
    floor(i H / size) .. ceil((i + 1) H / size) - 1 (and the same for columns), as two averaging
    matrices, so any ratio (shrinking or not) is exact and differentiable."""
    def matrix(n: int) -> np.ndarray:
        m = np.zeros((size, n), np.float32)
        for i in range(size):
            lo, hi = (i * n) // size, -(-((i + 1) * n) // size)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m

    rows, cols = matrix(images.shape[1]), matrix(images.shape[2])
    return jnp.einsum("ih,nhwc,jw->nijc", rows, images, cols)


def attribute_scorer(net: ResNet, *, size: int = INPUT_SIZE, names=CELEBA_ATTRIBUTES) -> Scorer:
    """A ResNet with two logits per attribute as a differentiable `Scorer` of the probabilities that
    each attribute is present (see the module docstring); `size` is the pooled input side."""
    names = tuple(names)
    if net.config.num_outputs != 2 * len(names):
        raise ValueError(f"{net!r}: an attribute predictor has two logits per attribute, {2 * len(names)} outputs for "
                         f"{len(names)} attributes, got {net.config.num_outputs}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (the pooled input side), got {size!r}")

    def apply(variables, images):
        logits = net.apply(variables, adaptive_avg_pool(images.astype(jnp.float32), size))[0]
        return jax.nn.softmax(logits.reshape(images.shape[0], len(names), 2), axis=-1)[..., 1]

    return Scorer(apply, names, net.variables, differentiable=True)


def attribute_predictor(path, *, size: int = INPUT_SIZE) -> Scorer:
    """AnyCostGAN's CelebA attribute predictor (or any torchvision ResNet state dict with 80 outputs)
    from `path`: a bare state dict or one under 'state_dict', read without torch."""
    return attribute_scorer(load_resnet(path), size=size)
