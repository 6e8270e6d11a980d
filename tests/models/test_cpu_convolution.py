"""layers.conv_general_dilated / conv3x3_same (and dot_general / matmul): XLA:CPU's fast paths compute
the same convolution (and product).

Same values and derivatives (first, second and third order) as ``lax.conv_general_dilated``, and
the structural property they exist for: no convolution of a GFA gradient has a full-image window
(XLA's kernel-gradient form, which needed transposed copies of the activations).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest

from gfa_jax import gfa
from gfa_jax.models import PaperCNN
from gfa_jax.models.layers import conv3x3_same, conv_general_dilated, dot_general, matmul

NHWC = ("NHWC", "HWIO", "NHWC")


def lax_conv(x, kernel, strides=(1, 1), padding="SAME"):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC)


def derivatives(conv, x, kernel):
    """The value, first, second and third derivatives of scalar functions of ``conv(x, kernel)``."""
    first = lambda v, k: jnp.sum(jnp.sin(conv(v, k)))
    second = lambda v, k: jnp.sum(jnp.cos(jax.grad(first)(v, k)))  # through the input gradient
    third = lambda v, k: jnp.sum(jnp.sin(jax.grad(second, 1)(v, k)))
    return (conv(x, kernel), jax.grad(first, (0, 1))(x, kernel), jax.grad(second, (0, 1))(x, kernel),
            jax.grad(third, (0, 1))(x, kernel))


def assert_close_to_scale(got, expected, rtol: float = 1e-4):
    """Each leaf within ``rtol`` of the largest entry of its expected value (float32 summation order
    differs between the formulations; third derivatives reach hundreds)."""
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
        chex.assert_trees_all_close(a, b, rtol=0, atol=rtol * float(jnp.abs(b).max()))


@pytest.mark.parametrize("channels, features", [(5, 6), (4, 4), (2, 8), (6, 3)])
def test_conv3x3_same_matches_lax_to_third_order(channels, features):
    # Every layout of the kernel gradient on this 6x5 image: split taps (similar widths, the first
    # two), patches of x (2 -> 8) and patches of the cotangent (6 -> 3).
    x = jax.random.normal(jax.random.key(0), (3, 6, 5, channels))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, channels, features))
    assert_close_to_scale(derivatives(conv3x3_same, x, kernel), derivatives(lax_conv, x, kernel))


def test_matmul_matches_lax_to_third_order():
    x = jax.random.normal(jax.random.key(0), (5, 7))
    kernel = jax.random.normal(jax.random.key(1), (7, 3))
    assert_close_to_scale(derivatives(matmul, x, kernel), derivatives(jnp.matmul, x, kernel))


def test_dot_general_leaves_other_products_to_lax():
    x, kernel = jnp.ones((2, 4, 5)), jnp.ones((5, 3))
    product = lambda v: dot_general(v, kernel, (((2,), (0,)), ((), ())))
    chex.assert_trees_all_close(product(x), x @ kernel)
    assert "custom_vjp" not in str(jax.make_jaxpr(product)(x))
    assert "custom_vjp" in str(jax.make_jaxpr(lambda v: dot_general(v, kernel, (((1,), (0,)), ((), ()))))(x[0]))


@pytest.mark.parametrize("channels", [1, 3])
def test_narrow_inputs_are_padded_exactly(channels):
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, channels))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, channels, 4))
    ours = lambda v, k: conv_general_dilated(v, k, (1, 1), "SAME", dimension_numbers=jax.lax.conv_dimension_numbers(
        v.shape, k.shape, NHWC))
    assert_close_to_scale(derivatives(ours, x, kernel), derivatives(lax_conv, x, kernel))
    chex.assert_shape(jax.grad(lambda v: jnp.sum(ours(v, kernel)))(x), x.shape)


def test_other_convolutions_are_left_to_lax():
    # 5x5 windows, stride 2: not rewritten (same values, no custom rule in the program).
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    kernel = jax.random.normal(jax.random.key(1), (5, 5, 3, 4))
    numbers = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
    ours = lambda v: conv_general_dilated(v, kernel, (2, 2), "SAME", dimension_numbers=numbers)
    chex.assert_trees_all_close(ours(x), lax_conv(x, kernel, (2, 2)), rtol=1e-5, atol=1e-5)
    assert "custom_vjp" not in str(jax.make_jaxpr(ours)(x))


def small_cnn(**kwargs):
    return PaperCNN(conv_features=(8, 8), hidden_features=(16, 12), **kwargs)


def deep_gfa_gradient(model, params, x, labels):
    loss = lambda p: gfa.gfa_loss(p, x, labels, model=model, layer_names=model.layer_names[:3],
                                  beta=(0.1, 0.1, 0.1))[0]
    return jax.grad(loss)(params)


def test_paper_cnn_deep_gfa_gradient_equals_the_plain_convolution_model():
    x = jax.random.uniform(jax.random.key(0), (4, 12, 12, 3), minval=-1, maxval=1)
    labels = jnp.asarray([0, 3, 7, 9])
    params = jax.jit(small_cnn().init)(jax.random.key(1), x)["params"]
    got = jax.jit(lambda p: deep_gfa_gradient(small_cnn(), p, x, labels))(params)
    expected = jax.jit(lambda p: deep_gfa_gradient(small_cnn(cpu_conv_rewrites=False), p, x, labels))(params)
    assert_close_to_scale(got, expected, rtol=1e-4)


def conv_windows(jaxpr) -> set[tuple[int, ...]]:
    """The kernel spatial shapes of every convolution in ``jaxpr`` and its sub-jaxprs."""
    windows = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec
            windows.add(tuple(eqn.invars[1].aval.shape[d] for d in rhs_spec[2:]))
        for sub in jax.core.jaxprs_in_params(eqn.params):
            windows |= conv_windows(sub)
    return windows


def test_deep_gfa_gradient_has_no_full_image_kernel_gradient_convolution():
    # XLA's kernel gradient of a 3x3 convolution on a 12x12 image is a convolution with a 12x12
    # window over transposed activations; with the rewrite every convolution keeps its 3x3 window.
    x = jax.random.uniform(jax.random.key(0), (2, 12, 12, 3), minval=-1, maxval=1)
    labels = jnp.asarray([1, 2])
    params = jax.eval_shape(small_cnn().init, jax.random.key(1), x)["params"]
    trace = lambda model: jax.make_jaxpr(lambda p: deep_gfa_gradient(model, p, x, labels))(params).jaxpr
    assert conv_windows(trace(small_cnn())) == {(3, 3)}
    assert (12, 12) in conv_windows(trace(small_cnn(cpu_conv_rewrites=False)))  # what it replaces
