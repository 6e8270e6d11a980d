"""PGD (L2): Madry et al., 'Towards Deep Learning Models Resistant to Adversarial Attacks',
ICLR 2018 [https://arxiv.org/abs/1706.06083], with torchattacks' PGDL2 start and step."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    l2_gradient_ascent,
    objective_gradient,
    random_l2_start,
    step_size,
)
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


@register("pgd_l2", norm="l2", test_kwargs={"steps": 3})
def pgd_l2(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 1.0,
    alpha=None,
    steps: int = 10,
    random_start: bool = True,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Projected Gradient Descent in the L2 ball (Madry et al. 2018). Distance measure: L2.

    ``x_0 = clip(x + eps * U(0, 1) * n / ||n||_2)``, ``n ~ N(0, I)`` (or ``x``), then
    ``x_{t+1} = Proj_{||. - x||_2 <= eps, bounds}(x_t + alpha * g_t / ||g_t||_2)``,
    ``g_t = grad_x L(f(x_t), y)``.

    Args:
      logits_fn: batched ``x -> logits [B, K]``.
      x: inputs ``[B, ...]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: draws the random start.
      eps: L2 radius, traceable (default 2.0: torchattacks' 1.0 on [0, 1] inputs in [-1, 1] units).
      alpha: step size, traceable; None (default): eps / 5 (torchattacks: 0.2 at eps 1.0), so it scales with eps in a sweep.
      steps: number of iterations, static (default 10).
      random_start: static, start at a random point of the L2 ball (default True).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the L2 eps ball and the box.
    """
    alpha = step_size(alpha, eps, 0.2)
    x_start = random_l2_start(key, x, eps, bounds) if random_start else x
    gradient_fn = objective_gradient(logits_fn, y, loss, targeted)
    return l2_gradient_ascent(
        gradient_fn, x, x_start, None, eps=eps, alpha=alpha, steps=steps, bounds=bounds, unroll=unroll
    )
