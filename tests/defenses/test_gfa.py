"""The GFA term: equals a direct cosine, is NaN-free at zero, and its gradient matches finite differences."""
import functools

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from gradient_checks import assert_gradient_matches_finite_differences

from gfa_jax.defenses.gfa import cosine_similarity, gfa_loss, layer_gfa, mse_onehot
from gfa_jax.losses import cross_entropy
from gfa_jax.models import PaperMLP

jax.config.update("jax_enable_x64", False)


def _tiny_mlp():
    return PaperMLP(num_classes=3, hidden_features=(5, 4))


def _tiny_problem(dtype=jnp.float32):
    model = _tiny_mlp()
    x = jax.random.uniform(jax.random.key(0), (4, 2, 3, 1), minval=-1, maxval=1).astype(dtype)
    y = jnp.array([0, 1, 2, 1])
    params = model.init(jax.random.key(1), x)["params"]
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    return model, params, x, y


def _direct_layer_inputs(params, x):
    """The tiny MLP's forward written out by hand, returning each layer's input."""
    h1 = x.reshape(x.shape[0], -1)
    h2 = jnp.tanh(h1 @ params["fc1"]["kernel"])
    h3 = jnp.tanh(h2 @ params["fc2"]["kernel"])
    return h1, h2, h3


def _direct_gfa(params, x, y):
    """Cosines computed from first principles: dL/dh by differentiating the hand-written tail."""
    h1, h2, h3 = _direct_layer_inputs(params, x)
    k1, k2, k3 = (params[n]["kernel"] for n in ("fc1", "fc2", "fc3"))
    tails = {
        "fc1": lambda h: jnp.tanh(jnp.tanh(h @ k1) @ k2) @ k3,
        "fc2": lambda h: jnp.tanh(h @ k2) @ k3,
        "fc3": lambda h: h @ k3,
    }
    result = {}
    for name, h in zip(("fc1", "fc2", "fc3"), (h1, h2, h3)):
        grad = jax.grad(lambda v: jnp.sum(mse_onehot(tails[name](v), y)))(h)
        cos = [np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(np.asarray(h), np.asarray(grad))]
        result[name] = np.array(cos)
    return result


def test_layer_gfa_equals_direct_cosine():
    model, params, x, y = _tiny_problem()
    _, _, gfa = layer_gfa(model, params, x, y, model.layer_names)
    expected = _direct_gfa(params, x, y)
    for name in model.layer_names:
        np.testing.assert_allclose(gfa[name], expected[name], rtol=1e-4, atol=1e-5)


def test_cosine_is_zero_and_gradient_finite_at_zero_vectors():
    a = jnp.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    b = jnp.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(cosine_similarity(a, b), jnp.zeros(3))
    grads = jax.grad(lambda a_, b_: cosine_similarity(a_, b_).sum(), argnums=(0, 1))(a, b)
    chex.assert_tree_all_finite(grads)


def test_gfa_loss_has_no_nan_when_activations_are_zero():
    model, params, x, y = _tiny_problem()
    zero_input = jnp.zeros_like(x)
    loss_fn = functools.partial(gfa_loss, model=model, layer_names=model.layer_names, beta=(1.0, 1.0, 1.0))
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, zero_input, y)
    chex.assert_tree_all_finite((loss, aux, grads))


@pytest.mark.parametrize("task_loss, per_sample_loss", [("mse", mse_onehot), ("ce", cross_entropy)])
def test_gfa_loss_combines_the_task_loss_and_weighted_gfa(task_loss, per_sample_loss):
    model, params, x, y = _tiny_problem()
    beta = (0.5, 0.0, 2.0)
    loss, aux = gfa_loss(params, x, y, model=model, layer_names=model.layer_names, alpha=3.0, beta=beta,
                         task_loss=task_loss)
    per_sample, logits, gfa = layer_gfa(model, params, x, y, model.layer_names, task_loss)
    np.testing.assert_allclose(per_sample, per_sample_loss(logits, y), rtol=1e-6)
    expected = 3.0 * per_sample.mean() - 0.5 * gfa["fc1"].mean() - 2.0 * gfa["fc3"].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert set(aux) == {"task_loss", "accuracy", "gfa/fc1", "gfa/fc3"}


def test_standard_strategy_is_plain_mse():
    model, params, x, y = _tiny_problem()
    loss, _ = gfa_loss(params, x, y, model=model, layer_names=model.layer_names, beta=(0.0, 0.0, 0.0))
    np.testing.assert_allclose(loss, mse_onehot(model.apply({"params": params}, x), y).mean(), rtol=1e-6)


def test_beta_length_must_match_layers():
    model, params, x, y = _tiny_problem()
    with pytest.raises(ValueError, match="one weight per layer|entries"):
        gfa_loss(params, x, y, model=model, layer_names=model.layer_names, beta=(1.0,))


@pytest.mark.parametrize("beta", [(1.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
def test_gfa_parameter_gradient_matches_finite_differences(beta):
    """The nested-grad parameter gradient against central differences, in float64."""
    with jax.enable_x64(True):
        model, params, x, y = _tiny_problem(jnp.float64)
        loss_fn = lambda p: gfa_loss(p, x, y, model=model, layer_names=model.layer_names, beta=beta)[0]
        assert_gradient_matches_finite_differences(loss_fn, params)
