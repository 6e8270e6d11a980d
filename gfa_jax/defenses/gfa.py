"""Gradient-Feature Alignment (GFA), the regulariser of DeepDefense.

For a layer l with input activation h (per sample) and task loss L, GFA is the cosine between h and
the loss gradient with respect to it (eq. 1 of ``deepdefense-gfa.md``, Algorithm 1 lines 5-8)::

    GFA_l = <h, dL/dh> / (||h|| * ||dL/dh||)

DeepDefense rewards it at chosen layers (eq. 2, Algorithm 1 line 9)::

    L_total = alpha * MSE(logits, onehot(y)) - sum_l beta_l * mean_batch(GFA_l)

which has the same parameter gradient as eq. 2's ``alpha*MSE + sum_l beta_l*(1 - GFA_l)``. dL/dh is
itself a gradient, so the parameter gradient of L_total is a nested ``jax.grad`` (a double backward).

Layer inputs and their gradients come from the model's ``intermediates`` (``sow``) and
``perturbations`` (``perturb``) collections; see :func:`gfa_jax.models.layers.capture_layer_input`.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gfa_jax.losses import get_task_loss, mse_onehot  # noqa: F401  (re-exported: part of the GFA API)
from gfa_jax.models.layers import (
    LAYER_INPUT_GRADS,
    LAYER_INPUTS,
    by_layer_name,
    capture_key,
)

Array = jax.Array

# Below this squared norm a vector counts as zero: its cosine is 0 and its gradient 0. Large enough
# that rsqrt's gradient (~ x**-1.5) stays finite in float32 just above it.
_TINY_SQUARED_NORM = 1e-20


def cosine_similarity(a: Array, b: Array) -> Array:
    """Per-sample cosine between ``a`` and ``b`` (``[B, ...]`` each, flattened per sample) -> ``[B]``.

    Zero (not NaN), with a finite gradient, where either vector is zero.
    """
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    dot = jnp.sum(a * b, axis=-1)
    squared_a, squared_b = jnp.sum(a * a, axis=-1), jnp.sum(b * b, axis=-1)
    nonzero = (squared_a > _TINY_SQUARED_NORM) & (squared_b > _TINY_SQUARED_NORM)
    # The inner where keeps the untaken branch finite, so its gradient is 0 rather than NaN.
    inverse_norms = jax.lax.rsqrt(jnp.where(nonzero, squared_a, 1.0)) * jax.lax.rsqrt(jnp.where(nonzero, squared_b, 1.0))
    return jnp.where(nonzero, dot * inverse_norms, 0.0)


def _is_static_zero(weight) -> bool:
    return isinstance(weight, (int, float)) and weight == 0


def warmup_factor(step, warmup_steps):
    """The GFA weights' share at optimizer step ``step`` (from 0): ``min(1, (step + 1) / warmup_steps)``.

    1 (a Python float: nothing traced) when ``warmup_steps`` is a Python 0 or ``step`` is None.
    """
    if step is None or _is_static_zero(warmup_steps):
        return 1.0
    return jnp.clip((step + 1) / jnp.maximum(warmup_steps, 1), 0.0, 1.0)


def layer_inputs_and_gradients(
    model: nn.Module, params, x: Array, labels: Array, layer_names: Sequence[str], task_loss: str = "mse"
) -> tuple[Array, Array, dict[str, Array], dict[str, Array]]:
    """One forward and backward pass returning the per-sample task loss, logits, and for each named
    layer its input h and dL/dh, ``L = sum_b loss_b`` (``task_loss``: 'mse', the paper's, or 'ce').

    The per-sample loss is summed rather than averaged so each sample's dL/dh is its own loss's
    gradient (not scaled by 1/B); the cosine is scale invariant, so GFA is the same either way.
    """

    shapes = jax.eval_shape(lambda: model.apply({"params": params}, x, mutable=[LAYER_INPUTS])[1])
    captured = shapes[LAYER_INPUTS]
    missing = [n for n in layer_names if capture_key(n) not in captured]
    if missing:
        known = [k.removesuffix("_input") for k in captured]
        raise ValueError(f"Model has no layer(s) {missing}; its layers are {known}.")
    # Flax needs a perturbation for every captured layer; only the named ones are differentiated,
    # so XLA prunes the backward pass below the earliest of them.
    zeros = {key: jnp.zeros(value.shape, value.dtype) for key, value in captured.items()}
    wanted = {capture_key(n) for n in layer_names}
    loss_fn = get_task_loss(task_loss)
    fixed = {key: value for key, value in zeros.items() if key not in wanted}

    def summed_loss(differentiated):
        perturbations = {**fixed, **differentiated}
        logits, state = model.apply(
            {"params": params, LAYER_INPUT_GRADS: perturbations}, x, mutable=[LAYER_INPUTS]
        )
        per_sample = loss_fn(logits, labels)
        return per_sample.sum(), (per_sample, logits, state[LAYER_INPUTS])

    differentiated = {key: zeros[key] for key in wanted}
    grads, (per_sample, logits, inputs) = jax.grad(summed_loss, has_aux=True)(differentiated)
    return per_sample, logits, by_layer_name(inputs, layer_names), by_layer_name(grads, layer_names)


def layer_gfa(model: nn.Module, params, x: Array, labels: Array, layer_names: Sequence[str],
              task_loss: str = "mse"):
    """Per-sample GFA of each named layer: returns ``(per_sample_loss [B], logits, {name: [B]})``."""
    per_sample, logits, inputs, grads = layer_inputs_and_gradients(model, params, x, labels, layer_names, task_loss)
    gfa = {name: cosine_similarity(inputs[name], grads[name]) for name in layer_names}
    return per_sample, logits, gfa


def gfa_loss(
    params,
    x: Array,
    labels: Array,
    *,
    model: nn.Module,
    layer_names: Sequence[str],
    alpha: float = 1.0,
    beta: Sequence[float] = (),
    task_loss: str = "mse",
):
    """DeepDefense's total loss ``alpha*MSE - sum_l beta_l*mean(GFA_l)`` (Algorithm 1, line 9).

    Args:
      params: model parameters.
      x: inputs ``[B, ...]`` (the papers use [-1, 1]).
      labels: integer labels ``[B]``.
      model: a model whose layers capture their inputs (``layer_names`` in forward order).
      layer_names: the model's layers, matched one-to-one with ``beta``.
      alpha: weight of the task loss.
      beta: per-layer GFA weights, floats or traced scalars (an in-program sweep's); layers whose
        weight is a Python 0 cost nothing, and with all of them 0 this is plain task-loss training
        with a single backward pass.
      task_loss: 'mse' (the paper's) or 'ce' (:mod:`gfa_jax.losses`); GFA's dL/dh is of this loss.

    Returns:
      ``(loss, aux)`` with aux ``{"task_loss", "accuracy", "gfa/<layer>"}`` batch means (GFA only for the
      regularised layers).
    """
    if len(beta) != len(layer_names):
        raise ValueError(
            f"beta has {len(beta)} entries but the model has {len(layer_names)} layers {tuple(layer_names)}."
        )
    regularised = [name for name, b in zip(layer_names, beta) if not _is_static_zero(b)]
    if regularised:
        per_sample, logits, gfa = layer_gfa(model, params, x, labels, regularised, task_loss)
    else:
        logits = model.apply({"params": params}, x)
        per_sample, gfa = get_task_loss(task_loss)(logits, labels), {}
    task_value = per_sample.mean()
    weights = dict(zip(layer_names, beta))
    loss = alpha * task_value - sum(weights[name] * values.mean() for name, values in gfa.items())
    aux = {"task_loss": task_value, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
    aux.update({f"gfa/{name}": values.mean() for name, values in gfa.items()})
    return loss, aux
