"""BIM / I-FGSM: Kurakin, Goodfellow & Bengio, 'Adversarial Examples in the Physical World',
ICLR 2017 workshop [https://arxiv.org/abs/1607.02533]."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    linf_sign_ascent,
    objective_gradient,
    step_size,
)
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


@register("bim", norm="linf", test_kwargs={"steps": 3})
def bim(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    steps: int = 10,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Basic Iterative Method (Kurakin et al. 2017). Distance measure: L-inf.

    From ``x_0 = x``: ``x_{t+1} = Proj_{eps, bounds}(x_t + alpha * sign(grad_x L(f(x_t), y)))``.

    Args:
      logits_fn: batched ``x -> logits [B, K]``.
      x: inputs ``[B, ...]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: unused (common calling convention).
      eps: L-inf radius, traceable (default ``2 * 8/255``: torchattacks' 8/255 in [-1, 1] units).
      alpha: step size, traceable; None (default): eps / 4 (torchattacks: 2/255 at eps 8/255), so it scales with eps in a sweep.
      steps: number of iterations, static (default 10).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    alpha = step_size(alpha, eps, 0.25)
    del key
    gradient_fn = objective_gradient(logits_fn, y, loss, targeted)
    return linf_sign_ascent(gradient_fn, x, x, None, eps=eps, alpha=alpha, steps=steps, bounds=bounds, unroll=unroll)
