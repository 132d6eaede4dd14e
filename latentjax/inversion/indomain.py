"""In-domain GAN inversion (Zhu et al., ECCV 2020; genforce/idinvert): start from an encoder's `w+`
code, then optimise while keeping the latent where the encoder would put its own reconstruction.

`invert_in_domain(G, encoder, targets)` runs Adam (lr 1e-2, 100 steps) on

    MSE(x, G(w)) + feature_weight * feature MSE(x, G(w)) + regularization_weight * mean (w - E(G(w)))^2

(means over elements, as the reference's `torch.mean`); the gradient flows through both w and
E(G(w)). It is an `Inverter` whose `Program` (`inversion.program`) has the in-domain init and
loss. The encoder is trained by the task `latentjax.tasks.encoder`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from latentjax.inversion.optim import projector_optimizer
from latentjax.inversion.program import Program, descend
from latentjax.inversion.project import InversionResult, Inverter, check_number
from latentjax.metrics.image import rgb
from latentjax.metrics.lpips import TAPS
from latentjax.nn.encoder import Encoder


def vgg_features(vgg, images, layer: str = "relu4_3"):
    """The raw (not channel-normalised) VGG16 tap `layer` of images [N, H, W, C] in [-1, 1]."""
    return vgg.features(rgb(images))[layer]


def check_feature_layer(layer: str) -> None:
    if layer not in TAPS:
        raise ValueError(f"feature_layer must be one of the VGG16 taps {TAPS}, got {layer!r}")


# ----------------------------------------------------------------------------------------------
# 2. Domain-regularised optimisation
# ----------------------------------------------------------------------------------------------

class InDomainProgram(Program):
    """The in-domain `Program`: w+ starts at the encoder's code; plain Adam (torch's defaults, as the
    reference) at a constant learning rate; `params` holds the generator's and the encoder's."""

    def __init__(self, G, encoder: Encoder, lr: float, feature_weight: float, regularization_weight: float,
                 feature_layer: str, mesh: Mesh | None = None):
        self.G, self.encoder = G, encoder
        self.feature_weight, self.regularization_weight = feature_weight, regularization_weight
        self.feature_layer = feature_layer
        self.tx = projector_optimizer(1, lr, lr_rampup=0.0, lr_rampdown=0.0)  # Adam at a constant lr
        super().__init__({"generator": G.params, "encoder": encoder.params}, mesh)

    def objective(self, params, vgg, latent, target, target_features):
        image = self.G.synthesis(params["generator"], latent[None])[0]
        terms = {"mse": jnp.mean(jnp.square(image - target))}
        total = terms["mse"]
        if self.feature_weight:
            features = vgg_features(vgg, image[None], self.feature_layer)[0]
            terms["feature"] = jnp.mean(jnp.square(features - target_features))
            total += self.feature_weight * terms["feature"]
        if self.regularization_weight:
            terms["regularizer"] = jnp.mean(jnp.square(latent - self.encoder.encode(params["encoder"], image[None])[0]))
            total += self.regularization_weight * terms["regularizer"]
        return total, (terms, image)

    def init_one(self, params, vgg, target, key, inputs):
        variables = {"latent": self.encoder.encode(params["encoder"], target[None])[0], "noise": {}}
        features = vgg_features(vgg, target[None], self.feature_layer)[0] if self.feature_weight else {}
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
    batches like `Inverter` (`InDomainInverter(G, E)(targets, key)`). See `invert_in_domain`."""

    def __init__(self, G, encoder: Encoder, *, steps: int = 100, lr: float = 1e-2, feature_weight: float = 5e-5,
                 regularization_weight: float = 2.0, lpips_or_vgg=None, feature_layer: str = "relu4_3",
                 mesh: Mesh | None = None):
        if not isinstance(encoder, Encoder):
            raise ValueError(f"encoder must be a latentjax.nn.encoder.Encoder (see load_encoder), got "
                             f"{type(encoder).__name__}")
        if G.c_dim or not G.style_based:
            raise ValueError("in-domain inversion needs an unconditional generator with a synthesis network")
        encoder.check_generator(G)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        check_number("lr", lr, positive=True)
        check_number("feature_weight", feature_weight)
        check_number("regularization_weight", regularization_weight)
        check_feature_layer(feature_layer)
        feature_weight = float(feature_weight) if lpips_or_vgg is not None else 0.0
        self._program = InDomainProgram(G, encoder, float(lr), feature_weight, float(regularization_weight),
                                        feature_layer, mesh)
        self.G, self.encoder, self.space, self.steps = G, encoder, "w+", steps
        self.weights = {"mse": 1.0, "feature": feature_weight, "regularizer": float(regularization_weight)}
        self._lpips = self._program.replicate(lpips_or_vgg) if feature_weight else None

    def per_target_inputs(self, classes, n: int) -> dict:
        if classes is not None:
            raise ValueError("classes: in-domain inversion works with unconditional generators; leave classes None")
        return {}


def invert_in_domain(G, encoder: Encoder, targets, *, steps: int = 100, lr: float = 1e-2,
                     feature_weight: float = 5e-5, regularization_weight: float = 2.0, lpips_or_vgg=None,
                     feature_layer: str = "relu4_3", key=None, batch_size: int | None = None,
                     mesh: Mesh | None = None, progress: bool = True) -> InversionResult:
    """In-domain inversion of `targets` [N, H, W, C] (NHWC, G's size, in [-1, 1]) into w+.

    Starts from `encoder`'s codes and runs `steps` Adam steps on the module docstring's loss.
    `lpips_or_vgg`: an LPIPS model (`load_lpips`) whose VGG16 tap `feature_layer` gives the
    feature term (None: the term is off, whatever `feature_weight`). The result's losses hold the
    final 'loss', 'mse', 'regularizer' (with a non-zero weight) and 'feature' (when on). The
    method is deterministic; `key` (one, or one per target) is accepted so that every inversion
    method shares one call signature. `batch_size` targets share one compiled step (default: all),
    sharded over the mesh's "data" axis (default: all devices).
    """
    inverter = InDomainInverter(G, encoder, steps=steps, lr=lr, feature_weight=feature_weight,
                                regularization_weight=regularization_weight, lpips_or_vgg=lpips_or_vgg,
                                feature_layer=feature_layer, mesh=mesh)
    return inverter(targets, jax.random.key(0) if key is None else key, batch_size=batch_size, progress=progress)
