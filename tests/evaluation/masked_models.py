"""Masked defences wrapped around the tiny MLP of ``tiny_models``, for the audit's tests.

Every defence is one setting of :func:`defended_apply`; the settings are arrays (traced), so all of
them, and the undefended model (every defence off), share one compiled program per attack: the
audit's tests compile each attack once instead of once per defence.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback
from jax.tree_util import Partial
from tiny_models import mlp_apply

_RNG = np.random.default_rng(0)

OFF = {"quantise": 0.0, "negate_straight_through": 0.0, "temperature": 1.0, "grad_scale": 1.0,
       "noise": 0.0}


def noise_like(x: jax.Array) -> jax.Array:
    """Fresh standard normal noise on every call: a numpy RNG behind ``io_callback``.

    A jitted JAX function is pure and keys are values, so a model cannot draw new randomness per call
    by itself; the callback is side-effecting (never merged or hoisted by XLA), so each forward pass,
    each PGD step and each EOT sample draws anew. Under ``vmap`` it draws once for the whole batch.
    """
    shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return io_callback(lambda: _RNG.standard_normal(x.shape).astype(x.dtype), shape, ordered=False)


@jax.custom_vjp
def scale_gradient(x, scale):
    """Identity forward; the cotangent is multiplied by ``scale`` backward."""
    return x


def _scale_fwd(x, scale):
    return x, scale


def _scale_bwd(scale, g):
    return g * scale, jnp.zeros_like(scale)


scale_gradient.defvjp(_scale_fwd, _scale_bwd)


def defended_apply(params, defence, x):
    """``mlp_apply`` behind the defences switched on in ``defence`` (a dict like :data:`OFF`):

    - ``quantise``: 1 rounds the inputs to 256 levels (zero gradient almost everywhere);
    - ``negate_straight_through``: 1 negates the input in a preprocessing step hidden behind a
      ``stop_gradient`` (``x + stop_gradient(-2 x)``: forward ``-x``, backward the identity) and
      negates the first layer's weights to match: the function is the undefended one, its gradient
      points the opposite way;
    - ``temperature``: logits times this (1000: a saturated softmax, CE gradients vanish);
    - ``grad_scale``: a custom-VJP layer before and after the network multiplies the cotangent by it
      (1e-30: the input gradient is scaled by 1e-60, below float32, and arrives as zero);
    - ``noise``: adds this times fresh Gaussian noise to the input (a randomised transform).
    """
    x = x + defence["noise"] * noise_like(x)
    levels = 127.5  # 256 levels on [-1, 1]; d round / dx = 0
    x = jnp.where(defence["quantise"] > 0, jnp.round(x * levels) / levels, x)
    negate = defence["negate_straight_through"] > 0
    x = jnp.where(negate, x + jax.lax.stop_gradient(-2.0 * x), x)
    (w0, b0), *rest = params
    params = [(jnp.where(negate, -w0, w0), b0)] + list(rest)
    x = scale_gradient(x, defence["grad_scale"])
    logits = mlp_apply(params, x) * defence["temperature"]
    return scale_gradient(logits, defence["grad_scale"])


def defended(params, **settings) -> Partial:
    """The model with ``settings`` switched on, as a pytree the audit's jitted attacks share."""
    unknown = set(settings) - set(OFF)
    if unknown:
        raise ValueError(f"Unknown defences {sorted(unknown)}")
    defence = {k: jnp.asarray(settings.get(k, v), jnp.float32) for k, v in OFF.items()}
    return Partial(defended_apply, params, defence)
