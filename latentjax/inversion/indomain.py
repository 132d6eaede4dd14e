"""In-domain GAN inversion (Zhu et al., ECCV 2020; genforce/idinvert): start from an encoder's `w+`
code, then optimise while keeping the latent where the encoder would put its own reconstruction.

`invert_in_domain(G, encoder, targets, vgg=...)` runs Adam (lr 1e-2, 100 steps) on pixel MSE, a
VGG16 relu4_3 feature distance (`vgg_features`, on the reference's caffe VGG16 scale; torchvision
weights are rescaled to it) and the domain regulariser mean (w - E(G(w)))^2, the gradient flowing
through both w and E(G(w)). Without VGG weights the default feature weight is refused; pass
`feature_weight=0` to run without the term. It is an `Inverter` whose `Program`
(`inversion.program`) has the in-domain init and loss. The encoder is trained by the task
`latentjax.tasks.encoder` (same loss terms and features).
Details: docs/methods.md#latentjaxinversionindomain
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from latentjax.config import check_number
from latentjax.inversion.optim import constant_optimizer
from latentjax.inversion.program import Program, descend
from latentjax.inversion.project import InversionResult, Inverter
from latentjax.metrics.image import rgb
from latentjax.metrics.lpips import as_vgg16
from latentjax.metrics.vgg import TAPS, TORCHVISION_TO_CAFFE_SCALE, resize_nearest
from latentjax.nn.encoder import Encoder

FEATURE_RESOLUTION = 256  # idinvert's perceptual_img_size: images are nearest-resized to it before VGG16


def vgg_features(vgg, images, layer: str = "relu4_3", resolution: int = FEATURE_RESOLUTION):
    """The in-domain perceptual features [N, h, w, C]: VGG16 tap `layer` (raw, after its ReLU) of
    images [N, H, W, C] in [-1, 1] nearest-resized to `resolution` pixels, on the caffe input scale
    (a torchvision-convention VGG16's features times `TORCHVISION_TO_CAFFE_SCALE`). Jittable."""
    f = vgg.features(resize_nearest(rgb(images), resolution), layer)[layer]
    return f if vgg.convention == "caffe" else f * TORCHVISION_TO_CAFFE_SCALE


def check_feature_layer(layer: str) -> None:
    if layer not in TAPS:
        raise ValueError(f"feature_layer must be one of the VGG16 taps {TAPS}, got {layer!r}")


def check_feature_resolution(resolution) -> int:
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 16:
        raise ValueError(f"feature_resolution must be an int >= 16 (pixels; the reference's 256), got {resolution!r}")
    return resolution


def feature_vgg(vgg, feature_weight: float, name: str = "vgg"):
    """The VGG16 a feature term of weight `feature_weight` uses (`as_vgg16`), None when the weight is
    0, or a ValueError when the weight is not 0 and no weights were given."""
    if not feature_weight:
        return None
    if vgg is None:
        raise ValueError(f"feature_weight {feature_weight} weighs VGG16 features, which need weights: {name}="
                         "latentjax.metrics.vgg.load_vgg16('vgg16.pth') (the reference's caffe VGG16, "
                         "genforce/idinvert_pytorch's perceptual model, or torchvision's), or feature_weight=0 "
                         "to run without the feature term")
    return as_vgg16(vgg, name)


# ----------------------------------------------------------------------------------------------
# Domain-regularised optimisation
# ----------------------------------------------------------------------------------------------

class InDomainProgram(Program):
    """The in-domain `Program`: w+ starts at the encoder's code; plain Adam (torch's defaults, as the
    reference) at a constant learning rate; `params` holds the generator's and the encoder's."""

    def __init__(self, G, encoder: Encoder, lr: float, feature_weight: float, regularization_weight: float,
                 feature_layer: str, feature_resolution: int = FEATURE_RESOLUTION, mesh: Mesh | None = None):
        self.G, self.encoder = G, encoder
        self.feature_weight, self.regularization_weight = feature_weight, regularization_weight
        self.feature_layer, self.feature_resolution = feature_layer, feature_resolution
        self.tx = constant_optimizer("adam", lr)
        super().__init__({"generator": G.params, "encoder": encoder.params}, mesh)

    def _features(self, vgg, image):
        return vgg_features(vgg, image[None], self.feature_layer, self.feature_resolution)[0]

    def objective(self, params, vgg, latent, target, target_features):
        image = self.G.synthesis(params["generator"], latent[None])[0]
        terms = {"mse": jnp.mean(jnp.square(image - target))}
        total = terms["mse"]
        if self.feature_weight:
            features = self._features(vgg, image)
            terms["feature"] = jnp.mean(jnp.square(features - target_features))
            total += self.feature_weight * terms["feature"]
        if self.regularization_weight:
            terms["regularizer"] = jnp.mean(jnp.square(latent - self.encoder.encode(params["encoder"], image[None])[0]))
            total += self.regularization_weight * terms["regularizer"]
        return total, (terms, image)

    def init_one(self, params, vgg, target, key, inputs):
        variables = {"latent": self.encoder.encode(params["encoder"], target[None])[0], "noise": {}}
        features = self._features(vgg, target) if self.feature_weight else {}
        return {"variables": variables, "opt": self.tx.init(variables), "target": target, "features": features}

    def step_one(self, params, vgg, state, step):
        def loss(variables):
            return self.objective(params, vgg, variables["latent"], state["target"], state["features"])[0]

        return descend(self.tx, loss, state)

    def finish_one(self, params, vgg, state):
        latent = state["variables"]["latent"]
        total, (terms, image) = self.objective(params, vgg, latent, state["target"], state["features"])
        return {"latent": latent, "ws": latent, "image": image, "losses": {"loss": total, **terms}, "noise": {}}


class InDomainInverter(Inverter):
    """A compiled in-domain inversion for one generator, encoder and setting; call it on target
    batches like `Inverter` (`InDomainInverter(G, E, vgg=load_vgg16('vgg16.pth'))(targets, key)`).
    See `invert_in_domain`."""

    def __init__(self, G, encoder: Encoder, *, steps: int = 100, lr: float = 1e-2, feature_weight: float = 5e-5,
                 regularization_weight: float = 2.0, vgg=None, feature_layer: str = "relu4_3",
                 feature_resolution: int = FEATURE_RESOLUTION, mesh: Mesh | None = None):
        if not isinstance(encoder, Encoder):
            raise ValueError(f"encoder must be a latentjax.nn.encoder.Encoder (see load_encoder), got "
                             f"{type(encoder).__name__}")
        if G.c_dim or not G.style_based:
            raise ValueError("in-domain inversion needs an unconditional generator with a synthesis network")
        encoder.check_generator(G)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        check_number("lr", lr, positive=True)
        feature_weight = check_number("feature_weight", feature_weight)
        check_number("regularization_weight", regularization_weight)
        check_feature_layer(feature_layer)
        check_feature_resolution(feature_resolution)
        vgg = feature_vgg(vgg, feature_weight)
        self._program = InDomainProgram(G, encoder, float(lr), feature_weight, float(regularization_weight),
                                        feature_layer, feature_resolution, mesh)
        self.G, self.encoder, self.space, self.steps = G, encoder, "w+", steps
        self.weights = {"mse": 1.0, "feature": feature_weight, "regularizer": float(regularization_weight)}
        self._lpips = self._program.replicate(vgg) if vgg is not None else None

    def per_target_inputs(self, classes, n: int) -> dict:
        if classes is not None:
            raise ValueError("classes: in-domain inversion works with unconditional generators; leave classes None")
        return {}


def invert_in_domain(G, encoder: Encoder, targets, *, steps: int = 100, lr: float = 1e-2,
                     feature_weight: float = 5e-5, regularization_weight: float = 2.0, vgg=None,
                     feature_layer: str = "relu4_3", feature_resolution: int = FEATURE_RESOLUTION, key=None,
                     batch_size: int | None = None, mesh: Mesh | None = None, progress: bool = True) -> InversionResult:
    """In-domain inversion of `targets` [N, H, W, C] (NHWC, G's size, in [-1, 1]) into w+.

    Starts from `encoder`'s codes and runs `steps` Adam steps on the module docstring's loss.
    `vgg`: the VGG16 whose tap `feature_layer` gives the feature term (`latentjax.metrics.vgg.load_vgg16`:
    the reference's caffe `vgg16.pth`, or torchvision weights, rescaled; an LPIPS model lends its
    torchvision trunk); required while `feature_weight` is not 0. Images are nearest-resized to
    `feature_resolution` pixels before VGG16 (the reference's generators are all 256 px). The
    result's losses hold the final 'loss', 'mse', 'regularizer' (with a non-zero weight) and
    'feature' (when on). The method is deterministic; `key` (one, or one per target) is accepted
    so that every inversion method shares one call signature. `batch_size` targets share one
    compiled step (default: all), sharded over the mesh's "data" axis (default: all devices).
    """
    inverter = InDomainInverter(G, encoder, steps=steps, lr=lr, feature_weight=feature_weight,
                                regularization_weight=regularization_weight, vgg=vgg, feature_layer=feature_layer,
                                feature_resolution=feature_resolution, mesh=mesh)
    return inverter(targets, jax.random.key(0) if key is None else key, batch_size=batch_size, progress=progress)
