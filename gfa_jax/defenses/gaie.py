"""GAIE: Gradient Alignment with Image Edges (DeepDefense's Table 1-2 baseline).

Rodríguez-Muñoz, Wang & Torralba, 'Characterizing Model Robustness via Natural Input Gradients',
ECCV 2024 [https://arxiv.org/abs/2409.20139]: robust models' input gradients concentrate on image
edges, and regularising them to do so improves robustness. Neither the paper's text nor the
authors' code could be consulted here, so the edge map and the comparison are our own choice:

- edge map ``E(x)``: the Sobel gradient magnitude of each channel of the image,
  ``E_c = sqrt((S_x * x_c)^2 + (S_y * x_c)^2)``, with replicated borders (no edges at the frame);
- alignment: the per-sample cosine between the input gradient's magnitude and the edge map,

      GAIE(x, y) = cos(|grad_x L(f(x), y)|, E(x)),   L = MSE(f(x), onehot(y)).

An edge map is non-negative and says where, not which way, the image changes; the sign of the
gradient says which way the loss grows, so its absolute value is what can match the edge map (a
raw-gradient cosine with E would reward a sign pattern that edges do not define). GAIE lies in
[0, 1] then, like the ~0.93 train / 0.45 test DeepDefense reports for its GAIE model (Table 1,
footnote 2). The objective (:mod:`gfa_jax.defenses.objective`) subtracts ``config.gaie.weight * mean GAIE``;
grad_x L is itself a gradient, so the parameter gradient is a nested ``jax.grad``, as for GFA.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gfa_jax.defenses.gfa import cosine_similarity, mse_onehot

Array = jax.Array

# NumPy, not jnp: a module constant must never be created inside a trace.
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], np.float32)
_SOBEL_Y = _SOBEL_X.T


def _depthwise_filter(images: Array, kernel: Array) -> Array:
    """Correlate every channel of NHWC ``images`` with one 3x3 ``kernel``, borders replicated."""
    channels = images.shape[-1]
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    weights = jnp.broadcast_to(jnp.asarray(kernel, images.dtype)[:, :, None, None], (3, 3, 1, channels))
    return jax.lax.conv_general_dilated(
        padded, weights, window_strides=(1, 1), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels,
    )


def edge_map(images: Array) -> Array:
    """Sobel gradient magnitude per channel of NHWC ``images`` ``[B, H, W, C]`` -> same shape, >= 0.

    A fixed target: no gradient flows into the image through it.
    """
    images = jax.lax.stop_gradient(images)
    squared = jnp.square(_depthwise_filter(images, _SOBEL_X)) + jnp.square(_depthwise_filter(images, _SOBEL_Y))
    return jnp.sqrt(squared)


def input_gradient(params, x: Array, labels: Array, *, model: nn.Module) -> Array:
    """``grad_x sum_b MSE_b``: each sample's gradient of its own loss (not scaled by 1/B)."""

    def summed_loss(inputs):
        return mse_onehot(model.apply({"params": params}, inputs), labels).sum()

    return jax.grad(summed_loss)(x)


def gaie_alignment(params, x: Array, labels: Array, *, model: nn.Module) -> Array:
    """Per-sample GAIE ``cos(|grad_x L|, E(x))`` ``[B]``; 0 (not NaN) where either is zero.

    Differentiable with respect to ``params`` (a double backward through :func:`input_gradient`).
    Needs image inputs ``[B, H, W, C]``: an MLP's flat inputs have no edges.
    """
    if x.ndim != 4:
        raise ValueError(f"GAIE needs NHWC images, got inputs of shape {x.shape}.")
    gradient = input_gradient(params, x, labels, model=model)
    return cosine_similarity(jnp.abs(gradient), edge_map(x))
