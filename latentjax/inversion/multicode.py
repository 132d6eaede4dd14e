"""Multi-code GAN inversion (mGANprior; Gu, Shen and Zhou, CVPR 2020; genforce/mganprior).

N codes and per-code channel importances alpha_n are optimised together and composed inside the
generator at a layer L as the reference does, F = (sum_n alpha_n ⊙ F_n) / N, and the rest of the
generator runs on F. The defaults are the reference's recipe (`PRESETS['reference']`: 30 codes,
3,000 steps of plain SGD at lr 1, MSE + 0.001 times a torchvision VGG16 relu3_3 L1 distance). That
term needs VGG16 weights (`vgg=`): without them the default recipe refuses to run rather than drop
the term; `loss='mse'` or `PRESETS['adam']` (this project's earlier recipe) need none. The
reference covers PGGAN only; where it leaves room, the choices are ours. The optimisation is a
`Program` (`inversion.program`): vmapped targets, sharded jitted steps.
Details: docs/methods.md#latentjaxinversionmulticode
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from latentjax.config import ConfigMixin, check_number
from latentjax.inversion.optim import OPTIMIZERS, constant_optimizer
from latentjax.inversion.program import Program, descend
from latentjax.inversion.project import INVERSION_SPACES, Inverter, image_loss, parse_loss, target_features
from latentjax.latent import LatentSpace, latent_space
from latentjax.metrics.image import rgb
from latentjax.metrics.lpips import as_vgg16
from latentjax.metrics.vgg import resize_nearest

HIGHEST = jax.lax.Precision.HIGHEST
REFERENCE_RESOLUTION = 16  # the reference composes at the output of PGGAN's 16x16 block
LOSS_TERMS = ("mse", "lpips", "vgg_l1")
# The reference's loss (multi_code_inversion.py defaults: l2_lambda 1, vgg_lambda 1, vgg_layer 16, L1; losses.py's
# VGGLoss multiplies its mean L1 by 0.001).
REFERENCE_LOSS = {"mse": 1.0, "vgg_l1": 0.001}
VGG_L1_LAYER = "relu3_3"  # torchvision vgg16 features[:16] ends with the ReLU after conv3_3


@dataclasses.dataclass(frozen=True)
class MultiCodeConfig(ConfigMixin):
    """mGANprior settings; the defaults are the reference's (`PRESETS`). `layer` '' is
    `default_layer`; `space` '' is 'w' for StyleGAN2 and 'z' for BigGAN and PGGAN; `optimizer` 'sgd'
    or 'adam' at the constant `lr` (`constant_optimizer`); `loss` a term name or a dict of weights
    over 'mse' (mean squared error), 'lpips' (as `invert`'s) and 'vgg_l1' (mean absolute difference
    of torchvision VGG16 relu3_3 features of images nearest-resized to `vgg_resolution` pixels)."""

    config_name = "multi-code inversion settings"

    num_codes: int = 30
    layer: str = ""
    steps: int = 3000
    optimizer: str = "sgd"
    lr: float = 1.0
    loss: Any = dataclasses.field(default_factory=lambda: dict(REFERENCE_LOSS))
    vgg_resolution: int = 256
    space: str = ""

    def __post_init__(self):
        if not isinstance(self.num_codes, int) or self.num_codes < 1:
            raise ValueError(f"num_codes must be an int >= 1, got {self.num_codes!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive int, got {self.steps!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_number("lr", self.lr, positive=True)
        if not isinstance(self.layer, str) or not isinstance(self.space, str):
            raise ValueError(f"layer and space must be names (strings; '' for the default), got "
                             f"{self.layer!r}, {self.space!r}")
        if not isinstance(self.vgg_resolution, int) or isinstance(self.vgg_resolution, bool) \
                or self.vgg_resolution < 16:
            raise ValueError(f"vgg_resolution must be an int >= 16 (pixels), got {self.vgg_resolution!r}")
        parse_loss(self.loss, LOSS_TERMS)


# The reference's recipe, and this project's earlier one (Adam converges in fewer steps on MSE alone).
PRESETS = {"reference": MultiCodeConfig(),
           "adam": MultiCodeConfig(num_codes=20, optimizer="adam", lr=0.03, loss="mse")}


@dataclasses.dataclass(frozen=True)
class MultiCodeResult:
    """What `invert_multicode` returns, as numpy arrays with one row per target.

    `latents` [n, num_codes, *space shape]; `importance` [n, num_codes, C] (C: the channels of
    `layer`); `images` the compositions [n, H, W, C_img]; `losses` per target final 'loss' (the
    weighted sum) and each term (unweighted). `space` is the space's spec (`latent_space(G, **space)`);
    `settings` the `MultiCodeConfig` that ran, as a dict (loss weights and optimiser included).
    """

    space: dict
    layer: str
    steps: int
    latents: np.ndarray
    importance: np.ndarray
    images: np.ndarray
    losses: dict
    settings: dict | None = None


# --- layers ------------------------------------------------------------------------------------
def composition_layers(G) -> tuple[str, ...]:
    """The feature layers codes can be composed at: `G.config.layer_names` less the RGB ('*.img') ones."""
    return tuple(name for name in G.config.layer_names if not name.endswith(".img"))


def _feature_shapes(space: LatentSpace) -> dict:
    latent = jax.ShapeDtypeStruct((1,) + tuple(space.shape), jnp.float32)
    shapes = jax.eval_shape(lambda params, x: space.features(params, x), space.generator.params, latent)
    return {name: tuple(s.shape[1:]) for name, s in shapes.items()}


def default_layer(space: LatentSpace) -> str:
    """The last composition layer at resolution min(16, resolution / 4) (or the last one below it)."""
    G = space.generator
    target = min(REFERENCE_RESOLUTION, max(4, G.img_resolution // 4))
    shapes = _feature_shapes(space)
    candidates = [name for name in composition_layers(G) if shapes[name][0] <= target]
    return candidates[-1] if candidates else composition_layers(G)[0]


def check_layer(G, layer: str) -> str:
    if layer not in composition_layers(G):
        raise ValueError(f"layer must be one of {list(composition_layers(G))} (a feature layer of this "
                         f"{type(G).__name__}), got {layer!r}")
    return layer


def _layers_through(G, layer: str) -> tuple[str, ...]:
    names = G.config.layer_names
    return names[:names.index(layer) + 1]


# --- the composition ---------------------------------------------------------------------------
def compose(space: LatentSpace, params, codes, importance, layer: str):
    """The image [H, W, C] of N codes [N, *shape] composed at `layer` with importance [N, C].

    `layer`'s activation is (sum_n importance[n] ⊙ F_n) / N, the reference's; every earlier layer's
    is the sum of the codes' activations weighted by their mean importance, / N; the layers after
    `layer` read the mean code. Pure and jittable (one target; `decode_multicode` maps it over targets).
    """
    names = _layers_through(space.generator, layer)
    features = space.features(params, codes, names)
    n = codes.shape[0]
    weights = jnp.mean(importance, axis=1) / n
    composed = {name: jnp.tensordot(weights, features[name], axes=1, precision=HIGHEST) for name in names[:-1]}
    composed[layer] = jnp.sum(features[layer] * importance[:, None, None, :], axis=0) / n
    hooks = {name: functools.partial(lambda value, _: value[None], value) for name, value in composed.items()}
    return space.decode(params, jnp.mean(codes, axis=0, keepdims=True), hooks=hooks)[0]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _decode_batch(space, params, latents, importance, layer):
    return jax.vmap(lambda codes, alpha: compose(space, params, codes, alpha, layer))(latents, importance)


def decode_multicode(space: LatentSpace, latents, importance, layer: str, params=None):
    """Images [n, H, W, C] of `latents` [n, N, *shape] composed at `layer` with `importance` [n, N, C]."""
    check_layer(space.generator, layer)
    params = space.generator.params if params is None else params
    return _decode_batch(space, params, jnp.asarray(latents), jnp.asarray(importance), layer)


# --- the loss ------------------------------------------------------------------------------------
def vgg_l1_features(vgg, images, resolution: int = 256):
    """The relu3_3 features of a torchvision-convention VGG16 (`metrics.vgg`) for images [N, H, W, C]
    in [-1, 1], nearest-resized to `resolution` pixels first: the reference's VGGLoss input."""
    return vgg.features(resize_nearest(rgb(images), resolution), VGG_L1_LAYER)[VGG_L1_LAYER]


def multicode_loss(weights, models, image, target, features, resolution: int = 256):
    """(the weighted sum, {term: value}) of one image [H, W, C] against its target: 'mse' and
    'lpips' as `image_loss`, and 'vgg_l1' = mean |VGG features(image) - VGG features(target)|.
    `models`: {'lpips': LPIPS or None, 'vgg': VGG16 or None}; `features` from `multicode_features`."""
    total, terms = image_loss(weights, models["lpips"], image, target, features["lpips"])
    if "vgg_l1" in weights:
        terms["vgg_l1"] = jnp.mean(jnp.abs(vgg_l1_features(models["vgg"], image[None], resolution)[0]
                                           - features["vgg"]))
        total = total + weights["vgg_l1"] * terms["vgg_l1"]
    return total, terms


def multicode_features(weights, models, target, resolution: int = 256) -> dict:
    """What `multicode_loss` compares an image with besides the target: its LPIPS and VGG features."""
    vgg = vgg_l1_features(models["vgg"], target[None], resolution)[0] if "vgg_l1" in weights else None
    return {"lpips": target_features(weights, models["lpips"], target), "vgg": vgg}


# --- the compiled program ----------------------------------------------------------------------
class MultiCodeProgram(Program):
    """The mGANprior `Program`: codes and importance per target under `constant_optimizer`, composed
    at `layer` of `space`; the loss is `multicode_loss`; the auxiliary models are {'lpips', 'vgg'}."""

    def __init__(self, space: LatentSpace, config: MultiCodeConfig, layer: str, weights, mesh: Mesh | None = None):
        self.latent_space, self.num_codes, self.layer = space, config.num_codes, layer
        self.channels = _feature_shapes(space)[layer][-1]
        self.weights, self.resolution = dict(weights), config.vgg_resolution
        self.tx = constant_optimizer(config.optimizer, float(config.lr))
        super().__init__(space.generator.params, mesh)

    def objective(self, params, models, variables, target, target_features):
        image = compose(self.latent_space, params, variables["codes"], variables["importance"], self.layer)
        total, terms = multicode_loss(self.weights, models, image, target, target_features, self.resolution)
        return total, (terms, image)

    def init_one(self, params, models, target, key, inputs):
        codes = self.latent_space.sample(key, self.num_codes, params)
        importance = jnp.full((self.num_codes, self.channels), 1.0 / self.num_codes, jnp.float32)
        variables = {"codes": codes, "importance": importance}
        return {"variables": variables, "opt": self.tx.init(variables), "target": target,
                "features": multicode_features(self.weights, models, target, self.resolution)}

    def step_one(self, params, models, state, step):
        def loss(variables):
            return self.objective(params, models, variables, state["target"], state["features"])[0]

        return descend(self.tx, loss, state)

    def finish_one(self, params, models, state):
        variables = state["variables"]
        total, (terms, image) = self.objective(params, models, variables, state["target"], state["features"])
        return {"latent": variables, "ws": None, "image": image, "losses": {"loss": total, **terms}, "noise": {}}


def _resolve_space(source, name: str) -> LatentSpace:
    """The LatentSpace to invert in: `source` itself, or the generator's space `name` ('' = default)."""
    if isinstance(source, LatentSpace):
        if name and name != source.name:
            raise ValueError(f"space {name!r} disagrees with the LatentSpace given ({source.name!r})")
        space = source
    else:
        space = latent_space(source, name or ("w" if source.style_based else "z"))
    names = INVERSION_SPACES if space.generator.style_based else ("z",)
    if space.name not in names:
        raise ValueError(f"multi-code inversion of this generator works in spaces {list(names)}, got {space.name!r}")
    return space


class MultiCodeInverter(Inverter):
    """A compiled mGANprior inversion for one generator (or LatentSpace) and setting; call it on
    target batches like `Inverter`: `MultiCodeInverter(G, vgg=load_vgg16('vgg16.pth'))(targets, key)`
    (the reference's recipe) or `MultiCodeInverter(G, 'adam')(targets, key)` (no VGG needed).

    Pass a LatentSpace for options such as BigGAN's `class_index`: `latent_space(G, 'z', class_index=0)`.
    """

    def __init__(self, source, config: MultiCodeConfig | str | None = None, *, lpips=None, vgg=None,
                 mesh: Mesh | None = None):
        config = _resolve_config(config)
        space = _resolve_space(source, config.space)
        G = space.generator
        layer = check_layer(G, config.layer) if config.layer else default_layer(space)
        weights = parse_loss(config.loss, LOSS_TERMS)
        models = {"lpips": None, "vgg": None}
        if "lpips" in weights:
            if lpips is None:
                raise ValueError("loss 'lpips' needs an LPIPS model: "
                                 "lpips=latentjax.metrics.lpips.load_lpips(vgg16, lin)")
            models["lpips"] = lpips
        if "vgg_l1" in weights:
            models["vgg"] = _check_vgg(vgg, weights)
        self._program = MultiCodeProgram(space, config, layer, weights, mesh)
        self.G, self.latent_space, self.space, self.layer = G, space, space.name, layer
        self.steps, self.weights = config.steps, weights
        self.config = dataclasses.replace(config, layer=layer, space=space.name)
        self._lpips = self._program.replicate(models)

    def per_target_inputs(self, classes, n: int) -> dict:
        return {}  # a conditional generator's class comes with the LatentSpace (its `class_index`)

    def __call__(self, targets, key, *, batch_size: int | None = None, progress: bool = True) -> MultiCodeResult:
        """Invert `targets` [n, H, W, C] with one key (split per target) or n keys, `batch_size` at a time."""
        result = super().__call__(targets, key, batch_size=batch_size, progress=progress)
        return MultiCodeResult(space=self.latent_space.spec, layer=self.layer, steps=self.steps,
                               latents=result.latents["codes"], importance=result.latents["importance"],
                               images=result.images, losses=result.losses, settings=self.config.to_dict())


def _resolve_config(config) -> MultiCodeConfig:
    """A MultiCodeConfig from None (the reference's), a preset name (`PRESETS`), a dict or a config."""
    if config is None:
        return MultiCodeConfig()
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"config must be a preset from {sorted(PRESETS)}, a dict or a MultiCodeConfig, "
                             f"got {config!r}")
        return PRESETS[config]
    if isinstance(config, dict):
        return MultiCodeConfig.from_dict(config)
    if not isinstance(config, MultiCodeConfig):
        raise ValueError(f"config must be a MultiCodeConfig, a dict or a preset name from {sorted(PRESETS)}, "
                         f"got {type(config).__name__}")
    return config


def _check_vgg(vgg, weights):
    """The torchvision VGG16 the 'vgg_l1' term needs, or a ValueError that says how to get one or drop the term."""
    if vgg is None:
        raise ValueError(f"loss {weights} has the term 'vgg_l1' (the reference's perceptual term, in the default "
                         "loss), which needs torchvision VGG16 weights: vgg=latentjax.metrics.vgg.load_vgg16("
                         "'vgg16.pth') (or an LPIPS model, whose trunk they are); without weights choose a loss "
                         "without it, e.g. loss='mse' or config='adam'")
    vgg = as_vgg16(vgg, "vgg")
    if vgg.convention != "torchvision":
        raise ValueError(f"vgg: the 'vgg_l1' term is mGANprior's loss on torchvision VGG16 features (ImageNet-"
                         f"normalised input), got a VGG16 of the {vgg.convention!r} convention")
    return vgg


def invert_multicode(G, targets, *, key, config: MultiCodeConfig | dict | str | None = None, lpips=None, vgg=None,
                     space=None, batch_size: int | None = None, mesh: Mesh | None = None, progress: bool = True,
                     **overrides) -> MultiCodeResult:
    """mGANprior inversion of `targets` [n, H, W, C] (NHWC, the generator's size, in [-1, 1]).

    `G`: a generator (or a LatentSpace); `space`: a space name or a LatentSpace (BigGAN needs one
    with a `class_index`: `latent_space(G, 'z', class_index=0)`). `config`: None (the reference's
    recipe), a preset name from `PRESETS` ('reference', 'adam'), a dict or a MultiCodeConfig; keyword
    overrides (`num_codes`, `layer`, `steps`, `optimizer`, `lr`, `loss`, `vgg_resolution`) apply on top.
    A loss with 'vgg_l1' (the default) needs `vgg`, torchvision VGG16 weights
    (`latentjax.metrics.vgg.load_vgg16`, or an LPIPS model); one with 'lpips' needs `lpips`
    (`latentjax.metrics.lpips.load_lpips`). `key`: one key, split per target, or one per target.
    `batch_size` targets share one compiled step (default: all), sharded over the mesh's "data"
    axis (default: all devices).
    """
    config = _resolve_config(config)
    source = G
    if isinstance(space, LatentSpace):
        if not isinstance(G, LatentSpace) and space.generator is not G:
            raise ValueError("space is a LatentSpace of another generator than G")
        source = space
    elif space is not None:
        overrides = {**overrides, "space": space}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(MultiCodeConfig)})
    if unknown:
        raise ValueError(f"unknown invert_multicode arguments {unknown}; settings are "
                         f"{[f.name for f in dataclasses.fields(MultiCodeConfig)]}")
    config = dataclasses.replace(config, **overrides)
    inverter = MultiCodeInverter(source, config, lpips=lpips, vgg=vgg, mesh=mesh)
    return inverter(targets, key, batch_size=batch_size, progress=progress)
