"""FFGSM: Wong, Rice & Kolter, 'Fast is better than free: Revisiting adversarial training', ICLR 2020
[https://arxiv.org/abs/2001.03994]."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import (
    RANGE_WIDTH,
    linf_sign_step,
    objective_gradient,
    step_size,
    uniform_linf_start,
)
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


@register("ffgsm", norm="linf")
def ffgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
) -> Array:
    """FGSM from a random start ('Fast FGSM', Wong et al. 2020). Distance measure: L-inf.

    ``x0 = clip(x + U(-eps, eps))``, ``x_adv = Proj_eps(x0 + alpha * sign(grad_x L(f(x0), y)))``.

    Args:
      logits_fn: batched ``x -> logits [B, K]``.
      x: inputs ``[B, ...]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: draws the random start.
      eps: L-inf radius, traceable (default ``2 * 8/255``, torchattacks' 8/255 in [-1, 1] units).
      alpha: step size, traceable; None (default): 1.25 * eps (torchattacks: 10/255 at eps 8/255), so it scales with eps in a sweep.
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    alpha = step_size(alpha, eps, 1.25)
    x_start = uniform_linf_start(key, x, eps, bounds)
    grad = objective_gradient(logits_fn, y, loss, targeted)(x_start, None)
    return linf_sign_step(x_start, grad, x, eps, alpha, bounds)
