"""Batch-norm CIFAR models: exact parameter counts of the reference implementations, batch_stats
in training and inference mode, captured layer inputs, and Conv / Dense layers interceptable."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax.defenses import layerwise
from gfa_jax.models import get_model
from gfa_jax.models.layers import LAYER_INPUTS, by_layer_name, capture_key

CIFAR = (32, 32, 3)
TINY = ("vgg16_bn_tiny", "wrn_10_1", "resnet18_tiny")


def _model_variables(variables):
    """``params`` and ``batch_stats``: init also makes the (zero) ``perturbations`` of the GFA capture."""
    return {key: variables[key] for key in ("params", "batch_stats")}


def _variables_shapes(model, shape=(1, *CIFAR)):
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
    assert set(variables) == {"params", "batch_stats", "perturbations"}
    return _model_variables(variables)


def _size(tree) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("name, num_classes, expected", [
    ("wrn_28_10", 10, 36_479_194),  # xternalz/WideResNet-pytorch, RobustBench WideResNet(28, 10)
    ("wrn_28_10", 100, 36_536_884),
    ("vgg16_bn", 10, 14_728_266),  # kuangliu/pytorch-cifar VGG('VGG16')
    ("resnet18", 10, 11_173_962),  # kuangliu/pytorch-cifar ResNet18()
])
def test_trainable_parameter_counts_match_the_reference_implementations(name, num_classes, expected):
    model = get_model(name, num_classes=num_classes)
    variables = _variables_shapes(model)
    assert _size(variables["params"]) == expected
    assert variables["params"]["fc"]["kernel"].shape[-1] == num_classes


@pytest.mark.parametrize("name, layers, conv_bias", [
    ("wrn_28_10", 1 + 12 * 2 + 3 + 1, False), ("vgg16_bn", 13 + 1, True), ("resnet18", 1 + 8 * 2 + 3 + 1, False)])
def test_layers_are_plain_convs_and_one_dense_with_batch_norm_beside_them(name, layers, conv_bias):
    model = get_model(name, num_classes=10)
    params = _variables_shapes(model)["params"]
    names = model.layer_names
    assert len(names) == layers and names[-1] == "fc" and len(set(names)) == layers
    for layer in names[:-1]:
        assert set(params[layer]) == ({"kernel", "bias"} if conv_bias else {"kernel"}), layer
    assert set(params["fc"]) == {"kernel", "bias"}
    batch_norms = {key for key in params if key not in names}
    assert batch_norms and all(set(params[key]) == {"scale", "bias"} for key in batch_norms)


@pytest.fixture(scope="module", params=TINY)
def tiny(request):
    model = get_model(request.param, num_classes=7)
    x = jax.random.uniform(jax.random.key(1), (4, *CIFAR), minval=-1, maxval=1)
    variables = _model_variables(model.init(jax.random.key(0), x))
    return request.param, model, x, variables


def test_training_mode_updates_batch_stats_and_inference_mode_does_not(tiny):
    _, model, x, variables = tiny
    logits, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    assert logits.shape == (4, 7)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"], updated["batch_stats"])
    assert all(jax.tree.leaves(changed))  # every running mean and variance moved
    logits, same = model.apply(variables, x, train=False, mutable=["batch_stats"])
    assert logits.shape == (4, 7)
    jax.tree.map(np.testing.assert_array_equal, same["batch_stats"], variables["batch_stats"])


def test_inference_mode_is_per_sample_and_training_mode_uses_the_batch(tiny):
    _, model, x, variables = tiny
    alone = model.apply(variables, x[:1])
    np.testing.assert_allclose(model.apply(variables, x)[:1], alone, rtol=1e-5, atol=1e-5)
    in_batch, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    other_batch, _ = model.apply(variables, jnp.concatenate([x[:1], -x[1:]]), train=True, mutable=["batch_stats"])
    assert not np.allclose(in_batch[0], other_batch[0], atol=1e-4)


def test_running_averages_follow_pytorch_momentum(tiny):
    name, model, x, variables = tiny
    _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    first = model.layer_names[0]
    bn = {"wrn_10_1": "g1b1_bn1"}.get(name, f"{first}_bn")
    # The first batch norm normalises the first convolution's output (for the WRN: the stem's).
    conv = nn.Conv(variables["params"][first]["kernel"].shape[-1], (3, 3), padding=1,
                   use_bias="bias" in variables["params"][first])
    features = conv.apply({"params": variables["params"][first]}, x)
    stats = updated["batch_stats"][bn]
    np.testing.assert_allclose(stats["mean"], 0.1 * features.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * features.var((0, 1, 2)), rtol=1e-4, atol=1e-6)


def test_captured_layer_inputs_are_the_named_layers_in_forward_order(tiny):
    _, model, x, variables = tiny
    logits, state = model.apply(variables, x, mutable=[LAYER_INPUTS])
    assert list(state[LAYER_INPUTS]) == [capture_key(name) for name in model.layer_names]
    inputs = by_layer_name(state[LAYER_INPUTS], model.layer_names)
    np.testing.assert_array_equal(inputs[model.layer_names[0]], x)
    fc = variables["params"]["fc"]
    np.testing.assert_allclose(inputs["fc"] @ fc["kernel"] + fc["bias"], logits, rtol=1e-5, atol=1e-5)
    # Every later layer reads a ReLU output (post batch norm): nonnegative.
    assert all(bool(jnp.all(inputs[name] >= 0)) for name in model.layer_names[1:])


def test_every_captured_layer_is_an_interceptable_conv_or_dense(tiny):
    _, model, x, variables = tiny
    seen = {group: [] for group in ("all", "conv")}

    def recorder(group):
        def record(module, layer_input, output):
            seen[group].append(layerwise.layer_key(module))
            return output
        return layerwise.layer_interceptor((group,), record)

    with nn.intercept_methods(recorder("all")), nn.intercept_methods(recorder("conv")):
        jax.eval_shape(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]), variables)
    assert seen["all"] == list(model.layer_names)
    assert seen["conv"] == list(model.layer_names[:-1])


def test_unknown_depth_is_rejected():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        _variables_shapes(get_model("wrn_10_1", depth=12))
