"""EOT-PGD: Athalye et al., 'Synthesizing Robust Adversarial Examples', ICML 2018
[https://arxiv.org/abs/1707.07397]; Liu et al., 'Adv-BNN', ICLR 2019 [https://arxiv.org/abs/1810.01279]."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    linf_sign_ascent,
    linf_start,
    objective_gradient,
    run_loop,
    step_size,
)
from gfa_jax.attacks.base import (
    Array,
    Bounds,
    attack_objective,
    input_gradient,
    register,
)


def _expected_gradient(logits_fn, y: Array, loss: str, targeted: bool, eot_iter: int, unroll):
    """``(x_adv, key) -> sum_i grad_x L(f(x_adv, k_i), y)`` over ``eot_iter`` keys split from ``key``."""

    def gradient_fn(x_adv: Array, key: Array) -> Array:
        def add_sample(state):
            total, key = state
            key, sample_key = jax.random.split(key)
            objective = attack_objective(lambda x_: logits_fn(x_, sample_key), loss, targeted)
            return total + input_gradient(objective, x_adv, y)[1], key

        total, _ = run_loop(add_sample, (jnp.zeros_like(x_adv), key), eot_iter, unroll)
        return total

    return gradient_fn


@register("eotpgd", norm="linf", test_kwargs={"steps": 3})
def eotpgd(
    logits_fn: Callable,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    steps: int = 10,
    eot_iter: int = 2,
    random_start: bool = True,
    stochastic: bool = False,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """PGD with Expectation over Transformation (Athalye et al. 2018; torchattacks' EOTPGD).
    Distance measure: L-inf.

    PGD whose step direction is the gradient summed over ``eot_iter`` draws of a stochastic model::

        x_{t+1} = Proj_{eps, bounds}(x_t + alpha * sign(sum_i grad_x L(f(x_t, k_{t,i}), y)))

    Args:
      logits_fn: batched ``x -> logits [B, K]``; with ``stochastic=True``, ``(x, key) -> logits``,
        its randomness (dropout, random transformations...) drawn from ``key``.
      x: inputs ``[B, ...]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: draws the random start and the model's randomness.
      eps: L-inf radius, traceable (default ``2 * 8/255``: torchattacks' 8/255 in [-1, 1] units).
      alpha: step size, traceable; None (default): eps / 4 (torchattacks: 2/255 at eps 8/255), so it scales with eps in a sweep.
      steps: number of iterations, static (default 10).
      eot_iter: gradient samples per step, static (default 2). A deterministic ``logits_fn``
        (``stochastic=False``) gives ``eot_iter`` equal gradients whose sum has the same sign as one,
        so then a single gradient is computed and the result equals torchattacks'.
      random_start: static, start uniformly in the eps ball (default True).
      stochastic: static, whether ``logits_fn`` takes ``(x, key)`` (default False).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.
      unroll: static ``lax.fori_loop`` unroll for the steps and EOT samples (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    alpha = step_size(alpha, eps, 0.25)
    k_start, k_steps = jax.random.split(key)
    if stochastic:
        gradient_fn = _expected_gradient(logits_fn, y, loss, targeted, eot_iter, unroll)
    else:
        gradient_fn, k_steps = objective_gradient(logits_fn, y, loss, targeted), None
    x_start = linf_start(k_start, x, eps, bounds, random_start)
    return linf_sign_ascent(
        gradient_fn, x, x_start, k_steps, eps=eps, alpha=alpha, steps=steps, bounds=bounds, unroll=unroll
    )
