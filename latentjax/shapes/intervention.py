"""Causal effects of units on the world's factors (GAN Dissection's ablation and insertion).

Units of a generator layer are set, through hooks, to zero (`mode='ablate'`) or to given values
(`'insert'`, e.g. each unit's mean activation where it is on, `Dissection.present`) at every
position, and the images before and after are read back (`latentjax.shapes.readout`). The effect
is measured in the world's own terms: the share of valid images before and after, the share of
valid images whose object disappears, and each factor's mean change over pairs that both read
back validly, divided by the world's spread of that factor (1: as far apart as two random samples).
GAN Dissection inserts at chosen locations; here the whole map is set, the plainest test of what
the units cause.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from latentjax.shapes import reading, world
from latentjax.shapes.scoring import distances, world_spread

MODES = ("ablate", "insert")


def unit_intervention(space, params, layer: str, units, key, *, mode: str = "ablate", values=None,
                      num_samples: int = 256, batch_size: int = 64, valid_tol: float = reading.VALID_TOL,
                      spread=None) -> dict:
    """{'valid_before', 'valid_after', 'object_removed', 'change': {factor: normalised mean change}, 'pairs'}
    for setting `units` (channel indices) of `layer` on `num_samples` samples of `space`. `spread`:
    the world's spread per factor (`latentjax.shapes.scoring.world_spread()`, computed when None;
    pass it in when intervening many times)."""
    units = np.asarray(units, np.int64).reshape(-1)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if units.size == 0:
        raise ValueError("units: give at least one unit index")
    if mode == "insert":
        if values is None or np.shape(values) != units.shape:
            raise ValueError(f"insert needs values, one per unit ({units.size}), got {None if values is None else np.shape(values)}")
        fill = jnp.asarray(values, jnp.float32)
    else:
        fill = jnp.zeros(units.shape, jnp.float32)

    def hook(x):
        if units.max() >= x.shape[-1] or units.min() < 0:
            raise ValueError(f"units must index the {x.shape[-1]} channels of layer {layer!r}, got {units.tolist()}")
        return x.at[..., units].set(fill.astype(x.dtype))

    @jax.jit
    def batch(params, k):
        latent = space.sample(k, batch_size, params)
        return (reading.readout(space.decode(params, latent), valid_tol),
                reading.readout(space.decode(params, latent, hooks={layer: hook}), valid_tol))

    before, after = [], []
    for i in range(-(-num_samples // batch_size)):
        b, a = batch(params, jax.random.fold_in(key, i))
        before.append(jax.tree.map(np.asarray, b))
        after.append(jax.tree.map(np.asarray, a))
    before, after = ({k: np.concatenate([r[k] for r in reads])[:num_samples] for k in reads[0]}
                     for reads in (before, after))
    both = before["valid"] & after["valid"]
    apart = distances(before, after)
    spread = world_spread() if spread is None else np.asarray(spread, np.float64)
    if spread.shape != (len(world.FACTOR_NAMES),):
        raise ValueError(f"spread must have one value per factor {world.FACTOR_NAMES}, got shape {spread.shape}")

    def mean_change(i, name):  # NaN where no pair measures it (rotation: no pair shows the same polygon)
        values = apart[name][both]
        values = values[~np.isnan(values)]
        return float(values.mean() / spread[i]) if values.size else float("nan")

    change = {name: mean_change(i, name) for i, name in enumerate(world.FACTOR_NAMES)}
    removed = before["valid"] & (after["num_objects"] == 0)
    return {"valid_before": float(before["valid"].mean()), "valid_after": float(after["valid"].mean()),
            "object_removed": float(removed.sum() / max(before["valid"].sum(), 1)), "change": change,
            "pairs": int(both.sum())}
