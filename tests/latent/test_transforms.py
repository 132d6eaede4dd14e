"""Every family's every latent space under JAX's transforms: decoding is the same eagerly and under
jit (and jitted calls with new latents do not retrace), per sample under vmap, and gradients reach
the latent, finite and matching a central difference."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

import latentjax as lj
from support import FIXTURES

GENERATORS = {"stylegan2": FIXTURES / "stylegan2" / "ada_s32.pt", "stylegan3": FIXTURES / "stylegan3" / "sg3t_s32.pkl",
              "biggan": FIXTURES / "biggan" / "deep_tiny", "pggan": FIXTURES / "pggan" / "pgan_tiny.pth"}
SPACES = {"stylegan2": ("z", "w+", "s"), "stylegan3": ("w+",), "biggan": ("z",), "pggan": ("z",)}
CASES = [(f"{family}_{space}", family, space) for family, spaces in SPACES.items() for space in spaces]
_LOADED = {}


def space_of(family: str, name: str):
    if family not in _LOADED:
        _LOADED[family] = lj.load_generator(str(GENERATORS[family]))
    G = _LOADED[family]
    return G, lj.latent_space(G, name, **({"class_index": 0} if lj.latent.num_classes(G) else {}))


@functools.cache
def jitted_decode(family: str, name: str):
    """One compiled decode per space, shared by the tests that compare against it."""
    return jax.jit(space_of(family, name)[1].decode)


class TransformsTest(chex.TestCase):

    def setUp(self):
        super().setUp()
        chex.clear_trace_counter()  # chex counts traces per function name across tests

    @parameterized.named_parameters(*CASES)
    def test_eager_decode_is_the_jitted_one(self, family, name):
        G, space = space_of(family, name)
        x = space.sample(jax.random.key(0), 3)
        chex.assert_trees_all_close(space.decode(G.params, x), jitted_decode(family, name)(G.params, x),
                                    rtol=1e-4, atol=1e-4)  # XLA fuses differently

    @parameterized.named_parameters(*CASES)
    def test_jitted_decode_is_traced_once_for_new_latents_of_the_same_shape(self, family, name):
        G, space = space_of(family, name)
        decode = jax.jit(chex.assert_max_traces(space.decode, n=1))
        for seed in range(3):
            decode(G.params, space.sample(jax.random.key(seed), 3))

    @parameterized.named_parameters(*CASES)
    def test_vmap_decodes_each_sample_as_the_batch_does(self, family, name):
        G, space = space_of(family, name)
        x = space.sample(jax.random.key(2), 3)
        batch = jitted_decode(family, name)(G.params, x)
        per_sample = jax.jit(jax.vmap(lambda xi: space.decode(G.params, xi[None])[0]))(x)
        chex.assert_trees_all_close(per_sample, batch, rtol=1e-4, atol=1e-5)

    @parameterized.named_parameters(*CASES)
    def test_gradient_reaches_the_latent_and_matches_a_central_difference(self, family, name):
        G, space = space_of(family, name)
        x = space.sample(jax.random.key(3), 2)
        loss = jax.jit(lambda latent: jnp.mean(space.decode(G.params, latent) ** 2))
        grad = jax.jit(jax.grad(lambda latent: jnp.mean(space.decode(G.params, latent) ** 2)))(x)
        chex.assert_tree_all_finite(grad)
        direction = jax.random.normal(jax.random.key(4), x.shape)
        eps = 1e-3
        numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
        assert float(jnp.vdot(grad, direction)) != 0.0
        np.testing.assert_allclose(float(jnp.vdot(grad, direction)), float(numeric), rtol=2e-2, atol=1e-6)
