"""FGSM: Goodfellow, Shlens & Szegedy, 'Explaining and Harnessing Adversarial Examples', ICLR 2015
[https://arxiv.org/abs/1412.6572]."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import RANGE_WIDTH, linf_sign_step, objective_gradient
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


@register("fgsm", norm="linf")
def fgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
) -> Array:
    """Fast Gradient Sign Method (Goodfellow et al. 2015). Distance measure: L-inf.

    ``x_adv = clip(x + eps * sign(grad_x L(f(x), y)), bounds)``; targeted: ``L`` is negated, so the
    step descends the loss of the target labels ``y``.

    Args:
      logits_fn: batched ``x -> logits [B, K]``.
      x: inputs ``[B, ...]`` in ``bounds``.
      y: labels ``[B]`` (target labels when ``targeted``).
      key: unused (kept for the common calling convention).
      eps: L-inf radius, traceable (default ``2 * 8/255``: torchattacks' 8/255 on [0, 1] inputs,
        rescaled to our [-1, 1] range).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.

    Returns:
      ``x_adv``, same shape and dtype as ``x``.
    """
    del key
    grad = objective_gradient(logits_fn, y, loss, targeted)(x, None)
    return linf_sign_step(x, grad, x, eps, eps, bounds)
