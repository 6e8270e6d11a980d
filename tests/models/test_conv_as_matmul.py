"""layers.conv_as_matmul: the same convolution (values and gradients, second order included)."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest

from gfa_jax.models import PaperCNN
from gfa_jax.models.layers import conv_as_matmul


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 0), (1, 1))])
def test_conv_as_matmul_matches_lax(padding):
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
    k = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    expected = jax.lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    chex.assert_trees_all_close(conv_as_matmul(x, k, (1, 1), padding), expected, rtol=1e-5, atol=1e-5)


def test_paper_cnn_conv_as_matmul_same_double_backward():
    # PaperCNN's layers, narrower (8 channels, not 32; small dense layers) on 12x12 inputs: the same
    # two 3x3 SAME convolutions, each before ReLU and pooling; jitted: one compile per gradient.
    small = {"conv_features": (8, 8), "hidden_features": (16, 12)}
    x = jax.random.uniform(jax.random.key(0), (2, 12, 12, 3), minval=-1, maxval=1)
    params = jax.jit(PaperCNN(**small).init)(jax.random.key(1), x)["params"]

    def gradient_norm(model, p):  # a GFA-like second-order quantity
        g = jax.grad(lambda v: jnp.sum(model.apply({"params": p}, v) ** 2))(x)
        return jnp.sum(g * x)

    expected = jax.jit(jax.grad(lambda p: gradient_norm(PaperCNN(**small, cpu_conv_rewrites=False), p)))(params)
    got = jax.jit(jax.grad(lambda p: gradient_norm(PaperCNN(**small, conv_as_matmul=True), p)))(params)
    chex.assert_trees_all_close(got, expected, rtol=2e-4, atol=1e-5)
    with pytest.raises(ValueError, match="stride 1"):
        conv_as_matmul(x, jnp.ones((3, 3, 3, 4)), (2, 2), "SAME")
