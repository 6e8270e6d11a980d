"""Jitter: Schwinn et al., 'Exploring Misclassifications of Robust Neural Networks to Enhance
Adversarial Attacks', Applied Intelligence 2023 [https://arxiv.org/abs/2105.10304]."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gfa_jax import random_draws
from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    linf_sign_ascent,
    linf_start,
    step_size,
)
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    LogitsFn,
    get_loss,
    input_gradient,
    per_sample_norm,
    register,
)


def jitter_objective(logits_fn: LogitsFn, x: Array, loss: str, targeted: bool, scale, std):
    """``(x_adv, y, key) -> [B]``: the loss of the jittered, temperature-scaled softmax.

    ``z_hat = softmax(scale * z / ||z||_inf) + std * N(0, I)``, ``J = L(z_hat, y)`` (negated when
    targeted), divided by ``||x_adv - x||_inf`` for samples that already fool the model, so that
    among successful perturbations the smaller ones are favoured.
    """
    loss_fn = get_loss(loss)
    sign = -1.0 if targeted else 1.0

    def objective(x_adv: Array, y: Array, key: Array) -> Array:
        logits = logits_fn(x_adv)
        logits_norm = jnp.max(jnp.abs(logits), axis=-1, keepdims=True)
        jittered = jax.nn.softmax(scale * logits / jnp.maximum(logits_norm, jnp.finfo(logits.dtype).tiny), axis=-1)
        jittered = jittered + std * random_draws.normal(key, jittered.shape, jittered.dtype)
        cost = sign * loss_fn(jittered, y)
        prediction = jnp.argmax(logits, axis=-1)
        fooled = prediction == y if targeted else prediction != y
        perturbation_norm = per_sample_norm(x_adv - x, jnp.inf)
        rescale = fooled & (perturbation_norm > 0)
        return jnp.where(rescale, cost / jnp.where(rescale, perturbation_norm, 1.0), cost)

    return objective


@register("jitter", norm="linf", test_kwargs={"steps": 3})
def jitter(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    steps: int = 10,
    scale=10.0,
    std=0.1,
    random_start: bool = True,
    bounds: Bounds,
    loss: str = "mse",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Jitter attack (Schwinn et al. 2021), as torchattacks' ``Jitter``. Distance measure: L-inf.

    PGD on :func:`jitter_objective`: ``x_{t+1} = Proj_{eps, bounds}(x_t + alpha * sign(grad_x J))``
    with fresh Gaussian jitter every step.

    Args:
      logits_fn: batched ``x -> logits [B, K]``.
      x: inputs ``[B, ...]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: draws the random start and the jitter.
      eps: L-inf radius, traceable (default ``2 * 8/255``: torchattacks' 8/255 in [-1, 1] units).
      alpha: step size, traceable; None (default): eps / 4 (torchattacks: 2/255 at eps 8/255), so it scales with eps in a sweep.
      steps: number of iterations, static (default 10).
      scale: softmax temperature factor, traceable (default 10).
      std: standard deviation of the jitter on the softmax outputs, traceable (default 0.1).
      random_start: static, start uniformly in the eps ball (default True).
      bounds: the input box.
      loss: applied to the jittered softmax; default 'mse' is torchattacks' MSE to the one-hot label.
      targeted: descend instead. A sample counts as fooling the model when it is classified as its
        target (torchattacks, which knows the true labels, uses "not the true label" there).
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    alpha = step_size(alpha, eps, 0.25)
    objective = jitter_objective(logits_fn, x, loss, targeted, scale, std)

    def gradient_fn(x_adv: Array, step_key: Array) -> Array:
        return input_gradient(lambda x_, y_: objective(x_, y_, step_key), x_adv, y)[1]

    k_start, k_steps = jax.random.split(key)
    x_start = linf_start(k_start, x, eps, bounds, random_start)
    return linf_sign_ascent(
        gradient_fn, x, x_start, k_steps, eps=eps, alpha=alpha, steps=steps, bounds=bounds, unroll=unroll
    )
