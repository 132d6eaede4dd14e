"""torchvision ResNets read without torch: parity with torchvision on narrowed networks in both file
layouts, the architecture inferred from a real ResNet-50's keys, the attribute predictor as a
scorer, and the errors that name what is wrong."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import FIXTURES, PARITY_RTOL, relative_error
from latentjax.errors import CheckpointError, ConversionError
from latentjax.metrics.attributes import CELEBA_ATTRIBUTES, adaptive_avg_pool, attribute_predictor, attribute_scorer
from latentjax.nn.resnet import ResNetConfig, config_from_state_dict, from_state_dict, load_resnet
from latentjax.io.state_dict import read_state_dict

DIR = FIXTURES / "resnet"


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(DIR / "outputs.npz"))


def test_adaptive_avg_pool_is_torchs(reference):
    pooled = adaptive_avg_pool(jnp.asarray(reference["images"]), 36)
    assert relative_error(pooled, reference["pooled"]) < PARITY_RTOL
    same = adaptive_avg_pool(jnp.asarray(reference["images"]), 48)
    np.testing.assert_allclose(same, reference["images"], rtol=1e-6)  # equal size: the identity
    np.testing.assert_allclose(adaptive_avg_pool(jnp.asarray(reference["images"]), 24),
                               reference["images"].reshape(3, 24, 2, 24, 2, 3).mean(axis=(2, 4)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, block, layers, outputs", [("bottleneck", "bottleneck", (2, 1, 1, 2), 80),
                                                          ("basic", "basic", (1, 2, 1, 1), 10)])
def test_torchvision_parity_in_both_file_layouts(reference, name, block, layers, outputs):
    net = load_resnet(DIR / f"{name}.pt")  # bottleneck: {'state_dict': ...}; basic: a bare state dict
    assert net.config == ResNetConfig(block=block, layers=layers, num_outputs=outputs, stem_width=8,
                                      widths=(4, 8, 8, 16))
    logits, pooled = jax.jit(net.apply)(net.variables, jnp.asarray(reference["pooled"]))
    assert relative_error(logits, reference[f"{name}_logits"]) < PARITY_RTOL
    assert pooled.shape == (3, net.config.feature_dim)


def test_attribute_predictor_scores_presence_probabilities_and_has_gradients(reference):
    scorer = attribute_predictor(DIR / "bottleneck.pt", size=36)
    assert scorer.names == CELEBA_ATTRIBUTES and len(scorer.names) == 40 and scorer.differentiable
    images = jnp.asarray(reference["images"])
    probs = jax.jit(scorer.score)(scorer.params, images)
    np.testing.assert_allclose(probs, reference["bottleneck_probs"], atol=1e-6)
    grad = jax.jit(jax.grad(lambda x: scorer.score(scorer.params, x)[:, CELEBA_ATTRIBUTES.index("Smiling")].sum()))(
        images)
    assert grad.shape == images.shape and float(jnp.abs(grad).sum()) > 0
    with pytest.raises(ValueError, match="two logits per attribute"):
        attribute_scorer(load_resnet(DIR / "basic.pt"))


def test_a_real_resnet50_layout_is_recognised_and_filled():
    shapes = json.loads((DIR / "resnet50_80_shapes.json").read_text())
    state = {k: np.zeros(s, np.int64 if k.endswith("num_batches_tracked") else np.float32) for k, s in shapes.items()}
    config = config_from_state_dict(state, "resnet50")
    assert config == ResNetConfig(block="bottleneck", layers=(3, 4, 6, 3), num_outputs=80)
    assert config.feature_dim == 2048
    net = from_state_dict(state, "resnet50")  # every key used, every shape fits
    assert sum(x.size for x in jax.tree.leaves(net.variables)) == sum(
        int(np.prod(s)) for k, s in shapes.items() if not k.endswith("num_batches_tracked"))


def test_errors_name_the_file_and_the_key(tmp_path):
    state = read_state_dict(DIR / "basic.pt")
    missing = {k: v for k, v in state.items() if k != "layer2.1.bn2.running_var"}
    with pytest.raises(ConversionError, match="missing key 'layer2.1.bn2.running_var'"):
        from_state_dict(missing, "basic.pt")
    with pytest.raises(ConversionError, match="unexpected keys \\['extra.weight'\\]"):
        from_state_dict({**state, "extra.weight": np.zeros(3, np.float32)}, "basic.pt")
    wrong = {**state, "layer3.0.conv2.weight": np.zeros((8, 8, 5, 5), np.float32)}
    with pytest.raises(ConversionError, match="layer3.0.conv2.weight"):
        from_state_dict(wrong, "basic.pt")
    with pytest.raises(ConversionError, match="not a torchvision ResNet"):
        from_state_dict({"features.0.weight": np.zeros((3, 3, 3, 3), np.float32)}, "vgg.pt")
    with pytest.raises(CheckpointError, match="rosinality_train_s64.pt: expected a state dict of tensors \\(or a "
                                              "dict with one under 'state_dict'\\), got a dict with keys"):
        load_resnet(FIXTURES / "stylegan2" / "rosinality_train_s64.pt")  # {'g', 'd', 'g_ema', ...}
    with pytest.raises(CheckpointError, match="not a torch.save archive"):
        load_resnet(DIR / "outputs.npz")
    with pytest.raises(CheckpointError, match=str(tmp_path / "nope.pt")):
        load_resnet(tmp_path / "nope.pt")
