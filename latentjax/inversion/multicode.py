"""Multi-code GAN inversion (mGANprior; Gu, Shen and Zhou, CVPR 2020; genforce/mganprior).

N codes z_1..z_N and per-code channel importance alpha_n in R^C are optimised together (Adam)
and composed inside the generator at a layer L: x = G_after_L(sum_n alpha_n ⊙ F_n). Where the
reference (PGGAN only) leaves room: importance starts at 1/N without the reference's extra 1/N
scale; layers after L that read a latent read the mean code; earlier layers the rest of the
network reads (skip images, fade-ins) are composed with each code's mean importance; codes start
at `space.sample`; the default layer is the last at min(16, resolution / 4) (`default_layer`);
defaults are 20 codes, 3000 steps, Adam at lr 0.03, loss 'mse' (the reference: 30 codes, SGD).
The optimisation is a `Program` (`inversion.program`): vmapped targets, sharded jitted steps.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from latentjax.config import ConfigMixin
from latentjax.inversion.optim import projector_optimizer
from latentjax.inversion.program import Program, descend
from latentjax.inversion.project import INVERSION_SPACES, Inverter, check_number, image_loss, parse_loss, target_features
from latentjax.latent import LatentSpace, latent_space

HIGHEST = jax.lax.Precision.HIGHEST
REFERENCE_RESOLUTION = 16  # the reference composes at the output of PGGAN's 16x16 block


@dataclasses.dataclass(frozen=True)
class MultiCodeConfig(ConfigMixin):
    """mGANprior settings. `layer` '' is `default_layer`; `space` '' is 'w' for StyleGAN2 and 'z'
    for BigGAN and PGGAN; `loss` as `parse_loss` ('mse', 'lpips' or a dict of weights)."""

    config_name = "multi-code inversion settings"

    num_codes: int = 20
    layer: str = ""
    steps: int = 3000
    lr: float = 0.03
    loss: Any = "mse"
    space: str = ""

    def __post_init__(self):
        if not isinstance(self.num_codes, int) or self.num_codes < 1:
            raise ValueError(f"num_codes must be an int >= 1, got {self.num_codes!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive int, got {self.steps!r}")
        check_number("lr", self.lr, positive=True)
        if not isinstance(self.layer, str) or not isinstance(self.space, str):
            raise ValueError(f"layer and space must be names (strings; '' for the default), got "
                             f"{self.layer!r}, {self.space!r}")
        parse_loss(self.loss)


@dataclasses.dataclass(frozen=True)
class MultiCodeResult:
    """What `invert_multicode` returns, as numpy arrays with one row per target.

    `latents` [n, num_codes, *space shape]; `importance` [n, num_codes, C] (C: the channels of
    `layer`); `images` the compositions [n, H, W, C_img]; `losses` per target final 'loss' (the
    weighted sum) and each term. `space` is the space's spec (`latent_space(G, **space)`).
    """

    space: dict
    layer: str
    steps: int
    latents: np.ndarray
    importance: np.ndarray
    images: np.ndarray
    losses: dict


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

    `layer`'s activation is sum_n importance[n] ⊙ F_n; every earlier layer's is the sum of the
    codes' activations weighted by their mean importance; the layers after `layer` read the mean
    code. Pure and jittable (one target; `decode_multicode` maps it over targets).
    """
    names = _layers_through(space.generator, layer)
    features = space.features(params, codes, names)
    weights = jnp.mean(importance, axis=1)
    composed = {name: jnp.tensordot(weights, features[name], axes=1, precision=HIGHEST) for name in names[:-1]}
    composed[layer] = jnp.sum(features[layer] * importance[:, None, None, :], axis=0)
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


# --- the compiled program ----------------------------------------------------------------------
class MultiCodeProgram(Program):
    """The mGANprior `Program`: codes and importance per target under Adam at a constant learning
    rate, composed at `layer` of `space`; the loss is the projector's (`image_loss`)."""

    def __init__(self, space: LatentSpace, num_codes: int, layer: str, lr: float, weights, mesh: Mesh | None = None):
        self.latent_space, self.num_codes, self.layer = space, num_codes, layer
        self.channels = _feature_shapes(space)[layer][-1]
        self.weights = dict(weights)
        self.tx = projector_optimizer(1, lr, lr_rampup=0.0, lr_rampdown=0.0)  # Adam at a constant lr
        super().__init__(space.generator.params, mesh)

    def objective(self, params, lpips, variables, target, target_features):
        image = compose(self.latent_space, params, variables["codes"], variables["importance"], self.layer)
        total, terms = image_loss(self.weights, lpips, image, target, target_features)
        return total, (terms, image)

    def init_one(self, params, lpips, target, key, inputs):
        codes = self.latent_space.sample(key, self.num_codes, params)
        importance = jnp.full((self.num_codes, self.channels), 1.0 / self.num_codes, jnp.float32)
        variables = {"codes": codes, "importance": importance}
        return {"variables": variables, "opt": self.tx.init(variables), "target": target,
                "features": target_features(self.weights, lpips, target)}

    def step_one(self, params, lpips, state, step):
        def loss(variables):
            return self.objective(params, lpips, variables, state["target"], state["features"])[0]

        return descend(self.tx, loss, state)

    def finish_one(self, params, lpips, state):
        variables = state["variables"]
        total, (terms, image) = self.objective(params, lpips, variables, state["target"], state["features"])
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
    target batches like `Inverter`: `MultiCodeInverter(G, MultiCodeConfig(num_codes=20))(targets, key)`.

    Pass a LatentSpace for options such as BigGAN's `class_index`: `latent_space(G, 'z', class_index=0)`.
    """

    def __init__(self, source, config: MultiCodeConfig | None = None, *, lpips=None, mesh: Mesh | None = None):
        config = config or MultiCodeConfig()
        space = _resolve_space(source, config.space)
        G = space.generator
        layer = check_layer(G, config.layer) if config.layer else default_layer(space)
        weights = parse_loss(config.loss)
        if "lpips" in weights and lpips is None:
            raise ValueError("loss 'lpips' needs an LPIPS model: lpips=latentjax.metrics.lpips.load_lpips(vgg16, lin)")
        self._program = MultiCodeProgram(space, config.num_codes, layer, float(config.lr), weights, mesh)
        self.G, self.latent_space, self.space, self.layer = G, space, space.name, layer
        self.steps, self.weights = config.steps, weights
        self.config = dataclasses.replace(config, layer=layer, space=space.name)
        self._lpips = self._program.replicate(lpips) if "lpips" in weights else None

    def per_target_inputs(self, classes, n: int) -> dict:
        return {}  # a conditional generator's class comes with the LatentSpace (its `class_index`)

    def __call__(self, targets, key, *, batch_size: int | None = None, progress: bool = True) -> MultiCodeResult:
        """Invert `targets` [n, H, W, C] with one key (split per target) or n keys, `batch_size` at a time."""
        result = super().__call__(targets, key, batch_size=batch_size, progress=progress)
        return MultiCodeResult(space=self.latent_space.spec, layer=self.layer, steps=self.steps,
                               latents=result.latents["codes"], importance=result.latents["importance"],
                               images=result.images, losses=result.losses)


def invert_multicode(G, targets, *, key, config: MultiCodeConfig | dict | None = None, lpips=None, space=None,
                     batch_size: int | None = None, mesh: Mesh | None = None, progress: bool = True,
                     **overrides) -> MultiCodeResult:
    """mGANprior inversion of `targets` [n, H, W, C] (NHWC, the generator's size, in [-1, 1]).

    `G`: a generator (or a LatentSpace); `space`: a space name or a LatentSpace (BigGAN needs one
    with a `class_index`: `latent_space(G, 'z', class_index=0)`). Keyword overrides (`num_codes`,
    `layer`, `steps`, `lr`, `loss`) apply on top of `config`. `loss` with 'lpips' needs `lpips`
    (`latentjax.metrics.lpips.load_lpips`). `key`: one key, split per target, or one per target.
    `batch_size` targets share one compiled step (default: all), sharded over the mesh's "data"
    axis (default: all devices).
    """
    if config is None or isinstance(config, dict):
        config = MultiCodeConfig.from_dict(config or {})
    elif not isinstance(config, MultiCodeConfig):
        raise ValueError(f"config must be a MultiCodeConfig or a dict, got {type(config).__name__}")
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
    inverter = MultiCodeInverter(source, config, lpips=lpips, mesh=mesh)
    return inverter(targets, key, batch_size=batch_size, progress=progress)
