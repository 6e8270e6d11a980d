"""PGD (L-inf): Madry et al., 'Towards Deep Learning Models Resistant to Adversarial Attacks',
ICLR 2018 [https://arxiv.org/abs/1706.06083]."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    linf_sign_ascent,
    linf_start,
    objective_gradient,
    step_size,
)
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


@register("pgd", norm="linf", test_kwargs={"steps": 3})
def pgd(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    steps: int = 10,
    random_start: bool = True,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Projected Gradient Descent with a random start (Madry et al. 2018). Distance measure: L-inf.

    ``x_0 = clip(x + U(-eps, eps))`` (or ``x`` without ``random_start``), then
    ``x_{t+1} = Proj_{eps, bounds}(x_t + alpha * sign(grad_x L(f(x_t), y)))``.

    Args:
      logits_fn: batched ``x -> logits [B, K]``.
      x: inputs ``[B, ...]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: draws the random start.
      eps: L-inf radius, traceable (default ``2 * 8/255``: torchattacks' 8/255 in [-1, 1] units).
      alpha: step size, traceable; None (default): eps / 4 (torchattacks: 2/255 at eps 8/255), so it scales with eps in a sweep.
      steps: number of iterations, static (default 10).
      random_start: static, start uniformly in the eps ball (default True).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    alpha = step_size(alpha, eps, 0.25)
    x_start = linf_start(key, x, eps, bounds, random_start)
    gradient_fn = objective_gradient(logits_fn, y, loss, targeted)
    return linf_sign_ascent(
        gradient_fn, x, x_start, None, eps=eps, alpha=alpha, steps=steps, bounds=bounds, unroll=unroll
    )
