"""`LatentSpace`, the interface every direction method, walk and inversion works through, and `w+` layer masks."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.latent.classes import class_vectors, num_classes
from latentjax.latent.density import Gaussian
from latentjax.models.taps import Hooks


class LatentSpace:
    """One latent space of one generator. Subclasses implement `sample`, `decode`, `features`.

    - `shape`: a latent's shape per sample; latents are batched [N, *shape].
    - `direction_dim`: length of a direction vector; `embed(v, layers)` maps it to a latent-shaped
      edit, `pool(latent)` maps a latent back to direction coordinates.
    - `prior`: the `Gaussian` behind `log_density`: the mean and spread of the space's samples.
    - `spec`: what `latent_space(G, **spec)` needs to rebuild this space (saved with directions).

    `sample(key, n, params=None)` uses `G.params` unless `params` is given (pass them when
    sampling inside a jitted function); `decode` and `features` take `params` first and are pure.
    """

    family: str = ""
    names: tuple[str, ...] = ()

    def __init__(self, generator, name: str, options: dict):
        self.generator = generator
        if name not in self.names:
            raise ValueError(f"{self.family} generators have latent spaces {list(self.names)}, got {name!r}")
        self.name = name
        self.options = dict(options)
        class_index = self.options.get("class_index")
        if class_index is not None and not 0 <= class_index < self.num_classes:
            raise ValueError(f"class_index must be in [0, {self.num_classes}) for this generator, got {class_index}")

    # --- shapes --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def direction_dim(self) -> int:
        return int(np.prod(self.shape))

    @property
    def num_layers(self) -> int | None:
        """Number of per-layer vectors a direction can be applied to (`w+` only)."""
        return None

    @property
    def coordinate_layers(self) -> np.ndarray | None:
        """The generator layer of each direction coordinate [direction_dim] (StyleSpace's channels), or
        None where coordinates belong to no one layer (z, w, and w+, whose direction is one w)."""
        return None

    @property
    def spec(self) -> dict:
        return {"name": self.name, **self.options}

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"LatentSpace({self.family} {self.name!r}, shape={self.shape}{', ' + options if options else ''})"

    # --- conditioning ----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """How many values `class_index` takes (see `class_vectors`); 0 for unconditional generators."""
        return num_classes(self.generator)

    def classes(self, n: int, classes=None):
        """Class vectors [n, c_dim] for n samples, or None for an unconditional generator.

        `classes`: one class index, n indices in [0, num_classes) or n class vectors [n, c_dim];
        None: the space's `class_index` for every sample. Traced `classes` (under `jit`) are
        checked by shape only.
        """
        G, k = self.generator, self.num_classes
        name = type(G).__name__
        if not k:
            if classes is not None:
                raise ValueError(f"classes: this {name} is unconditional (c_dim 0); leave classes None")
            return None
        expected = f"one class index, {n} indices in [0, {k}) or {n} class vectors [{n}, {G.c_dim}] (one per sample)"
        if classes is None:
            if self.options.get("class_index") is None:  # only checked here: SeFa, for one, needs no class
                raise ValueError(f"classes: this {name} is class-conditional; pass {expected}, or pass class_index "
                                 f"(0..{k - 1}) to latent_space to sample or decode")
            return class_vectors(G, jnp.full((n,), self.options["class_index"]))
        traced = isinstance(classes, jax.core.Tracer)
        c = classes if traced else np.asarray(classes)
        if jnp.issubdtype(c.dtype, jnp.integer):
            c = jnp.broadcast_to(c, (n,)) if c.ndim == 0 else c
            if c.shape != (n,) or (not traced and (c.min() < 0 or c.max() >= k)):
                bounds = "" if traced else f" in [{c.min()}, {c.max()}]"
                raise ValueError(f"classes must be {expected}, got indices of shape {c.shape}{bounds}")
            return class_vectors(G, c)
        if (not jnp.issubdtype(c.dtype, jnp.floating) or c.shape != (n, G.c_dim)
                or (not traced and not np.all(np.isfinite(c)))):
            raise ValueError(f"classes must be {expected}, got dtype {c.dtype}, shape {c.shape}")
        return jnp.asarray(c, jnp.float32)

    # --- directions ------------------------------------------------------------------------
    def embed(self, direction, layers=None):
        """Direction(s) [..., direction_dim] -> latent-shaped edit(s) [..., *shape]."""
        if layers is not None:
            raise ValueError(f"a per-layer mask only applies to the 'w+' space, not {self.name!r}")
        return jnp.reshape(direction, direction.shape[:-1] + self.shape)

    def pool(self, latent):
        """Latent(s) [..., *shape] -> direction coordinates [..., direction_dim]."""
        return jnp.reshape(latent, latent.shape[:latent.ndim - len(self.shape)] + (self.direction_dim,))

    # --- density ---------------------------------------------------------------------------
    @property
    def prior(self) -> Gaussian:
        raise NotImplementedError

    def log_density(self, latent):
        """log p(latent) for latents [N, *shape] -> [N]."""
        return self.prior.log_prob(latent, event_ndim=len(self.shape))

    # --- the generator ---------------------------------------------------------------------
    def sample(self, key, n: int, params=None):
        raise NotImplementedError

    def decode(self, params, latent, hooks: Hooks | None = None, classes=None):
        """Latents [N, *shape] -> images [N, H, W, C].

        `hooks` ({layer name: activation -> activation}, see `latentjax.models.taps`) replace
        intermediate activations, e.g. to edit only some channels of a layer. `classes` (as in
        `classes`) gives conditional generators one class per sample where the class enters
        decoding (every 'z' space); None uses the space's `class_index`.
        """
        raise NotImplementedError

    def features(self, params, latent, layers: Sequence[str] | None = None, hooks: Hooks | None = None,
                 classes=None) -> dict:
        """Latents [N, *shape] -> intermediate activations by name (NHWC); `hooks`, `classes` as in `decode`."""
        raise NotImplementedError


def parse_layers(spec: str | Sequence[int], num_layers: int) -> np.ndarray:
    """A layer selection -> boolean mask [num_layers]: 'all', 'i-j' (inclusive), 'i,j,k' or indices."""
    if isinstance(spec, str):
        text = spec.strip()
        if text == "all":
            return np.ones(num_layers, bool)
        try:
            if "-" in text:
                lo, hi = (int(v) for v in text.split("-"))
                indices = list(range(lo, hi + 1))
            else:
                indices = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"layers must be 'all', 'i-j' or 'i,j,...', got {spec!r}") from None
    else:
        indices = [int(v) for v in spec]
    if not indices or min(indices) < 0 or max(indices) >= num_layers:
        raise ValueError(f"layers {spec!r} must select indices in [0, {num_layers - 1}]")
    mask = np.zeros(num_layers, bool)
    mask[indices] = True
    return mask


def layer_mask(space, spec, k: int) -> np.ndarray | None:
    """The [k, num_layers] mask for `w+` directions editing layers `spec`; None for other spaces."""
    if space.num_layers is None:
        if spec not in ("all", None):
            raise ValueError(f"a layer range ({spec!r}) needs the 'w+' space, not {space.name!r}")
        return None
    return np.broadcast_to(parse_layers(spec, space.num_layers), (k, space.num_layers)).copy()


@functools.partial(jax.jit, static_argnums=0)
def compiled_decode(space: LatentSpace, params, latent):
    """`space.decode(params, latent)`, jitted once per space and latent shape. Params are an argument
    (not baked into the program), so every caller decoding in the same space shares one compiled
    program: walks, ground-truth scores and reports of several methods in one run."""
    return space.decode(params, latent)
