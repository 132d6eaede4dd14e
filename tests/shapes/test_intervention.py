"""Unit interventions: a unit that carries one factor moves that factor alone, by the amount the world's
read-out measures; bad settings are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latentjax.shapes import world
from latentjax.shapes.intervention import unit_intervention
from latentjax.shapes.scoring import world_spread


class FactorSpace:
    """A stand-in generator whose layer 'code' holds the factors themselves, one channel each (shape
    as a number), rendered exactly: so setting a unit sets a factor."""

    generator = None

    def sample(self, key, n, params=None):
        f = world.sample_factors(key, n)
        return jnp.stack([f["shape"].astype(jnp.float32)] + [f[k] for k in world.FACTOR_NAMES[1:]], axis=1)

    def decode(self, params, latent, hooks=None):
        code = latent[:, None, None, :]
        if hooks and "code" in hooks:
            code = hooks["code"](code)
        values = code[:, 0, 0, :]
        factors = {"shape": jnp.clip(jnp.round(values[:, 0]), 0, 2).astype(jnp.int32),
                   **{k: values[:, i + 1] for i, k in enumerate(world.FACTOR_NAMES[1:])}}
        return world.render(factors, 32).images


def test_setting_the_x_unit_moves_x_alone():
    space, key = FactorSpace(), jax.random.key(0)
    effect = unit_intervention(space, None, "code", [1], key, mode="insert", values=[0.5], num_samples=64,
                               batch_size=32)
    assert effect["valid_before"] == 1.0 and effect["valid_after"] == 1.0 and effect["object_removed"] == 0.0
    x = np.concatenate([np.asarray(space.sample(jax.random.fold_in(key, i), 32))[:, 1] for i in range(2)])
    expected = np.mean(np.abs(x - 0.5)) / world_spread()[world.FACTOR_NAMES.index("x")]
    assert effect["change"]["x"] == pytest.approx(expected, rel=0.05)  # the read-out is exact to a pixel's fraction
    others = [v for k, v in effect["change"].items() if k not in ("x", "rotation")]
    assert max(others) < 0.05 * effect["change"]["x"]


def test_bad_settings_are_refused():
    space, key = FactorSpace(), jax.random.key(0)
    with pytest.raises(ValueError, match="mode"):
        unit_intervention(space, None, "code", [1], key, mode="remove")
    with pytest.raises(ValueError, match="at least one unit"):
        unit_intervention(space, None, "code", [], key)
    with pytest.raises(ValueError, match="insert needs values"):
        unit_intervention(space, None, "code", [1, 2], key, mode="insert", values=[0.5])
    with pytest.raises(ValueError, match="channels of layer"):
        unit_intervention(space, None, "code", [9], key, num_samples=4, batch_size=4)
