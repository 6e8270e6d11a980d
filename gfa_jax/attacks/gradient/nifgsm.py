"""NI-FGSM: Lin et al., 'Nesterov Accelerated Gradient and Scale Invariance for Adversarial
Attacks', ICLR 2020 [https://arxiv.org/abs/1908.06281]."""
from __future__ import annotations

from gfa_jax.attacks.gradient._iterative import (
    DEFAULT_UNROLL,
    RANGE_WIDTH,
    linf_sign_ascent,
    objective_gradient,
    step_size,
)
from gfa_jax.attacks.base import Array, Bounds, LogitsFn, register


@register("nifgsm", norm="linf", test_kwargs={"steps": 3})
def nifgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: Array,
    *,
    eps=RANGE_WIDTH * 8 / 255,
    alpha=None,
    steps: int = 5,
    decay=1.0,
    bounds: Bounds,
    loss: str = "ce",
    targeted: bool = False,
    unroll: bool | int | None = DEFAULT_UNROLL,
) -> Array:
    """Nesterov Iterative FGSM (Lin et al. 2020). Distance measure: L-inf.

    MI-FGSM with the gradient taken at the look-ahead point; from ``x_0 = x``, ``m_0 = 0``::

        g_t     = grad_x L(f(x_t + decay * alpha * m_t), y)
        m_{t+1} = decay * m_t + g_t / mean|g_t|
        x_{t+1} = Proj_{eps, bounds}(x_t + alpha * sign(m_{t+1}))

    Args:
      logits_fn: batched ``x -> logits [B, K]``.
      x: inputs ``[B, ...]`` in ``bounds``; y: labels ``[B]`` (targets when ``targeted``).
      key: unused (common calling convention).
      eps: L-inf radius, traceable (default ``2 * 8/255``: torchattacks' 8/255 in [-1, 1] units).
      alpha: step size, traceable; None (default): eps / 4 (torchattacks: 2/255 at eps 8/255), so it scales with eps in a sweep.
      steps: number of iterations, static (default 5, as torchattacks).
      decay: momentum factor, traceable (default 1.0).
      bounds: the input box. loss: 'ce', 'mse', 'margin' or 'dlr'. targeted: descend instead.
      unroll: static ``lax.fori_loop`` unroll (default None: rolled, 1).

    Returns:
      ``x_adv``, same shape and dtype as ``x``, in the eps ball and the box.
    """
    alpha = step_size(alpha, eps, 0.25)
    del key
    gradient_fn = objective_gradient(logits_fn, y, loss, targeted)
    return linf_sign_ascent(
        gradient_fn, x, x, None, eps=eps, alpha=alpha, steps=steps, decay=decay, nesterov=True,
        bounds=bounds, unroll=unroll,
    )
