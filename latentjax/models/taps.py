"""Feature taps: where a generator records an intermediate activation, a hook may replace it.

`hooks` maps layer names (a generator's `layer_names`) to functions activation -> activation of
the same shape; the rest of the network sees the returned value. This is how edits act inside a
generator: a channel-restricted edit (DP-LaSE subspaces), codes composed at a layer (mGANprior),
or "the generator after layer L" applied to given features (`hooks={L: lambda _: f}`).
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax

Hooks = Mapping[str, Callable[[jax.Array], jax.Array]]


def tap(features: dict, hooks: Hooks | None, name: str, x: jax.Array) -> jax.Array:
    """Record `x` as feature `name`, first replaced by `hooks[name](x)` if there is such a hook."""
    if hooks and name in hooks:
        y = hooks[name](x)
        if y.shape != x.shape:
            raise ValueError(f"hook for layer {name!r} returned shape {tuple(y.shape)}, expected {tuple(x.shape)}")
        x = y.astype(x.dtype)
    features[name] = x
    return x


def check_hooks(hooks: Hooks | None, layer_names) -> None:
    """Every hooked name must be a layer of the generator, and every hook callable."""
    if not hooks:
        return
    unknown = [name for name in hooks if name not in layer_names]
    if unknown:
        raise ValueError(f"hooks for unknown layers {unknown}; expected names from {list(layer_names)}")
    for name, hook in hooks.items():
        if not callable(hook):
            raise ValueError(f"hooks[{name!r}] must be a function activation -> activation, got {type(hook).__name__}")
