"""Paper models: parameter counts of Tables 3 and 4, captured layer inputs, exact pooling."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax.models import get_model
from gfa_jax.models.layers import LAYER_INPUTS, by_layer_name, max_pool_2x2

TABLE_3 = {"conv1": 896, "conv2": 9248, "fc1": 2_048_000, "fc2": 600_000, "fc3": 6000}
TABLE_4 = {"fc1": 470_400, "fc2": 180_000, "fc3": 3000}


def _param_counts(params):
    return {layer: sum(leaf.size for leaf in jax.tree.leaves(p)) for layer, p in params.items()}


@pytest.mark.parametrize(
    "name, shape, expected",
    [("paper_cnn", (1, 32, 32, 3), TABLE_3), ("paper_mlp", (1, 28, 28, 1), TABLE_4)],
)
def test_parameter_counts_match_paper_tables(name, shape, expected):
    model = get_model(name)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))["params"]
    assert _param_counts(params) == expected
    assert model.layer_names == tuple(expected)


def test_linear_layers_have_no_bias_and_convs_do():
    params = jax.eval_shape(get_model("paper_cnn").init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    assert set(params["conv1"]) == {"kernel", "bias"}
    assert set(params["fc1"]) == {"kernel"}


@pytest.mark.parametrize("name, shape", [("paper_cnn", (2, 32, 32, 3)), ("paper_mlp", (2, 28, 28, 1))])
def test_layer_inputs_are_captured_in_order(name, shape):
    model = get_model(name)
    x = jax.random.uniform(jax.random.key(1), shape, minval=-1, maxval=1)
    params = model.init(jax.random.key(0), x)["params"]
    logits, state = model.apply({"params": params}, x, mutable=[LAYER_INPUTS])
    inputs = by_layer_name(state[LAYER_INPUTS], model.layer_names)
    assert logits.shape == (2, 10)
    np.testing.assert_array_equal(inputs[model.layer_names[0]].reshape(2, -1), x.reshape(2, -1))
    # The last layer's input times its kernel is the logits.
    last = model.layer_names[-1]
    np.testing.assert_allclose(inputs[last] @ params[last]["kernel"], logits, rtol=1e-5, atol=1e-5)


def test_max_pool_2x2_equals_flax_max_pool_and_its_gradient():
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
    np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))
    g_ours = jax.grad(lambda v: jnp.sum(jnp.sin(max_pool_2x2(v))))(x)
    g_flax = jax.grad(lambda v: jnp.sum(jnp.sin(nn.max_pool(v, (2, 2), (2, 2)))))(x)
    np.testing.assert_allclose(g_ours, g_flax, rtol=1e-6)


def test_max_pool_2x2_gradient_with_ties_is_a_subgradient():
    # After ReLU whole windows tie at 0; a tie must not multiply or lose the output's gradient.
    x = jnp.asarray([[1.0, 1.0, 0.0, 0.0], [1.0, 0.5, 0.0, 0.0], [2.0, 3.0, 0.0, 0.0], [3.0, 3.0, 0.0, -1.0]])
    x = x.reshape(1, 4, 4, 1)
    upstream = jnp.asarray([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    grad = jax.grad(lambda v: jnp.sum(max_pool_2x2(v) * upstream))(x)[0, :, :, 0]
    windows = grad.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)
    np.testing.assert_allclose(windows.sum(-1), upstream[0, :, :, 0], rtol=1e-6)
    maximal = (x[0, :, :, 0].reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)
               == max_pool_2x2(x)[0, :, :, 0][..., None])
    assert bool(jnp.all(jnp.where(maximal, True, windows == 0)))
    assert bool(jnp.all(windows >= 0))
    # One maximal element takes a tied window's whole gradient, as in PyTorch (no split, no divide).
    np.testing.assert_array_equal(jnp.sum(windows != 0, axis=-1), jnp.ones((2, 2)))


def test_max_pool_2x2_propagates_nan_like_max_pool():
    x = jnp.zeros((1, 4, 4, 1)).at[0, 1, 1, 0].set(jnp.nan).at[0, 3, 2, 0].set(jnp.nan).at[0, 0, 3, 0].set(5.0)
    np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))
    assert bool(jnp.isnan(max_pool_2x2(x)[0, 0, 0, 0])) and bool(jnp.isnan(max_pool_2x2(x)[0, 1, 1, 0]))


def test_max_pool_2x2_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        max_pool_2x2(jnp.zeros((1, 5, 4, 1)))
