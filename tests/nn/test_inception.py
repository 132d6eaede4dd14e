"""torchvision's Inception v3 read without torch: parity with torchvision on random weights laid out as
torchvision's own state dict (every key, the auxiliary head and batch counters included), the
attribute encoder spec built on it, and the errors that name what is wrong."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import FIXTURES, PARITY_RTOL, relative_error
from latentjax.errors import ConversionError
from latentjax.identity import encoders
from latentjax.nn.inception import FEATURE_DIM, InceptionConfig, from_state_dict, load_inception

DIR = FIXTURES / "inception"


def random_state_dict(shapes: dict, seed: int = 0) -> dict:
    """Random weights in torchvision's layout (the recipe `DIR/README.md` states): He-normal convs,
    batch-norm affines and statistics near 1 and 0, a small head; keys in sorted order."""
    rng = np.random.default_rng(seed)
    state = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            state[key] = np.zeros(shape, np.int64)
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif key.endswith(("running_mean", "bn.bias", "fc.bias")):
            state[key] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:  # conv and linear weights
            fan_in = int(np.prod(shape[1:]))
            state[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return state


def parity_images() -> np.ndarray:
    """The inputs the reference outputs are of: [2, 139, 139, 3] NHWC, uniform in [-1, 1]."""
    return np.random.default_rng(1).uniform(-1, 1, (2, 139, 139, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def reference():
    return {**np.load(DIR / "outputs.npz"), "images": parity_images()}


@pytest.fixture(scope="module")
def net():
    return from_state_dict(random_state_dict(json.loads((DIR / "inception_v3_shapes.json").read_text())))


def test_torchvision_parity_on_its_full_layout(net, reference):
    assert net.config == InceptionConfig(num_outputs=1000)
    logits, pooled = jax.jit(net.apply)(net.variables, jnp.asarray(reference["images"]))
    assert pooled.shape == (2, FEATURE_DIM)
    assert relative_error(pooled, reference["pooled"]) < PARITY_RTOL
    assert relative_error(logits, reference["logits"]) < PARITY_RTOL


def test_attribute_encoder_spec_embeds_at_299(net, reference, monkeypatch):
    monkeypatch.setattr(encoders, "load_inception", lambda path: net)
    encoder = encoders.load_encoder("inception:inception_v3.pt", normalize=True)
    assert (encoder.dim, encoder.resolution, encoder.spec) == (FEATURE_DIM, 299, "inception:inception_v3.pt")
    images = jnp.asarray(reference["images"][:1, :64, :64])  # any size: resized to 299, values as they are
    embedded = jax.jit(encoder.embed)(encoder.params, images)
    direct = jax.jit(net.apply)(net.variables, jax.image.resize(images, (1, 299, 299, 3), "linear"))[1]
    np.testing.assert_allclose(embedded, direct / jnp.linalg.norm(direct), rtol=1e-4, atol=1e-6)


def test_wrong_files_and_inputs_name_what_is_wrong(net):
    shapes = json.loads((DIR / "inception_v3_shapes.json").read_text())
    state = random_state_dict(shapes)
    del state["Mixed_6c.branch7x7_2.conv.weight"]
    with pytest.raises(ConversionError, match="Mixed_6c.branch7x7_2.conv.weight"):
        from_state_dict(state)
    state = random_state_dict(shapes)
    state["Mixed_5b.branch_pool.conv.weight"] = np.zeros((33, 192, 1, 1), np.float32)
    with pytest.raises(ConversionError, match="Mixed_5b.branch_pool.conv.weight"):
        from_state_dict(state)
    with pytest.raises(ConversionError, match="unexpected keys"):
        from_state_dict({**random_state_dict(shapes), "Mixed_8a.conv.weight": np.zeros((1,), np.float32)})
    with pytest.raises(ConversionError, match="not a torchvision Inception3"):
        load_inception(FIXTURES / "resnet" / "basic.pt")
    with pytest.raises(ValueError, match="H, W >= 75"):
        net.apply(net.variables, jnp.zeros((1, 64, 64, 3)))
